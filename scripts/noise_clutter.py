"""Snakemake script of rule noise_clutter: class clutter against the noise each class attracts."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_clutter
from nnprobe.workflow import logged


def main(clutter: str, correlations: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_clutter(pd.read_parquet(clutter), pd.read_parquet(correlations), stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.clutter, snakemake.input.correlations, snakemake.output.pdf, log)  # noqa: F821
