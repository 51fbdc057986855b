"""Rule noise_input_clutter: the clutter of every class in pixel space."""

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import input_clutter

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    input_clutter(smk.input.test, smk.output.table)
