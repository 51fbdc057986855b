"""Rule noise_train: one ResNet-18 of the noise study (all classes, or the two binary classes)."""

from nnprobe.core.devices import network_job
from nnprobe.studies.noise.jobs import train_resnet

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    train_resnet(smk.input.train, smk.input.test, dict(smk.output.items()), task=smk.wildcards.task,
                 seed_index=int(smk.wildcards.seed), device=job.device, **smk.params)
