"""Rule information_table: bits of information about every target class, for one comparison."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import information

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    information(smk.input.table, Path(smk.output[0]).with_suffix(""), smk.wildcards.comparison)
