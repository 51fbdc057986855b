"""Snakemake script of rule visualize_patterns_report: the table and the figure of the class-wise
patterns of the natural, backdoored and adversarially trained networks."""

from pathlib import Path

import numpy as np
import pandas as pd

from nnprobe.plots import class_pattern_grid
from nnprobe.stats import to_tables
from nnprobe.workflow import logged


def main(tables: list[str], arrays: list[str], table_stem: Path, figure_stem: Path, log) -> None:
    table = pd.concat([pd.read_parquet(path) for path in tables], ignore_index=True)
    to_tables(table, table_stem)
    loaded = []
    for path in arrays:
        with np.load(path, allow_pickle=False) as npz:
            loaded.append({k: npz[k] for k in npz.files})
    settings = list(dict.fromkeys(table["model"]))
    target = int(loaded[0]["target"])
    for name in settings:
        row = table[(table["model"] == name) & (table["class"] == target)].iloc[0]
        log.info("%s, backdoor target class %s: predictive power %.3f, %.0f%% of its pattern in the trigger region, "
                 "covering %.0f%% of it", name, row["class_name"], row["predictive_power"],
                 100 * row["in_trigger_region"], 100 * row["trigger_region_covered"])
    written = class_pattern_grid(
        settings, [a["canvases"] for a in loaded], [a["masks"] for a in loaded], [a["patterns"] for a in loaded],
        [a["predictive_power"] for a in loaded], [str(c) for c in loaded[0]["classes"]],
        tuple(int(v) for v in loaded[0]["trigger"]), target, figure_stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(list(snakemake.input.tables), list(snakemake.input.arrays),  # noqa: F821
             Path(snakemake.output[0]).with_suffix(""), Path(snakemake.output.pdf).with_suffix(""), log)  # noqa: F821
