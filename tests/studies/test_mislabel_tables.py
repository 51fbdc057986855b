"""The tidy per-model table of the mislabel study (nnprobe.studies.mislabel.tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnprobe.studies.mislabel.tables import per_model_class_table


def test_per_model_class_table():
    k, c = 3, 3
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, size=(k, c, c))
    metrics = {
        "accuracy": rng.random((k, c)),
        "logloss_bits": rng.random((k, c)) * 3,
        "confusion": confusion,
        "mean_probs": rng.dirichlet(np.ones(c), size=(k, c)),
        "n_images": np.array([4, 5, 6]),
    }
    table = per_model_class_table(["none", "none", "0-2"], [0, 1, 0], [11, 12, 13], ["cat", "dog", "fox"], metrics)
    assert list(table.columns) == [
        "pair", "pair_a", "pair_b", "replicate", "seed", "class", "class_name", "n_images", "accuracy",
        "logloss_bits", "pred_0", "pred_1", "pred_2", "prob_0", "prob_1", "prob_2",
    ]
    assert len(table) == k * c
    assert table["pair"].tolist() == ["none"] * 6 + ["0-2"] * 3
    assert table["pair_a"].tolist() == [-1] * 6 + [0] * 3 and table["pair_b"].tolist() == [-1] * 6 + [2] * 3
    assert table["replicate"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert table["seed"].tolist() == [11] * 3 + [12] * 3 + [13] * 3
    assert table["class"].tolist() == [0, 1, 2] * 3
    assert table["class_name"].tolist() == ["cat", "dog", "fox"] * 3
    assert table["n_images"].tolist() == [4, 5, 6] * 3
    np.testing.assert_allclose(table["accuracy"], metrics["accuracy"].ravel())
    np.testing.assert_allclose(table["logloss_bits"], metrics["logloss_bits"].ravel())
    np.testing.assert_array_equal(table[["pred_0", "pred_1", "pred_2"]].to_numpy(), confusion.reshape(k * c, c))
    np.testing.assert_allclose(
        table[["prob_0", "prob_1", "prob_2"]].to_numpy(), metrics["mean_probs"].reshape(k * c, c)
    )
    assert table["pred_0"].dtype.kind == "i" and table["accuracy"].dtype.kind == "f"


def test_per_model_class_table_checks_lengths_and_pairs():
    metrics = {
        "accuracy": np.zeros((1, 2)),
        "logloss_bits": np.zeros((1, 2)),
        "confusion": np.zeros((1, 2, 2), int),
        "mean_probs": np.full((1, 2, 2), 0.5),
        "n_images": np.array([1, 1]),
    }
    with pytest.raises(ValueError):
        per_model_class_table(["none", "none"], [0], [1], ["a", "b"], metrics)
    with pytest.raises(ValueError, match="pair"):
        per_model_class_table(["0-2"], [0], [1], ["a", "b"], metrics)
    assert isinstance(per_model_class_table(["0-1"], [0], [1], ["a", "b"], metrics), pd.DataFrame)
