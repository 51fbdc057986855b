"""Rule example_grid: originals, adversarial examples and magnified differences, per model."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.adversarial.reports import example_grid

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    example_grid(smk.params.names, list(smk.input.examples), smk.input.images, Path(smk.output.pdf).with_suffix(""),
                 count=smk.params.examples, magnify=smk.params.magnify)
