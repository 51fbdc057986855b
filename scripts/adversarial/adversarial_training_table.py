"""Rule adversarial_training_table: the adversarial-training networks by regime (table, figures)."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import adversarial_training_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    adversarial_training_report(list(smk.input.results), Path(smk.output.tables_parquet).with_suffix(""),
                                Path(smk.output.pdf).with_suffix(""), list(smk.input.monitors),
                                Path(smk.output.monitor_pdf).with_suffix(""))
