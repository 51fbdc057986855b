"""Rules download_cifar10, download_mnist, download_fashion_mnist: the official archives, checked."""

from nnprobe.core.naming import download_allowed
from nnprobe.core.runtime import report_job
from nnprobe.core.sources import download_torchvision

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    download_torchvision(smk.params.name, smk.wildcards.root, download=download_allowed(smk.config, smk.wildcards.root))
