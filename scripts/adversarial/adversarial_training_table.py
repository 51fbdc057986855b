"""Rule adversarial_training_table: the adversarial-training networks by regime (table, figure)."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.adversarial.jobs import adversarial_training_report

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    adversarial_training_report(list(smk.input), Path(smk.output.tables[0]).with_suffix(""),
                                Path(smk.output.pdf).with_suffix(""))
