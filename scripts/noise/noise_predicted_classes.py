"""Rule noise_predicted_classes: where each probe set lands, per network of one source."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import predicted_classes_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    predicted_classes_figure(smk.input.groups, smk.input.agreement, Path(smk.output.pdf).with_suffix(""), source=smk.wildcards.source)
