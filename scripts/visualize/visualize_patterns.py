"""Rule visualize_patterns: the class-wise predictive patterns of one network (Zhao et al. 2021)."""

from nnprobe.core.devices import network_job
from nnprobe.studies.visualize.jobs import class_patterns_of

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    class_patterns_of(smk.input.train, smk.input.test, smk.input.weights, dict(smk.output.items()),
                      name=smk.wildcards.model, device=job.device, progress=job.engine["progress"],
                      **smk.params)
