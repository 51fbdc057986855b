"""Rule noise_probe: one ResNet-18 probed with every probe set."""

from nnprobe.core.devices import network_job
from nnprobe.studies.noise.jobs import probe_resnet

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    probe_resnet(smk.input.train, smk.input.test, smk.input.weights, dict(smk.output.items()), task=smk.wildcards.task,
                 seed_index=int(smk.wildcards.seed), device=job.device, **smk.params)
