"""Rule noise_auroc: AUROC of the maximum softmax probability, test images vs each probe set."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import auroc_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    auroc_figure(smk.input.groups, Path(smk.output.pdf).with_suffix(""))
