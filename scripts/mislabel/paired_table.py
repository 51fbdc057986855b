"""Rule paired_table: paired t-tests over replicates of every (target, other) class pair for one comparison."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import paired

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    paired(smk.input.table, Path(smk.output[0]).with_suffix(""), smk.wildcards.comparison, smk.params.fdr_alpha)
