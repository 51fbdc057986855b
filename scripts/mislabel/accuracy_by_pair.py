"""Rule accuracy_by_pair: the test accuracy of every network, by mislabelled pair."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.mislabel.jobs import accuracy_by_pair_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    accuracy_by_pair_figure(smk.input[0], Path(smk.output.pdf).with_suffix(""))
