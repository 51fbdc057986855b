"""Rule train_zoo_model: one network of the Szegedy et al. zoo on all of MNIST, P1 or P2."""

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.jobs import train_zoo

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    train_zoo(smk.input.train, smk.input.test, dict(smk.output.items()), trainset=smk.wildcards.trainset,
              device=job.device, engine=job.engine, **smk.params)
