"""Rule distortion_figure: the minimal RMS distortion of every attacked image, per model."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.adversarial.jobs import distortion_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    distortion_figure(smk.params.names, list(smk.input.examples), Path(smk.output.pdf).with_suffix(""))
