"""Snakemake script of rule noise_auroc: AUROC of the max softmax probability, test images vs each probe set."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_auroc
from nnprobe.workflow import logged


def main(groups: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_auroc(pd.read_parquet(groups), stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.groups, snakemake.output.pdf, log)  # noqa: F821
