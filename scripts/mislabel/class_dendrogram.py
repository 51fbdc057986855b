"""Rule class_dendrogram: the classes clustered by their Welch t profiles."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import class_dendrogram_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    class_dendrogram_figure(smk.input.welch, smk.input.table, Path(smk.output.pdf).with_suffix(""))
