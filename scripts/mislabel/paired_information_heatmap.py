"""Rule paired_information_heatmap: one paired information value (bits) as a class-by-class heatmap."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import information_heatmap_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    information_heatmap_figure(smk.input.information, smk.input.table, Path(smk.output.pdf).with_suffix(""),
                               smk.wildcards.value, smk.params.class_groups, smk.params.fdr_alpha)
