"""Snakemake script of rule zoo_table: Table 1 of Szegedy et al. (2013), one row per model."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nnprobe.stats import to_tables
from nnprobe.workflow import logged


def main(metrics: list[str], examples: list[str], stem: Path, log) -> None:
    rows = []
    for metrics_path, examples_path in zip(metrics, examples):
        m = json.loads(Path(metrics_path).read_text())
        with np.load(examples_path) as ex:
            success, distortion = ex["success"], ex["distortion"]
            attack_seconds = float(ex["seconds"])
        rows.append(
            {
                "model": m["model"],
                "train_error": m["train_error"],
                "test_error": m["test_error"],
                # Over the images whose attack succeeded (all, unless "failed" > 0); images the
                # model already gets wrong count with distortion 0 (0% accuracy needs no change).
                "mean_min_distortion": float(np.nanmean(distortion)) if success.any() else float("nan"),
                "median_min_distortion": float(np.nanmedian(distortion)) if success.any() else float("nan"),
                "attacked": int(success.size),
                "already_wrong": int((distortion == 0).sum()),
                "failed": int((~success).sum()),
                "train_seconds": m["train_seconds"],
                "attack_seconds": attack_seconds,
            }
        )
    table = pd.DataFrame(rows)
    log.info("\n%s", table.to_string(index=False))
    to_tables(table, stem)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        stem = Path(snakemake.output[0]).with_suffix("")  # noqa: F821
        main(list(snakemake.input.metrics), list(snakemake.input.examples), stem, log)  # noqa: F821
