"""Rule zoo_table: Table 1's columns (errors, minimal distortion) for every model of the zoo."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import zoo_summary

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    zoo_summary(list(smk.input.metrics), list(smk.input.examples), Path(smk.output[0]).with_suffix(""))
