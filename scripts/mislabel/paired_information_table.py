"""Rule paired_information_table: bits of information about every target class, replicate by replicate."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import paired_information

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    paired_information(smk.input.table, Path(smk.output[0]).with_suffix(""), smk.wildcards.comparison,
                       smk.params.fdr_alpha)
