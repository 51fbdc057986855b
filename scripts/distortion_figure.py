"""Snakemake script of rule distortion_figure: the distribution of minimal distortion per zoo model."""

from pathlib import Path

import numpy as np

from nnprobe.plots import distortion_distributions
from nnprobe.workflow import logged


def main(names: list[str], examples: list[str], pdf: str, log) -> None:
    distortions, failures = {}, {}
    for name, path in zip(names, examples):
        with np.load(path) as ex:
            distortions[name] = ex["distortion"][ex["success"]]
            failures[name] = int((~ex["success"]).sum())
    written = distortion_distributions(distortions, failures, Path(pdf).with_suffix(""))
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.params.names, list(snakemake.input.examples), snakemake.output.pdf, log)  # noqa: F821
