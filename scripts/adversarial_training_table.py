"""Snakemake script of rule adversarial_training_table: test error per training regime over seeds."""

import json
from pathlib import Path

import pandas as pd

from nnprobe.plots import error_by_regime
from nnprobe.stats import to_tables
from nnprobe.workflow import logged


def main(results: list[str], table_stem: Path, pdf: str, log) -> None:
    networks = pd.DataFrame([json.loads(Path(p).read_text()) for p in results])
    summary = (
        networks.groupby("regime", sort=False)
        .agg(
            networks=("test_error", "size"),
            mean_test_error=("test_error", "mean"),
            sd_test_error=("test_error", "std"),
            min_test_error=("test_error", "min"),
            max_test_error=("test_error", "max"),
            mean_train_error=("train_error", "mean"),
            mean_train_seconds=("train_seconds", "mean"),
        )
        .reset_index()
    )
    log.info("\n%s\n\n%s", networks.to_string(index=False), summary.to_string(index=False))
    to_tables(summary, table_stem)
    written = error_by_regime(networks, Path(pdf).with_suffix(""))
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            list(snakemake.input),  # noqa: F821
            Path(snakemake.output.tables[0]).with_suffix(""),  # noqa: F821
            snakemake.output.pdf,  # noqa: F821
            log,
        )
