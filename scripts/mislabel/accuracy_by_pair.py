"""Rule accuracy_by_pair: the test accuracy of every network, by mislabelled pair."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import accuracy_by_pair_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    accuracy_by_pair_figure(smk.input.table, Path(smk.output.pdf).with_suffix(""))
