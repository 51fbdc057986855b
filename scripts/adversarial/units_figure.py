"""Rule units_figure: the top images of hidden units and random directions, one row each."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import units_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    units_figure(smk.input.arrays, Path(smk.output.pdf).with_suffix(""))
