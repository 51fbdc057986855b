"""Rule t_heatmap: the Welch t of one comparison as a class-by-class heatmap."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.mislabel.reports import t_heatmap_figure

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    t_heatmap_figure(smk.input.welch, smk.input.table, Path(smk.output.pdf).with_suffix(""), smk.params.class_groups,
                     smk.params.fdr_alpha, shared=list(smk.input.scale))
