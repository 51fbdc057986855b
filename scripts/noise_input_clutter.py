"""Snakemake script of rule noise_input_clutter: how spread out each test class is in pixel space."""

from pathlib import Path

import pandas as pd

from nnprobe.data import load_split
from nnprobe.noise import clutter
from nnprobe.workflow import logged


def main(test: str, table: str, log) -> None:
    split = load_split(Path(test))
    rows = []
    for c, name in enumerate(split.classes):
        x = split.images[split.labels == c].reshape(int((split.labels == c).sum()), -1) / 255.0
        spread = clutter(x)
        rows.append({"class": c, "group": name, "n": len(x), "input_mean_distance": spread["mean_distance"],
                     "input_participation_ratio": spread["participation_ratio"]})
        log.info("%s: %s", name, spread)
    pd.DataFrame(rows).to_parquet(table, index=False)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input.test, snakemake.output.table, log)  # noqa: F821
