"""Rules train_population__*: train one job's networks (a pack of pairs x a block of replicates) as one population.

The job's networks are read from its outputs (networks/PAIR/rNNN/{weights.safetensors,metrics.parquet}),
its epoch history and checkpoints go beside its log; speed keys (train.layout, train.compile) and
the engine's display keys come from the config, not from params, so changing them reruns nothing
(README, "What reruns").
"""

from nnprobe.core.devices import network_job
from nnprobe.core.naming import group_network_files
from nnprobe.studies.mislabel.jobs import train_population

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    speed = {key: smk.config["train"][key] for key in ("layout", "compile")}
    train_population(smk.input.train, smk.input.test, group_network_files(smk.output), job.history,
                     checkpoints=job.checkpoints, device=job.device, engine=job.engine, speed=speed, **smk.params)
