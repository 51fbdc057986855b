"""Statistics of the mislabel study: Welch tables and information tables over model groups.

Input of the table functions is the tidy ``per_model_class`` table
(:func:`nnprobe.studies.mislabel.tables.per_model_class_table`): one row per (model, class)
with columns ``pair`` ("a-b" or "none"), ``pair_a``/``pair_b`` (class indices, -1 for
"none"), ``replicate``, ``seed``, ``class``, ``class_name``, ``n_images``, ``accuracy``,
``logloss_bits``, ``pred_0..pred_{K-1}`` (prediction counts) and ``prob_0..prob_{K-1}`` (mean
softmax). The number of classes K is read from the ``prob_*`` columns (or, without them, from
the ``class`` column); nothing here assumes K = 10.

For a target class T and another class C, models fall into three groups (restricted
to T's rows):

* confused: the mislabelled pair contains C but not T (K-2 pairs),
* clean: the pair contains neither T nor C, and is not "none" (C(K-2, 2) pairs),
* baseline: pair == "none".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy as _hier
from scipy.spatial import distance as _dist

from ...core.checks import undefined_comparisons
from ...stats import benjamini_hochberg, check_distribution, holm, kl_bits, welch_test
from .plan import COMPARISON_GROUPS, COMPARISONS

__all__ = [
    "COMPARISONS",
    "WELCH_TEST",
    "group_masks",
    "welch_table",
    "undefined_note",
    "information_table",
    "class_names",
    "class_order",
    "effect_matrix",
    "class_linkage",
]

#: The test of the Welch tables (their ``test`` column, the heatmaps' labels).
WELCH_TEST = "Welch t"


def _check_comparison(comparison: str) -> tuple[str, str]:
    if comparison not in COMPARISON_GROUPS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    return COMPARISON_GROUPS[comparison]  # (group X, group Y): statistics are X minus Y


def _check_columns(table: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(
            f"{what} needs columns {missing} in the per_model_class table; "
            f"it has {list(table.columns)}"
        )


def _prefixed(table: pd.DataFrame, prefix: str) -> list[str]:
    """Columns ``prefix0 .. prefix{K-1}`` in class order."""
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    found = sorted((int(m.group(1)), c) for c in table.columns if (m := pat.match(str(c))))
    idx = [i for i, _ in found]
    if idx != list(range(len(idx))):
        raise ValueError(f"columns {prefix}* must be {prefix}0..{prefix}{{K-1}}, got {[c for _, c in found]}")
    return [c for _, c in found]


def _classes(table: pd.DataFrame) -> list[int]:
    """Class indices 0..K-1, K from the prob_* columns (else the class column)."""
    probs = _prefixed(table, "prob_")
    if probs:
        return list(range(len(probs)))
    return sorted(int(c) for c in pd.unique(table["class"]))


def _class_names(table: pd.DataFrame, classes: Sequence[int]) -> dict[int, str]:
    names = {int(c): str(c) for c in classes}
    if "class_name" in table.columns:
        for c, n in table[["class", "class_name"]].drop_duplicates("class").itertuples(index=False):
            names[int(c)] = str(n)
    return names


def class_names(table: pd.DataFrame) -> list[str]:
    """Class names of a per-model-class table, ordered by class index."""
    _check_columns(table, ["class", "class_name"], "class_names")
    return table.drop_duplicates("class").sort_values("class")["class_name"].astype(str).tolist()


def group_masks(table: pd.DataFrame, target: int, other: int) -> dict[str, pd.Series]:
    """Boolean masks of the three model groups over the rows of ``table`` with class == target.

    The masks are indexed like ``table[table["class"] == target]``:

    * ``"confused"``: the pair contains ``other`` and not ``target``;
    * ``"clean"``: the pair contains neither ``target`` nor ``other`` and is not "none";
    * ``"baseline"``: pair == "none".
    """
    _check_columns(table, ["class", "pair", "pair_a", "pair_b"], "group_masks")
    if target == other:
        raise ValueError(f"target and other must differ, got target=other={target}")
    rows = table[table["class"] == target]
    a, b = rows["pair_a"], rows["pair_b"]
    has_t = (a == target) | (b == target)
    has_o = (a == other) | (b == other)
    baseline = rows["pair"] == "none"
    return {
        "confused": has_o & ~has_t & ~baseline,
        "clean": ~has_o & ~has_t & ~baseline,
        "baseline": baseline,
    }


def welch_table(
    table: pd.DataFrame, comparison: str = "confused_vs_clean", metric: str = "accuracy", fdr_alpha: float = 0.05
) -> pd.DataFrame:
    """Welch t-tests of target class T's ``metric`` between two model groups, for every (T, C).

    One row per ordered pair (T, C), T != C: K(K-1) rows. The groups (X, Y) are
    ``confused_vs_clean`` -> (confused, clean), ``confused_vs_baseline`` -> (confused,
    baseline), ``clean_vs_baseline`` -> (clean, baseline); see :func:`group_masks`.
    The values are T's ``metric`` in each model of the group, so with the default
    metric t > 0 means T is classified better when C is confused (first two
    comparisons). Each row holds :func:`welch_test` of X vs Y (``test`` = "Welch t"); ``q_bh``
    (Benjamini-Hochberg) and ``p_holm`` (Holm) adjust over the K(K-1) tests of this
    comparison; ``significant`` is ``q_bh < fdr_alpha`` (config key ``mislabel.fdr_alpha``:
    the false discovery rate the Benjamini-Hochberg procedure controls). Undefined tests (a group with < 2
    models, or zero variance in both) have NaN t/p/q and are not counted in the
    adjustment.
    """
    gx, gy = _check_comparison(comparison)
    _check_columns(table, ["class", "pair", "pair_a", "pair_b", metric], "welch_table")
    classes = _classes(table)
    names = _class_names(table, classes)
    rows = []
    for t in classes:
        tvals = table.loc[table["class"] == t, metric]
        for c in classes:
            if c == t:
                continue
            masks = group_masks(table, t, c)
            res = welch_test(tvals[masks[gx]].to_numpy(float), tvals[masks[gy]].to_numpy(float))
            rows.append(
                {"target": t, "other": c, "target_name": names[t], "other_name": names[c],
                 "comparison": comparison, "test": WELCH_TEST, **res}
            )
    cols = ["target", "other", "target_name", "other_name", "comparison", "test", "n_x", "n_y",
            "mean_x", "mean_y", "diff", "ci_low", "ci_high", "t", "df", "p", "hedges_g"]
    out = pd.DataFrame(rows, columns=cols)
    out["q_bh"] = benjamini_hochberg(out["p"].to_numpy(float))
    out["p_holm"] = holm(out["p"].to_numpy(float))
    if not 0.0 < fdr_alpha < 1.0:
        raise ValueError(f"config key mislabel.fdr_alpha must be in (0, 1), got {fdr_alpha}")
    out["significant"] = (out["q_bh"] < fdr_alpha).to_numpy(bool)
    out["note"] = [undefined_note(comparison, len(classes), nx, ny, t)
                   for nx, ny, t in zip(out["n_x"], out["n_y"], out["t"])]
    return out


def undefined_note(comparison: str, num_classes: int, n_x: int, n_y: int, t: float = 0.0) -> str:
    """Why a test of ``comparison`` is undefined ("" when it is not): an empty group for this
    number of classes, fewer than 2 models in a group, or no variance in either group."""
    gx, gy = _check_comparison(comparison)
    if min(n_x, n_y) == 0 and comparison in undefined_comparisons(num_classes):
        return undefined_comparisons(num_classes)[comparison]
    if min(n_x, n_y) < 2:
        return f"{gx} has {n_x} model(s) and {gy} {n_y}: a comparison needs 2 or more in each group"
    if not np.isfinite(t):
        return f"no variance in either group ({gx} and {gy} models agree exactly)"
    return ""


def information_table(table: pd.DataFrame, comparison: str = "confused_vs_clean") -> pd.DataFrame:
    """Information about target class T gained or lost between two model groups, in bits.

    For every ordered pair (T, C), T != C, with groups X and Y as in
    :func:`welch_table` (default X = confused, Y = clean):

    * ``logloss_x``, ``logloss_y``: mean over the group's models of T's
      ``logloss_bits`` (mean of ``-log2 p_model(T)`` over T's test images);
    * ``delta_logloss_bits = logloss_x - logloss_y``: bits per image of T that the
      X models need beyond the Y models. Positive (confused vs clean) means not
      confusing C gains information about T;
    * ``kl_bits = KL(P_X || P_Y)`` (:func:`kl_divergence_bits`) where ``P_G`` is the
      group's mean predicted distribution on T's images: the mean over its models of
      T's ``prob_*`` row (mean softmax). Infinite if P_Y has a zero where P_X has not;
    * ``kl_counts_bits``: the same divergence between the pooled hard predictions,
      ``P_G(k) = (N_G(k) + 1) / (sum_j N_G(j) + K)`` where ``N_G(k)`` is the total
      ``pred_k`` count over the group's models, with add-one (Laplace) smoothing so
      that classes never predicted do not make it infinite.

    Groups with no models give NaN.
    """
    gx, gy = _check_comparison(comparison)
    probs = _prefixed(table, "prob_")
    preds = _prefixed(table, "pred_")
    if not probs or not preds:
        raise ValueError(
            "information_table needs prob_0..prob_{K-1} and pred_0..pred_{K-1} columns; "
            f"got {list(table.columns)}"
        )
    if len(probs) != len(preds):
        raise ValueError(f"got {len(probs)} prob_* columns but {len(preds)} pred_* columns")
    _check_columns(table, ["class", "pair", "pair_a", "pair_b", "logloss_bits"], "information_table")
    classes = list(range(len(probs)))
    names = _class_names(table, classes)
    rows = []
    for t in classes:
        sub = table[table["class"] == t]
        for c in classes:
            if c == t:
                continue
            masks = group_masks(table, t, c)
            x, y = sub[masks[gx]], sub[masks[gy]]
            row = {"target": t, "other": c, "target_name": names[t], "other_name": names[c],
                   "comparison": comparison, "n_x": len(x), "n_y": len(y),
                   "logloss_x": np.nan, "logloss_y": np.nan, "delta_logloss_bits": np.nan,
                   "kl_bits": np.nan, "kl_counts_bits": np.nan}
            if len(x) and len(y):
                lx = float(x["logloss_bits"].mean())
                ly = float(y["logloss_bits"].mean())
                px = check_distribution(x[probs].to_numpy(float).mean(axis=0), f"mean prob_* of T={t} in {gx}")
                py = check_distribution(y[probs].to_numpy(float).mean(axis=0), f"mean prob_* of T={t} in {gy}")
                cx = x[preds].to_numpy(float).sum(axis=0) + 1.0
                cy = y[preds].to_numpy(float).sum(axis=0) + 1.0
                row.update(
                    logloss_x=lx, logloss_y=ly, delta_logloss_bits=lx - ly,
                    kl_bits=kl_bits(px, py),
                    kl_counts_bits=kl_bits(cx / cx.sum(), cy / cy.sum()),
                )
            row["note"] = "" if len(x) and len(y) else undefined_note(comparison, len(classes), len(x), len(y))
            rows.append(row)
    return pd.DataFrame(rows)


def class_order(
    classes: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> tuple[list[int], list[tuple[str, int, int]]]:
    """Display order of classes, group by group, and the group spans.

    ``groups`` maps a group name to class names, e.g. ``{"vehicles": [...],
    "animals": [...]}``. Classes are placed group by group in the order given (within
    a group in the order listed), classes in no group last, in their original order.
    Returns ``(order, spans)``: ``order[i]`` is the class index shown at position i;
    ``spans`` holds ``(group, start, stop)`` positions (stop exclusive) of each
    non-empty group, for drawing separators. ``groups=None`` gives the identity order
    and no spans. Raises ``ValueError`` for unknown class names or a class listed twice.
    """
    names = [str(c) for c in classes]
    index = {n: i for i, n in enumerate(names)}
    if not groups:
        return list(range(len(names))), []
    unknown = [str(n) for g in groups.values() for n in g if str(n) not in index]
    if unknown:
        raise ValueError(f"class groups (config key mislabel.class_groups) name {unknown}, which are not classes of "
                         f"the data; its classes are {names}: fix the groups (only the figures use them)")
    order: list[int] = []
    spans: list[tuple[str, int, int]] = []
    for g, members in groups.items():
        start = len(order)
        for n in members:
            i = index[str(n)]
            if i in order:
                raise ValueError(f"class {n!r} is listed twice in class groups (again in group {g!r})")
            order.append(i)
        if len(order) > start:
            spans.append((str(g), start, len(order)))
    order += [i for i in range(len(names)) if i not in order]
    return order, spans


def effect_matrix(welch: pd.DataFrame, value: str = "t") -> np.ndarray:
    """K x K matrix of a :func:`welch_table` column: row = target T, column = other C.

    K = 1 + the largest class index in ``target``/``other``; cells without a row
    (including the diagonal) are NaN. The table must hold a single comparison.
    """
    _check_columns(welch, ["target", "other", value], "effect_matrix")
    if "comparison" in welch.columns and welch["comparison"].nunique() > 1:
        raise ValueError(
            f"effect_matrix needs a table of one comparison, got {sorted(welch['comparison'].unique())}"
        )
    k = int(max(welch["target"].max(), welch["other"].max())) + 1
    m = np.full((k, k), np.nan)
    m[welch["target"].to_numpy(int), welch["other"].to_numpy(int)] = welch[value].to_numpy(float)
    np.fill_diagonal(m, np.nan)
    return m


def class_linkage(welch: pd.DataFrame) -> np.ndarray:
    """Average-linkage clustering of classes from the Welch t matrix (scipy linkage format).

    The symmetric effect of confusing one class of a pair on the other is
    ``s_ab = (t_ab + t_ba) / 2`` where ``t_ab`` is the t of target a with b confused
    (NaN counted as 0). Strongly negative s means each class is classified worse
    when the other is confused: the two share the most features. The distance is
    ``d_ab = s_ab - min_{a != b} s + 1e-9`` (non-negative, smallest for the most
    negative s), so such pairs join first; clusters merge by the average of d
    (UPGMA, ``scipy.cluster.hierarchy.linkage(method="average")``). Returns a
    (K-1) x 4 linkage matrix.
    """
    t = np.nan_to_num(effect_matrix(welch, "t"), nan=0.0)
    k = t.shape[0]
    if k < 2:
        raise ValueError(f"class_linkage needs at least 2 classes, got {k}")
    s = (t + t.T) / 2.0
    off = ~np.eye(k, dtype=bool)
    d = s - s[off].min() + 1e-9
    np.fill_diagonal(d, 0.0)
    return _hier.linkage(_dist.squareform(d, checks=False), method="average")
