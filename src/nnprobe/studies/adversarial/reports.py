"""The report jobs of the adversarial study, one function per rule: tables and figures from the
records and examples the network jobs wrote, without torch (they run in envs/analysis.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.io import read_json, write_tables
from ...core.splits import load_split
from .figures import (
    adversarial_example_grid,
    distortion_distributions,
    error_by_regime,
    error_matrix_heatmap,
    magnification_curves,
    top_image_rows,
    training_monitor,
)
from .paper import comparison_counts, paper_comparison
from .records import adversarial_rows, attack_counts, load_examples, nearest_distortions
from .tables import adversarial_training_summary, examples_on_every_model, zoo_table

__all__ = [
    "adversarial_training_report",
    "distortion_figure",
    "error_matrix_figure",
    "example_grid",
    "magnification_figure",
    "paper_comparison_report",
    "units_figure",
    "zoo_summary",
]

log = logging.getLogger("nnprobe.adversarial")

MATRIX_TITLES = {
    "cross_model": "Cross-model generalisation of minimal adversarial examples: error (%)",
    "cross_training_set": "Cross-training-set generalisation (models on P1 and P2): error (%)",
}


def zoo_summary(metrics: Sequence[str], examples: Sequence[str], stem: str) -> None:
    """Table 1's columns for every model of the zoo."""
    table = zoo_table([read_json(p) for p in metrics], [load_examples(p) for p in examples])
    log.info("\n%s", table.to_string(index=False))
    write_tables(table, stem)


def adversarial_training_report(results: Sequence[str], stem: str, figure_stem: str,
                                monitors: Sequence[str] = (), monitor_stem: str | None = None) -> None:
    """The adversarial-training networks summarised by regime (table) and shown one by one (figure),
    and their logs as they trained (a second figure, when ``monitors`` are given)."""
    networks = pd.DataFrame([read_json(p) for p in results])
    summary = adversarial_training_summary(networks)
    log.info("\n%s\n\n%s", networks.to_string(index=False), summary.to_string(index=False))
    write_tables(summary, stem)
    written = error_by_regime(networks, Path(figure_stem))
    if monitors and monitor_stem is not None:
        written += training_monitor(pd.concat([pd.read_parquet(p) for p in monitors], ignore_index=True),
                                    Path(monitor_stem))
    log.info("wrote %s", [str(p) for p in written])


def error_matrix_figure(table: str, matrix: str, stem: str) -> None:
    """An error-rate table (cross_model or cross_training_set) as a heatmap."""
    written = error_matrix_heatmap(pd.read_parquet(table), Path(stem), MATRIX_TITLES[matrix])
    log.info("wrote %s", [str(p) for p in written])


def paper_comparison_report(zoo: str, cross_model: str, cts_models: str, cts_matrix: str, stem: str,
                            counts_stem: str) -> None:
    """Every cell of Tables 1-4 beside the paper's value, and per table the cells within tolerance
    (:mod:`nnprobe.studies.adversarial.paper`)."""
    comparison = paper_comparison(*(pd.read_parquet(p) for p in (zoo, cross_model, cts_models, cts_matrix)))
    counts = comparison_counts(comparison)
    log.info("\n%s\n\n%s", comparison.to_string(index=False), counts.to_string(index=False))
    write_tables(comparison, stem)
    write_tables(counts, counts_stem)


def magnification_figure(table: str, stem: str) -> None:
    """Transfer of the P1/P2 models' examples as they are magnified (rule cross_training_set_tables' curve)."""
    written = magnification_curves(pd.read_parquet(table), Path(stem))
    log.info("wrote %s", [str(p) for p in written])


def distortion_figure(names: Sequence[str], examples: Sequence[str], stem: str) -> None:
    """The minimal distortion of every attacked image, per model (and the nearest-target attack's mean)."""
    distortions, excluded, nearest = {}, {}, {}
    for name, path in zip(names, examples, strict=True):
        ex = load_examples(path)
        distortions[name] = ex["distortion"][adversarial_rows(ex)]
        counts = attack_counts(ex)
        excluded[name] = (counts["already_wrong"], counts["failed"])
        if (near := nearest_distortions(ex)) is not None:
            nearest[name] = near
    written = distortion_distributions(distortions, excluded, Path(stem), nearest)
    log.info("wrote %s", [str(p) for p in written])


def example_grid(names: Sequence[str], examples: Sequence[str], images_path: str, stem: str, *, count: int,
                 magnify: float) -> None:
    """Originals (from the attacked split ``images_path``), adversarial examples and their
    magnified differences, for images every model got right."""
    test = load_split(images_path)
    loaded = [load_examples(p) for p in examples]
    pick = examples_on_every_model(loaded, count)
    if pick.size == 0:
        raise RuntimeError(
            f"no attacked image is classified correctly by, and has an adversarial example for, every model "
            f"{list(names)}; attack more images (adversarial.attack.examples) or see the attack logs"
        )
    originals = test.images[loaded[0]["index"][pick]].astype(np.float64) / 255.0
    classes = test.classes
    adversarial, captions = {}, {}
    for name, ex in zip(names, loaded, strict=True):
        adversarial[name] = ex["adversarial"][pick].astype(np.float64)
        captions[name] = [f"{classes[ex['label'][i]]}→{classes[ex['target'][i]]}, {ex['distortion'][i]:.3f}"
                          for i in pick]
    written = adversarial_example_grid(originals, adversarial, captions, Path(stem), magnify)
    log.info("wrote %s (images %s of %s)", [str(p) for p in written], loaded[0]["index"][pick].tolist(),
             images_path)


def units_figure(arrays: str, stem: str) -> None:
    """The top images of hidden units and random directions (rule unit_inspection's arrays), one row each."""
    with np.load(arrays, allow_pickle=False) as npz:
        rows = {str(name): images for name, images in zip(npz["names"], npz["images"])}
        title = str(npz["title"])
    written = top_image_rows(rows, Path(stem), title)
    log.info("wrote %s", [str(p) for p in written])
