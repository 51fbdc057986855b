"""Rule distortion_figure: the minimal RMS distortion of every attacked image, per model."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import distortion_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    distortion_figure(smk.params.names, list(smk.input.examples), Path(smk.output.pdf).with_suffix(""))
