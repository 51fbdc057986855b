"""Snakemake script of rule noise_distance_to_noise: every class mean's cosine distance to every probe set's mean."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import noise_distance_to_noise
from nnprobe.workflow import logged


def main(distances: str, pdf: str, log) -> None:
    stem = Path(pdf).with_suffix("")
    written = noise_distance_to_noise(pd.read_parquet(distances), stem)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.distances, snakemake.output.pdf, log)  # noqa: F821
