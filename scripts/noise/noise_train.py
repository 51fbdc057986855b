"""Rule noise_train: one ResNet-18 of the noise study (all classes, or the two binary classes)."""

from nnprobe.core.devices import network_job
from nnprobe.studies.noise.jobs import train_resnet

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    # channels_last and compile change speed only: read from the config, not params (README, "What reruns")
    speed = {key: smk.config["noise"]["train"][key] for key in ("channels_last", "compile")}
    train_resnet(smk.input.train, smk.input.test, dict(smk.output.items()), task=smk.wildcards.task,
                 seed_index=int(smk.wildcards.seed), device=job.device, engine=job.engine, seed=smk.params.seed,
                 width=smk.params.width, train={**smk.params.train, **speed},
                 binary_classes=smk.params.binary_classes, checkpoints=smk.params.checkpoints)
