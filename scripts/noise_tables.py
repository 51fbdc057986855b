"""Snakemake script of rule noise_tables: the per-network probe tables joined, and summaries across networks."""

import json
from pathlib import Path

import pandas as pd

from nnprobe.noise import agreement_table, binary_table, clutter_correlations, clutter_table
from nnprobe.stats import to_tables
from nnprobe.workflow import logged


def main(inputs, outputs: list[str], binary_classes: list[str], log) -> None:
    groups = pd.concat([pd.read_parquet(p) for p in inputs.groups], ignore_index=True)
    distances = pd.concat([pd.read_parquet(p) for p in inputs.distances], ignore_index=True)
    mst = pd.concat([pd.read_parquet(p) for p in inputs.mst], ignore_index=True)
    training = pd.DataFrame([json.loads(Path(p).read_text()) for p in inputs.metrics])
    training["classes"] = training["classes"].map(" ".join)
    training = training.drop(columns=["mean", "std"])
    clutter = clutter_table(groups, pd.read_parquet(inputs.input_clutter))
    tables = {
        "groups": groups,
        "agreement": agreement_table(groups),
        "distances": distances,
        "mst": mst,
        "binary": binary_table(groups, binary_classes[0]),
        "clutter": clutter,
        "clutter_correlations": clutter_correlations(clutter),
        "training": training,
    }
    stems = {Path(p).with_suffix("") for p in outputs}
    for name, table in tables.items():
        stem = next(s for s in stems if s.name == name)
        to_tables(table, stem)
        log.info("%s: %d rows", name, len(table))
    for row in tables["agreement"].itertuples():
        log.info("%s %s: dominant class %s in %d of %d networks (mean share %.3f), bias predicts it in %.2f",
                 row.source, row.noise_set, row.mode_name, round(row.mode_fraction * row.models), row.models,
                 row.mean_dominant_fraction, row.bias_predicts_dominant)
    for row in training.itertuples():
        log.info("%s seed %d: test accuracy %.4f in %.1f s", row.task, row.seed, row.test_accuracy, row.train_seconds)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input, list(snakemake.output), snakemake.params.binary_classes, log)  # noqa: F821
