"""Rules check_dataset and check_adversarial_dataset: does the prepared data fit the study's config?"""

from nnprobe.core.checks import check_dataset
from nnprobe.core.runtime import report_job

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    check_dataset(smk.input.manifest, smk.output[0], expected=smk.params.expected,
                  studies=[smk.wildcards.get("study", "adversarial")])
