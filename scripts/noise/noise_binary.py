"""Rule noise_binary: the two-class networks' share of everything assigned to the first class."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.noise.jobs import binary_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    binary_figure(smk.input.binary, Path(smk.output.pdf).with_suffix(""))
