"""Rule collect_metrics: the per-model tables of every population as one table."""

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import collect_metrics

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    collect_metrics(list(smk.input.metrics), smk.output.table, smk.output.csv)
