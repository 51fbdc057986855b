"""Rule zoo_table: Table 1's columns (errors, minimal distortion) for every model of the zoo."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.adversarial.jobs import zoo_summary

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    zoo_summary(list(smk.input.metrics), list(smk.input.examples), Path(smk.output[0]).with_suffix(""))
