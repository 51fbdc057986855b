"""Snakemake script of rule t_heatmap: Welch t of every (target, other) as a heatmap."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import t_heatmap
from nnprobe.stats import class_names, class_order
from nnprobe.workflow import logged


def main(welch: str, table: str, pdf: str, class_groups: dict, log) -> None:
    names = class_names(pd.read_parquet(table, columns=["class", "class_name"]))
    order, spans = class_order(names, class_groups)
    written = t_heatmap(pd.read_parquet(welch), Path(pdf).with_suffix(""), order=order, spans=spans)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.welch, snakemake.input.table, snakemake.output.pdf,  # noqa: F821
             snakemake.params.class_groups, log)  # noqa: F821
