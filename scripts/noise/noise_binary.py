"""Rule noise_binary: the two-class networks' share of everything assigned to the first class."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import binary_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    binary_figure(smk.input.binary, Path(smk.output.pdf).with_suffix(""))
