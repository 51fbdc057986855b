"""Snakemake script of rule effective_config: the configuration this run used, defaults filled."""

import yaml

from nnprobe.workflow import logged


def main(config: dict, path: str, log) -> None:
    with open(path, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False, default_flow_style=False)
    log.info("wrote the effective configuration (%d top-level keys) to %s", len(config), path)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.params.config, snakemake.output[0], log)  # noqa: F821
