"""Rule noise_mst: the minimum spanning tree over the class means and one probe set."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import mst_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    mst_figure(smk.input.distances, smk.input.mst, Path(smk.output.pdf).with_suffix(""), probe=smk.wildcards.probe)
