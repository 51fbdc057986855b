"""Rule visualize_models_report: the networks' accuracy and robustness (table, figure)."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.visualize.jobs import models_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    models_report(list(smk.input), Path(smk.output[0]).with_suffix(""), Path(smk.output.pdf).with_suffix(""))
