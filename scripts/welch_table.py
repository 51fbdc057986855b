"""Snakemake script of rule welch_table: Welch's t on each target's accuracy, BH and Holm."""

from pathlib import Path

import pandas as pd

from nnprobe.stats import to_tables, welch_table
from nnprobe.workflow import logged


def main(table: str, stem: Path, comparison: str, log) -> None:
    welch = welch_table(pd.read_parquet(table), comparison=comparison)
    to_tables(welch, stem)
    log.info("%s: %d tests, %d with q < 0.05", comparison, len(welch), int(welch["significant"].sum()))


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input[0], Path(snakemake.output[0]).with_suffix(""), snakemake.wildcards.comparison, log)  # noqa: F821
