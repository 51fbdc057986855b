"""Rule visualize_train: train one network of the visualize study and evaluate it."""

from nnprobe.core.devices import network_job
from nnprobe.studies.visualize.jobs import train_network

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    train_network(smk.input.train, smk.input.test, dict(smk.output.items()), name=smk.wildcards.model,
                  device=job.device, engine=job.engine, **smk.params)
