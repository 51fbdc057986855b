"""Rule visualize_features: activation maximisation, caricatures and inversions of one network."""

from nnprobe.core.devices import network_job
from nnprobe.studies.visualize.jobs import features_of

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    features_of(smk.input.train, smk.input.test, smk.input.weights, smk.output[0], name=smk.wildcards.model,
                device=job.device, progress=job.engine["progress"], **smk.params)
