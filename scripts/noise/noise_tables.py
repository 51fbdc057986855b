"""Rule noise_tables: the noise study's tables across networks."""

from pathlib import Path

from nnprobe.core.runtime import report_job
from nnprobe.studies.noise.reports import noise_tables

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk):
    stems = {Path(p).with_suffix("").name: Path(p).with_suffix("") for p in smk.output}
    noise_tables(list(smk.input.groups), list(smk.input.distances), list(smk.input.mst), list(smk.input.metrics),
                 smk.input.input_clutter, stems, binary_classes=smk.params.binary_classes)
