"""Snakemake script of rule information_heatmap: bits gained or lost about T, as a heatmap."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import information_heatmap
from nnprobe.stats import class_names, class_order
from nnprobe.workflow import logged


def main(information: str, table: str, pdf: str, value: str, class_groups: dict, log) -> None:
    names = class_names(pd.read_parquet(table, columns=["class", "class_name"]))
    order, spans = class_order(names, class_groups)
    written = information_heatmap(pd.read_parquet(information), Path(pdf).with_suffix(""), order=order,
                                  spans=spans, value=value)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.information, snakemake.input.table, snakemake.output.pdf,  # noqa: F821
             snakemake.wildcards.value, snakemake.params.class_groups, log)  # noqa: F821
