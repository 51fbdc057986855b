"""Rule information_heatmap: one information value of every class pair as a heatmap."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import information_heatmap_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    information_heatmap_figure(smk.input.information, smk.input.table, Path(smk.output.pdf).with_suffix(""),
                               smk.wildcards.value, smk.params.class_groups)
