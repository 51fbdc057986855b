"""The report jobs of the mislabel study, one function per rule: tables and figures from the
per-model tables, without torch (they run in envs/analysis.yaml).

per-model tables -> per-model class table -> Welch and information tables (and, in the paired
design, the paired and paired information tables) -> heatmaps, accuracy by pair, dendrogram.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ...core.io import atomic_write, write_parquet, write_tables
from .figures import accuracy_by_pair, class_dendrogram, information_heatmap, t_heatmap
from .statistics import (
    class_linkage,
    class_names,
    class_order,
    information_table,
    welch_table,
)
from .tables import combine_tables

__all__ = ["collect_metrics", "welch", "information", "paired", "paired_information", "t_heatmap_figure",
           "information_heatmap_figure", "accuracy_by_pair_figure", "class_dendrogram_figure"]

log = logging.getLogger("nnprobe.mislabel")

def collect_metrics(metrics: Sequence[str], table: str, csv: str) -> None:
    """The per-model tables of every population as one table (Parquet and CSV)."""
    frame = combine_tables([pd.read_parquet(path) for path in metrics])
    write_parquet(frame, table)
    atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False))
    log.info("%d rows: %d models in %d populations x %d classes", len(frame), frame.groupby(["pair", "replicate"]).ngroups,
             frame["pair"].nunique(), frame["class"].nunique())


def welch(table: str, stem: str, comparison: str, fdr_alpha: float = 0.05) -> None:
    """Welch's t-tests of every (target, other) class for one comparison (Parquet, CSV, Markdown)."""
    result = welch_table(pd.read_parquet(table), comparison, fdr_alpha=fdr_alpha)
    write_tables(result, stem)
    _say_undefined(result, comparison)
    log.info("%s: %d tests, %d with BH q < %g", comparison, len(result), int(result["significant"].sum()), fdr_alpha)


def information(table: str, stem: str, comparison: str) -> None:
    """Information about every target class gained or lost for one comparison, in bits."""
    result = information_table(pd.read_parquet(table), comparison)
    write_tables(result, stem)
    _say_undefined(result, comparison)
    log.info("%s: %d ordered pairs, largest |delta log2-loss| %.4f bits", comparison, len(result),
             result["delta_logloss_bits"].abs().max())


def paired(table: str, stem: str, comparison: str, fdr_alpha: float = 0.05) -> None:
    """Paired t-tests over replicates of every (target, other) class for one comparison, with the
    mixed-model cross-check (Parquet, CSV, Markdown): networks of the paired design only."""
    from .paired import paired_table  # here: only the paired jobs run it (and statsmodels), not every report job

    result = paired_table(pd.read_parquet(table), comparison, fdr_alpha=fdr_alpha)
    write_tables(result, stem)
    _say_undefined(result, comparison)
    fitted = result["mixed_note"] != ""
    if fitted.any():
        log.warning("%s: the mixed model warned in %d of %d fits, e.g. %s", comparison, int(fitted.sum()),
                    len(result), result.loc[fitted, "mixed_note"].iloc[0])
    log.info("%s: %d paired tests over %d replicates, %d with BH q < %g (mixed model: %d)", comparison, len(result),
             int(result["n_replicates"].max()), int(result["significant"].sum()), fdr_alpha,
             int((result["mixed_q_bh"] < fdr_alpha).sum()))


def paired_information(table: str, stem: str, comparison: str, fdr_alpha: float = 0.05) -> None:
    """Information about every target class gained or lost for one comparison, in bits, replicate by
    replicate (paired design)."""
    from .paired import paired_information_table  # here, as in paired()

    result = paired_information_table(pd.read_parquet(table), comparison, fdr_alpha=fdr_alpha)
    write_tables(result, stem)
    _say_undefined(result, comparison)
    log.info("%s: %d ordered pairs over %d replicates, %d paired deltas with BH q < %g", comparison, len(result),
             int(result["n_replicates"].max()), int(result["significant"].sum()), fdr_alpha)


def _say_undefined(result: pd.DataFrame, comparison: str) -> None:
    notes = result.loc[result["note"] != "", "note"]
    if len(notes) == len(result):
        log.warning("%s: every entry is undefined: %s", comparison, notes.iloc[0])
    elif len(notes):
        log.warning("%s: %d of %d entries are undefined, e.g. %s", comparison, len(notes), len(result), notes.iloc[0])


def _order(table: str, class_groups: Mapping[str, Sequence[str]] | None):
    names = class_names(pd.read_parquet(table, columns=["class", "class_name"]))
    return class_order(names, class_groups)


def t_heatmap_figure(welch_path: str, table: str, stem: str, class_groups: Mapping[str, Sequence[str]] | None,
                     fdr_alpha: float = 0.05, shared: Sequence[str] = ()) -> None:
    """The t of every (target, other) pair as a heatmap, classes in the config's groups: Welch's, or
    the paired t when ``welch_path`` is a paired table (the figure names the table's test). Its
    colour scale is shared with the tables ``shared`` names (the run's other comparisons)."""
    order, spans = _order(table, class_groups)
    others = [pd.read_parquet(p) for p in shared if Path(p) != Path(welch_path)]
    written = t_heatmap(pd.read_parquet(welch_path), Path(stem), order=order, spans=spans, fdr_alpha=fdr_alpha,
                        shared=others)
    log.info("wrote %s", [str(p) for p in written])


def information_heatmap_figure(information_path: str, table: str, stem: str, value: str,
                               class_groups: Mapping[str, Sequence[str]] | None, fdr_alpha: float = 0.05) -> None:
    """One information value (``delta_logloss_bits`` or ``kl_bits``) of every pair as a heatmap, from an
    information table or a paired one (whose significant deltas are starred at ``fdr_alpha``)."""
    order, spans = _order(table, class_groups)
    written = information_heatmap(pd.read_parquet(information_path), Path(stem), value=value, order=order, spans=spans,
                                  fdr_alpha=fdr_alpha)
    log.info("wrote %s", [str(p) for p in written])


def accuracy_by_pair_figure(table: str, stem: str) -> None:
    """The test accuracy of every network, grouped by its mislabelled pair."""
    written = accuracy_by_pair(pd.read_parquet(table), Path(stem))
    log.info("wrote %s", [str(p) for p in written])


def class_dendrogram_figure(welch_path: str, table: str, stem: str) -> None:
    """Classes clustered by how confusing one helps or hurts another (average linkage of t)."""
    names = class_names(pd.read_parquet(table, columns=["class", "class_name"]))
    written = class_dendrogram(class_linkage(pd.read_parquet(welch_path)), names, Path(stem))
    log.info("wrote %s", [str(p) for p in written])
