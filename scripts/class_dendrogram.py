"""Snakemake script of rule class_dendrogram: classes clustered by their mislabel effects."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import class_dendrogram
from nnprobe.stats import class_linkage, class_names
from nnprobe.workflow import logged


def main(welch: str, table: str, pdf: str, log) -> None:
    names = class_names(pd.read_parquet(table, columns=["class", "class_name"]))
    linkage = class_linkage(pd.read_parquet(welch))
    written = class_dendrogram(linkage, names, Path(pdf).with_suffix(""))
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.welch, snakemake.input.table, snakemake.output.pdf, log)  # noqa: F821
