"""Rule cross_model_table: every model's adversarial examples (and controls) fed to every model."""

from pathlib import Path

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.transfer_jobs import cross_model

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    cross_model(list(smk.input.weights), list(smk.input.examples), smk.input.images, Path(smk.output[0]).with_suffix(""),
                device=job.device, **smk.params)
