"""Snakemake script of rule information_table: log2-loss change and KL divergence in bits."""

from pathlib import Path

import pandas as pd

from nnprobe.stats import information_table, to_tables
from nnprobe.workflow import logged


def main(table: str, stem: Path, comparison: str, log) -> None:
    info = information_table(pd.read_parquet(table), comparison=comparison)
    to_tables(info, stem)
    log.info("%s: %d ordered pairs, largest |delta log2-loss| %.4f bits", comparison, len(info),
             info["delta_logloss_bits"].abs().max())


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input[0], Path(snakemake.output[0]).with_suffix(""), snakemake.wildcards.comparison, log)  # noqa: F821
