"""The report jobs of the visualize study, one function per rule: tables and figures from what the
network jobs wrote, without torch (they run in envs/analysis.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.io import write_tables
from .figures import class_pattern_grid, feature_figures, robustness_curves
from .tables import models_table

__all__ = ["feature_figures_of", "patterns_report", "models_report"]

log = logging.getLogger("nnprobe.visualize")

def feature_figures_of(arrays: str, stems: Mapping[str, str]) -> None:
    """The activation-maximisation, caricature and inversion figures of one network."""
    with np.load(arrays, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    written = feature_figures(loaded, Path(stems["am"]), Path(stems["caricature"]), Path(stems["inversion"]))
    log.info("wrote %s", [str(p) for p in written])


def patterns_report(tables: Sequence[str], arrays: Sequence[str], stem: str, figure_stem: str) -> None:
    """The class-pattern tables of every network as one, and the patterns of all networks in one figure."""
    table = pd.concat([pd.read_parquet(path) for path in tables], ignore_index=True)
    write_tables(table, stem)
    loaded = []
    for path in arrays:
        with np.load(path, allow_pickle=False) as npz:
            loaded.append({k: npz[k] for k in npz.files})
    settings = list(dict.fromkeys(table["model"]))
    target = int(loaded[0]["target"])
    for name in settings:
        row = table[(table["model"] == name) & (table["class"] == target)].iloc[0]
        log.info("%s, backdoor target class %s: predictive power %.3f, %.0f%% of its pattern in the trigger region, "
                 "covering %.0f%% of it", name, row["class_name"], row["predictive_power"],
                 100 * row["in_trigger_region"], 100 * row["trigger_region_covered"])
    written = class_pattern_grid(
        settings, [a["canvases"] for a in loaded], [a["masks"] for a in loaded], [a["patterns"] for a in loaded],
        [a["predictive_power"] for a in loaded], [str(c) for c in loaded[0]["classes"]],
        tuple(int(v) for v in loaded[0]["trigger"]), target, Path(figure_stem))
    log.info("wrote %s", [str(p) for p in written])


def models_report(metrics: Sequence[str], stem: str, figure_stem: str) -> None:
    """The networks' accuracy, trigger success and robust accuracy (table) and robustness curves."""
    long = pd.concat([pd.read_parquet(path) for path in metrics], ignore_index=True)
    wide = models_table(long)
    write_tables(wide, stem)
    log.info("\n%s", wide.to_string())
    written = robustness_curves(long, Path(figure_stem))
    log.info("wrote %s", [str(p) for p in written])
