"""Rule visualize_patterns_report: the class-pattern tables as one, and the patterns in one figure."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.visualize.reports import patterns_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    patterns_report(list(smk.input.tables), list(smk.input.arrays), Path(smk.output.parquet).with_suffix(""),
                    Path(smk.output.pdf).with_suffix(""))
