"""Snakemake script of rule noise_mst: the minimum spanning tree of class means and one probe set's mean."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_mst
from nnprobe.workflow import logged


def main(distances: str, mst: str, probe: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_mst(pd.read_parquet(distances), pd.read_parquet(mst), probe, stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.distances, snakemake.input.mst, snakemake.wildcards.probe, snakemake.output.pdf, log)  # noqa: F821
