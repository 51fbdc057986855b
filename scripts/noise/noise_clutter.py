"""Rule noise_clutter: clutter of every class against the noise it attracts."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import clutter_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    clutter_figure(smk.input.clutter, smk.input.correlations, Path(smk.output.pdf).with_suffix(""))
