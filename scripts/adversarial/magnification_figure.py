"""Rule magnification_figure: transfer of the P1/P2 models' examples as they are magnified."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import magnification_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    magnification_figure(smk.input.table, Path(smk.output.pdf).with_suffix(""))
