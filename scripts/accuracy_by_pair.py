"""Snakemake script of rule accuracy_by_pair: test-accuracy distribution of every population."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import accuracy_by_pair
from nnprobe.workflow import logged


def main(table: str, pdf: str, log) -> None:
    written = accuracy_by_pair(pd.read_parquet(table), Path(pdf).with_suffix(""))
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input[0], snakemake.output.pdf, log)  # noqa: F821
