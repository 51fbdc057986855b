"""Rule unit_inspection: the top test images of hidden units and of random directions (Sec. 3)."""

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.jobs import unit_inspection

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    unit_inspection(smk.input.weights, smk.input.test, smk.output[0], device=job.device, **smk.params)
