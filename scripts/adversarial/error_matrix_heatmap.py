"""Rule error_matrix_heatmap: an error-rate table of the adversarial study as a heatmap."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import error_matrix_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    error_matrix_figure(smk.input.table, smk.wildcards.matrix, Path(smk.output.pdf).with_suffix(""))
