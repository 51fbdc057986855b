"""Rules check_dataset and check_adversarial_dataset: does the prepared data fit every key of the config that
names, counts or sizes its classes and images?

The expectations come from the workflow's config, not from params (rules/data.smk says why).
"""

from nnprobe.core.checks import check_dataset, data_expectations
from nnprobe.core.runtime import report_job

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    check_dataset(smk.input.manifest, smk.output[0], expected=data_expectations(smk.config, smk.params.dataset),
                  studies=smk.params.studies)
