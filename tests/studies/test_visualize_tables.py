"""Tables of the visualize study (nnprobe.studies.visualize.tables): the networks, one row each,
and the class-wise patterns of one network."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnprobe.studies.visualize.tables import class_pattern_table, models_table


def long_metrics() -> pd.DataFrame:
    """Per-network metrics as the training jobs write them, networks not in alphabetical order."""
    rows = []
    for model, architecture, parameters, seconds, base in (("topdown", "topdown", 1200, 3.5, 0.9),
                                                           ("natural", "standard", 1100, 2.5, 0.8),
                                                           ("backdoor", "standard", 1100, 4.0, 0.7)):
        rows += [{"metric": "clean_accuracy", "epsilon": 0.0, "value": base, "n_images": 50},
                 {"metric": "trigger_success", "epsilon": 0.0, "value": base / 10, "n_images": 45}]
        rows += [{"metric": "robust_accuracy", "epsilon": eps, "value": base / (2 + eps), "n_images": 20}
                 for eps in (8.0, 2.0, 0.5, 16.0)]  # not in order: the columns are
        for row in rows[-6:]:
            row.update(model=model, architecture=architecture, parameters=parameters, train_seconds=seconds,
                       eval_seconds=1.0)
    return pd.DataFrame(rows)


def test_models_table_one_row_per_network():
    table = models_table(long_metrics())
    assert list(table.columns) == ["model", "architecture", "parameters", "train_seconds", "clean_accuracy",
                                   "robust_accuracy_eps0.5", "robust_accuracy_eps2", "robust_accuracy_eps8",
                                   "robust_accuracy_eps16", "trigger_success"]
    assert table["model"].tolist() == ["topdown", "natural", "backdoor"]  # first seen, not sorted
    assert table.index.tolist() == [0, 1, 2]
    assert table["architecture"].tolist() == ["topdown", "standard", "standard"]
    assert table["parameters"].tolist() == [1200, 1100, 1100] and table["train_seconds"].tolist() == [3.5, 2.5, 4.0]
    bases = np.array([0.9, 0.8, 0.7])
    np.testing.assert_allclose(table["clean_accuracy"], bases, rtol=1e-15)
    np.testing.assert_allclose(table["trigger_success"], bases / 10, rtol=1e-15)
    for eps in (0.5, 2.0, 8.0, 16.0):
        np.testing.assert_allclose(table[f"robust_accuracy_eps{eps:g}"], bases / (2 + eps), rtol=1e-15)


def test_class_pattern_table():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 1, 2, 3))
    patterns = (masks > 0.5).astype(np.float32)
    table = class_pattern_table(
        "backdoor", ["cat", "dog", "fox"], masks=masks, patterns=patterns, power=np.array([0.1, 0.9, 0.2]),
        in_region=np.array([0.0, 1.0, 0.5]), region_covered=np.array([0.0, 0.75, 0.25]),
        canvas_index=np.array([4, 7, 9]), canvas_poisoned=np.array([False, True, False]), target=1,
        search_images=30, eval_images=[11, 12, 13], seconds=2.5)
    assert list(table.columns) == ["model", "class", "class_name", "predictive_power", "pattern_pixels", "mask_mean",
                                   "in_trigger_region", "trigger_region_covered", "canvas_index", "canvas_poisoned",
                                   "backdoor_target", "search_images", "eval_images_per_class", "seconds"]
    assert table["model"].tolist() == ["backdoor"] * 3
    assert table["class"].tolist() == [0, 1, 2] and table["class_name"].tolist() == ["cat", "dog", "fox"]
    assert table["predictive_power"].tolist() == [0.1, 0.9, 0.2]
    assert table["pattern_pixels"].tolist() == patterns.reshape(3, -1).sum(1).astype(int).tolist()
    assert table["pattern_pixels"].dtype.kind == "i"
    np.testing.assert_allclose(table["mask_mean"], masks.reshape(3, -1).mean(1), rtol=1e-15)
    assert table["in_trigger_region"].tolist() == [0.0, 1.0, 0.5]
    assert table["trigger_region_covered"].tolist() == [0.0, 0.75, 0.25]
    assert table["canvas_index"].tolist() == [4, 7, 9]
    assert table["canvas_poisoned"].tolist() == [False, True, False]
    assert table["backdoor_target"].tolist() == [False, True, False]
    assert table["search_images"].tolist() == [30] * 3
    assert table["eval_images_per_class"].tolist() == [11, 12, 13]
    assert table["seconds"].tolist() == [2.5] * 3
