"""Rule cross_training_set_tables: Tables 3 and 4, the models of the disjoint halves P1 and P2, and transfer as examples are magnified."""

from pathlib import Path

from nnprobe.core.devices import network_job
from nnprobe.studies.adversarial.transfer_jobs import cross_training_set

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with network_job(smk) as job:
    stems = [Path(smk.output[key]).with_suffix("") for key in ("models_parquet", "matrix_parquet", "curve_parquet")]
    cross_training_set(list(smk.input.weights), list(smk.input.metrics), list(smk.input.examples), smk.input.test,
                       stems, device=job.device, **smk.params)
