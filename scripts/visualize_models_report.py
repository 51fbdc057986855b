"""Snakemake script of rule visualize_models_report: one table of the study's networks (clean
accuracy, trigger success, PGD robust accuracy) and the robustness figure."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import robustness_curves
from nnprobe.stats import to_tables
from nnprobe.workflow import logged


def main(inputs: list[str], table_stem: Path, figure_stem: Path, log) -> None:
    metrics = pd.concat([pd.read_parquet(path) for path in inputs], ignore_index=True)
    wide = metrics.pivot_table(index=["model", "architecture", "parameters", "train_seconds"], columns=["metric", "epsilon"],
                               values="value").reset_index()
    wide.columns = [c[0] if c[1] == "" else (c[0] if c[0] != "robust_accuracy" else f"robust_accuracy_eps{c[1]:g}")
                    for c in wide.columns]
    order = {name: i for i, name in enumerate(dict.fromkeys(metrics["model"]))}
    wide = wide.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)
    to_tables(wide, table_stem)
    log.info("\n%s", wide.to_string())
    written = robustness_curves(metrics, figure_stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(list(snakemake.input), Path(snakemake.output[0]).with_suffix(""),  # noqa: F821
             Path(snakemake.output.pdf).with_suffix(""), log)  # noqa: F821
