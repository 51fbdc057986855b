"""Snakemake script of rule collect_metrics: one tidy table of every model x class."""

import pandas as pd

from nnprobe.workflow import logged


def main(inputs: list[str], table: str, csv: str, log) -> None:
    frame = pd.concat([pd.read_parquet(path) for path in inputs], ignore_index=True)
    frame.to_parquet(table, index=False)
    frame.to_csv(csv, index=False)
    models = frame.groupby(["pair", "replicate"]).ngroups
    log.info("%d rows: %d models in %d populations x %d classes", len(frame), models,
             frame["pair"].nunique(), frame["class"].nunique())


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(list(snakemake.input), snakemake.output.table, snakemake.output.csv, log)  # noqa: F821
