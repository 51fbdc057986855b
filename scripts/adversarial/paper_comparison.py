"""Rule paper_comparison: our Tables 1-4 beside the paper's, and the cells within tolerance per table."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import paper_comparison_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    paper_comparison_report(smk.input.zoo, smk.input.cross_model, smk.input.cts_models, smk.input.cts_matrix,
                            Path(smk.output.parquet).with_suffix(""), Path(smk.output.counts_parquet).with_suffix(""))
