"""Rule visualize_feature_figures: the three feature-visualisation figures of one network."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.visualize.reports import feature_figures_of

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    stems = {kind: Path(smk.output[f"{kind}_pdf"]).with_suffix("") for kind in ("am", "caricature", "inversion")}
    feature_figures_of(smk.input.arrays, stems)
