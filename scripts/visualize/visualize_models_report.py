"""Rule visualize_models_report: the networks' accuracy and robustness (table, figure)."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.visualize.reports import models_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    models_report(list(smk.input.metrics), Path(smk.output.parquet).with_suffix(""), Path(smk.output.pdf).with_suffix(""))
