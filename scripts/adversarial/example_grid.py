"""Rule example_grid: originals, adversarial examples and magnified differences, per model."""

from pathlib import Path

from nnprobe.core.runtime import snakemake_job
from nnprobe.studies.adversarial.jobs import example_grid

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with snakemake_job(smk):
    example_grid(smk.params.names, list(smk.input.examples), smk.input.test, Path(smk.output.pdf).with_suffix(""),
                 count=smk.params.examples, magnify=smk.params.magnify)
