"""Rule prepare_dataset (and prepare_adversarial_dataset): the configured dataset as prepared splits."""

from nnprobe.core.runtime import report_job
from nnprobe.core.sources import prepare_dataset

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    prepare_dataset(smk.params.dataset, smk.output.train, smk.output.test, smk.output.manifest)
