"""The report jobs of the noise study, one function per rule: the clutter of the data, the tables
across networks and the figures, without torch (they run in envs/analysis.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...core.io import read_json, write_parquet, write_tables
from ...core.splits import load_split
from .figures import (
    noise_auroc,
    noise_binary,
    noise_clutter,
    noise_distance_to_noise,
    noise_mst,
    noise_predicted_classes,
)
from .geometry import clutter
from .tables import (
    agreement_table,
    binary_table,
    clutter_correlations,
    clutter_table,
    network_accuracy,
    without_networks_at_chance,
)

__all__ = ["input_clutter", "noise_tables", "predicted_classes_figure", "mst_figure", "distance_to_noise_figure",
           "binary_figure", "auroc_figure", "clutter_figure"]

log = logging.getLogger("nnprobe.noise")

def input_clutter(test_path: str, output: str) -> None:
    """The clutter of every class in pixel space (mean distance to the centroid, participation ratio)."""
    split = load_split(Path(test_path))
    rows = []
    for c, name in enumerate(split.classes):
        x = split.images[split.labels == c].reshape(int((split.labels == c).sum()), -1) / 255.0
        spread = clutter(x)
        rows.append({"class": c, "group": name, "n": len(x), "input_mean_distance": spread["mean_distance"],
                     "input_participation_ratio": spread["participation_ratio"]})
        log.info("%s: %s", name, spread)
    write_parquet(pd.DataFrame(rows), output)


def noise_tables(groups: Sequence[str], distances: Sequence[str], mst: Sequence[str], metrics: Sequence[str],
                 input_clutter_path: str, stems: Mapping[str, str], *, binary_classes: Sequence[str]) -> None:
    """The tables across networks: groups, agreement, distances, MST, binary, clutter, training.

    A network at chance (:func:`~.tables.network_accuracy`) is left out of every table but
    ``training`` (which flags it), and so of every figure, with a warning in the log."""
    every_group = pd.concat([pd.read_parquet(p) for p in groups], ignore_index=True)
    networks = network_accuracy(every_group)
    for row in networks[networks["at_chance"]].itertuples():
        log.warning("%s %s is at chance (test accuracy %.4f with %d outputs): left out of every table and figure "
                    "of the noise study; retrain it (its training log names the config keys most likely at fault)",
                    row.source, row.model, row.accuracy, row.outputs)
    per_network = without_networks_at_chance({
        "groups": every_group,
        "distances": pd.concat([pd.read_parquet(p) for p in distances], ignore_index=True),
        "mst": pd.concat([pd.read_parquet(p) for p in mst], ignore_index=True)}, networks)
    groups_table = per_network["groups"]
    training = pd.DataFrame([read_json(p) for p in metrics])
    training["classes"] = training["classes"].map(" ".join)
    clutter_rows = clutter_table(groups_table, pd.read_parquet(input_clutter_path))
    tables = {
        "groups": groups_table,
        "agreement": agreement_table(groups_table),
        "distances": per_network["distances"],
        "mst": per_network["mst"],
        "binary": binary_table(groups_table, binary_classes[0]),
        "clutter": clutter_rows,
        "clutter_correlations": clutter_correlations(clutter_rows),
        "training": training.drop(columns=["mean", "std"]),
    }
    for name, table in tables.items():
        write_tables(table, stems[name])
        log.info("%s: %d rows", name, len(table))
    for row in tables["agreement"].itertuples():
        log.info("%s %s: dominant class %s in %d of %d networks (mean share %.3f), bias predicts it in %.2f",
                 row.source, row.noise_set, row.mode_name, round(row.mode_fraction * row.models), row.models,
                 row.mean_dominant_fraction, row.bias_predicts_dominant)
    for row in tables["training"].itertuples():
        log.info("%s seed %d: test accuracy %.4f in %.1f s", row.task, row.seed, row.test_accuracy, row.train_seconds)


def _wrote(written: Sequence[Path]) -> None:
    log.info("wrote %s", [str(p) for p in written])


def predicted_classes_figure(groups: str, agreement: str, stem: str, *, source: str) -> None:
    """Where each probe set lands: the predicted classes of every network of ``source``."""
    _wrote(noise_predicted_classes(pd.read_parquet(groups), pd.read_parquet(agreement), source, Path(stem)))


def mst_figure(distances: str, mst: str, stem: str, *, probe: str) -> None:
    """The minimum spanning tree over the class means and one probe set's mean."""
    _wrote(noise_mst(pd.read_parquet(distances), pd.read_parquet(mst), probe, Path(stem)))


def distance_to_noise_figure(distances: str, stem: str) -> None:
    """Every class's cosine distance to each probe set, per network."""
    _wrote(noise_distance_to_noise(pd.read_parquet(distances), Path(stem)))


def binary_figure(binary: str, stem: str) -> None:
    """The two-class networks' share of every class and probe set assigned to the first class."""
    _wrote(noise_binary(pd.read_parquet(binary), Path(stem)))


def auroc_figure(groups: str, stem: str) -> None:
    """AUROC of the maximum softmax probability, test images against each probe set."""
    _wrote(noise_auroc(pd.read_parquet(groups), Path(stem)))


def clutter_figure(clutter_path: str, correlations: str, stem: str) -> None:
    """Clutter of every class against the share of noise it attracts."""
    _wrote(noise_clutter(pd.read_parquet(clutter_path), pd.read_parquet(correlations), Path(stem)))
