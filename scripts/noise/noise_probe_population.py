"""Rule noise_probe_population: the mislabel study's baseline CNNs probed with every probe set."""

from nnprobe.core.devices import network_job
from nnprobe.studies.noise.jobs import probe_population

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    probe_population(smk.input.train, smk.input.test, list(smk.input.weights), dict(smk.output.items()), device=job.device,
                     **smk.params)
