"""Rule train_population: train and evaluate the population of a pack of pairs ("none+0-1+0-2")."""

from nnprobe.core.devices import network_job
from nnprobe.studies.mislabel.jobs import train_population

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    train_population(smk.input.train, smk.input.test, dict(smk.output.items()), pairs=smk.wildcards.pairs.split("+"),
                     device=job.device, **smk.params)
