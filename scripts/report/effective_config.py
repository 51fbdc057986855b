"""Rule effective_config: the configuration of the run, defaults filled, for the report."""

import yaml

from nnprobe.core.io import write_text
from nnprobe.core.runtime import report_job

smk = snakemake  # noqa: F821  (the object Snakemake hands every script)
with report_job(smk) as log:
    write_text(yaml.safe_dump(smk.params.config, sort_keys=False, default_flow_style=False), smk.output[0])
    log.info("wrote the effective configuration (%d top-level keys) to %s", len(smk.params.config), smk.output[0])
