"""Snakemake script of rule noise_binary: where the two-class networks send every other class and probe set."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_binary
from nnprobe.workflow import logged


def main(binary: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_binary(pd.read_parquet(binary), stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.binary, snakemake.output.pdf, log)  # noqa: F821
