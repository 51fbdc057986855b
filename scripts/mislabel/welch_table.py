"""Rule welch_table: Welch's t-tests of every (target, other) class pair for one comparison."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import welch

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    welch(smk.input.table, Path(smk.output[0]).with_suffix(""), smk.wildcards.comparison, smk.params.fdr_alpha)
