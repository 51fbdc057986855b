"""Rule unit_inspection: the top test images of hidden units and of random directions (Sec. 3)."""

from pathlib import Path

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.jobs import unit_inspection

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    unit_inspection(smk.input.weights, smk.input.test, Path(smk.output.pdf).with_suffix(""), device=job.device,
                    **smk.params)
