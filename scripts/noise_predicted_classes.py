"""Snakemake script of rule noise_predicted_classes: the share of every probe set predicted as each class, per network."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_predicted_classes
from nnprobe.workflow import logged


def main(groups: str, agreement: str, source: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_predicted_classes(pd.read_parquet(groups), pd.read_parquet(agreement), source, stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.groups, snakemake.input.agreement, snakemake.wildcards.source, snakemake.output.pdf, log)  # noqa: F821
