"""Rule adversarial_training: one FC100-100-10 under one regime of the comparison (its record and log)."""

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.regimes import adversarial_training

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    adversarial_training(smk.input.train, smk.input.test, dict(smk.output.items()), regime=smk.wildcards.regime,
                         replicate=int(smk.wildcards.replicate), device=job.device,
                         engine=job.engine, **smk.params)
