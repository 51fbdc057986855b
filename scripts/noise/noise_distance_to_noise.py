"""Rule noise_distance_to_noise: every class's cosine distance to each probe set."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import distance_to_noise_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    distance_to_noise_figure(smk.input.distances, Path(smk.output.pdf).with_suffix(""))
