"""Rule train_population: train and evaluate a pack of pairs ("0-1+0-2") x a block of replicates ("r0-9")."""

from nnprobe.core.devices import network_job
from nnprobe.core.naming import block_replicates
from nnprobe.studies.mislabel.jobs import train_population

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    train_population(smk.input.train, smk.input.test, dict(smk.output.items()), pairs=smk.wildcards.pairs.split("+"),
                     replicates=block_replicates(smk.wildcards.block), device=job.device, **smk.params)
