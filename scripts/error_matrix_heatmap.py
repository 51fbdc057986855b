"""Snakemake script of rule error_matrix_heatmap: an error-rate table of the adversarial study as a heatmap."""

from pathlib import Path

import pandas as pd

from nnprobe.plots import error_matrix_heatmap
from nnprobe.workflow import logged

TITLES = {
    "cross_model": "Cross-model generalisation of minimal adversarial examples: error (%)",
    "cross_training_set": "Cross-training-set generalisation (models on P1 and P2): error (%)",
}


def main(table: str, matrix: str, pdf: str, log) -> None:
    written = error_matrix_heatmap(pd.read_parquet(table), Path(pdf).with_suffix(""), TITLES[matrix])
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input[0], snakemake.wildcards.matrix, snakemake.output.pdf, log)  # noqa: F821
