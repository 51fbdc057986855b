"""Statistics of the mislabel study: Welch tests, multiple testing, information in bits.

Input of the table functions is the tidy ``per_model_class`` table: one row per
(model, class) with columns ``pair`` ("a-b" or "none"), ``pair_a``/``pair_b`` (class
indices, -1 for "none"), ``replicate``, ``seed``, ``class``, ``class_name``,
``n_images``, ``accuracy``, ``logloss_bits``, ``pred_0..pred_{K-1}`` (prediction
counts) and ``prob_0..prob_{K-1}`` (mean softmax). The number of classes K is read
from the ``prob_*`` columns (or, without them, from the ``class`` column); nothing here
assumes K = 10.

For a target class T and another class C, models fall into three groups (restricted
to T's rows):

* confused: the mislabelled pair contains C but not T (K-2 pairs),
* clean: the pair contains neither T nor C, and is not "none" (C(K-2, 2) pairs),
* baseline: pair == "none".

This module is pure: it imports no other nnprobe module and no Snakemake.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.cluster import hierarchy as _hier
from scipy.spatial import distance as _dist

__all__ = [
    "COMPARISONS",
    "hedges_g",
    "welch_test",
    "holm",
    "benjamini_hochberg",
    "group_masks",
    "welch_table",
    "kl_divergence_bits",
    "information_table",
    "class_order",
    "effect_matrix",
    "class_linkage",
    "to_tables",
]

COMPARISONS = ("confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline")

#: comparison -> (group X, group Y); statistics are always X minus Y.
_GROUPS: dict[str, tuple[str, str]] = {
    "confused_vs_clean": ("confused", "clean"),
    "confused_vs_baseline": ("confused", "baseline"),
    "clean_vs_baseline": ("clean", "baseline"),
}

#: Tolerance on sum(p) = 1 when checking that a vector is a probability distribution
#: (mean softmax stored as float32 is off by ~1e-7 per class).
_SUM_TOL = 1e-4


# --------------------------------------------------------------------------- tests


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN; drop missing values before testing")
    return a


def hedges_g(x, y) -> float:
    """Bias-corrected standardised mean difference of ``x - y`` (Hedges' g).

    ``g = J * (mean_x - mean_y) / s_p`` with the pooled standard deviation
    ``s_p = sqrt(((n_x - 1) s_x^2 + (n_y - 1) s_y^2) / (n_x + n_y - 2))`` (``ddof=1``
    variances) and the small-sample correction ``J = 1 - 3 / (4 (n_x + n_y) - 9)``.

    References: Hedges, L. V. (1981). Distribution theory for Glass's estimator of
    effect size and related estimators. J. Educ. Stat. 6(2), 107-128; Hedges & Olkin
    (1985), Statistical Methods for Meta-Analysis, ch. 5.

    Returns NaN when a group has fewer than 2 values or ``s_p == 0``.
    """
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    nx, ny = x.size, y.size
    if nx < 2 or ny < 2:
        return float("nan")
    sp2 = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    if not sp2 > 0:
        return float("nan")
    j = 1.0 - 3.0 / (4.0 * (nx + ny) - 9.0)
    return float(j * (x.mean() - y.mean()) / np.sqrt(sp2))


def welch_test(x, y) -> dict:
    """Welch's unequal-variance t-test of ``mean_x - mean_y``, two-sided.

    ``t = (m_x - m_y) / sqrt(s_x^2/n_x + s_y^2/n_y)`` with the Welch-Satterthwaite
    degrees of freedom ``df = (s_x^2/n_x + s_y^2/n_y)^2 / ((s_x^2/n_x)^2/(n_x-1) +
    (s_y^2/n_y)^2/(n_y-1))``; the 95 % confidence interval of the difference is
    ``diff +- t_{0.975, df} * se``. Computed by ``scipy.stats.ttest_ind(equal_var=False)``
    and its ``confidence_interval(0.95)``. Reference: Welch, B. L. (1947). The
    generalization of "Student's" problem when several different population variances
    are involved. Biometrika 34, 28-35.

    Returns a dict with keys ``n_x, n_y, mean_x, mean_y, diff, t, df, p, ci_low,
    ci_high, hedges_g``. Degenerate cases do not raise: when a group has fewer than 2
    values, or both groups have zero variance, the test is undefined and ``t, df, p,
    ci_low, ci_high`` are NaN (means and ``diff`` are still reported where defined).
    """
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    nx, ny = x.size, y.size
    mx = float(x.mean()) if nx else float("nan")
    my = float(y.mean()) if ny else float("nan")
    out = {
        "n_x": int(nx),
        "n_y": int(ny),
        "mean_x": mx,
        "mean_y": my,
        "diff": mx - my,
        "t": float("nan"),
        "df": float("nan"),
        "p": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "hedges_g": hedges_g(x, y),
    }
    if nx < 2 or ny < 2 or (x.var(ddof=1) == 0 and y.var(ddof=1) == 0):
        return out
    res = _st.ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(0.95)
    out.update(
        t=float(res.statistic),
        df=float(res.df),
        p=float(res.pvalue),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
    )
    return out


def _finite_p(p) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-d array, got shape {p.shape}")
    ok = np.isfinite(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got min {p[ok].min()}, max {p[ok].max()}")
    return p, ok


def holm(p) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error rate).

    With the m finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:
    ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``; returned in the input order.
    Reject ``H_(i)`` at level alpha iff ``p~_(i) <= alpha``. NaN entries are left out of
    m and stay NaN. Reference: Holm, S. (1979). A simple sequentially rejective
    multiple test procedure. Scand. J. Stat. 6, 65-70.
    """
    p, ok = _finite_p(p)
    out = np.full(p.shape, np.nan)
    pf = p[ok]
    m = pf.size
    if m == 0:
        return out
    order = np.argsort(pf, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * pf[order])
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg (1995) q-values (false discovery rate).

    With the m finite p-values sorted ascending: ``q_(i) = min(1, min_{j >= i} m
    p_(j) / j)``, via ``scipy.stats.false_discovery_control(method="bh")``. NaN
    entries are left out of m and stay NaN. Reference: Benjamini, Y. & Hochberg, Y.
    (1995). Controlling the false discovery rate. J. R. Stat. Soc. B 57, 289-300.
    """
    p, ok = _finite_p(p)
    out = np.full(p.shape, np.nan)
    if ok.any():
        out[ok] = _st.false_discovery_control(p[ok], method="bh")
    return out


# --------------------------------------------------------------------------- tables


def _check_comparison(comparison: str) -> tuple[str, str]:
    if comparison not in _GROUPS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    return _GROUPS[comparison]


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
    table: pd.DataFrame, comparison: str = "confused_vs_clean", metric: str = "accuracy"
) -> pd.DataFrame:
    """Welch t-tests of target class T's ``metric`` between two model groups, for every (T, C).

    One row per ordered pair (T, C), T != C: K(K-1) rows. The groups (X, Y) are
    ``confused_vs_clean`` -> (confused, clean), ``confused_vs_baseline`` -> (confused,
    baseline), ``clean_vs_baseline`` -> (clean, baseline); see :func:`group_masks`.
    The values are T's ``metric`` in each model of the group, so with the default
    metric t > 0 means T is classified better when C is confused (first two
    comparisons). Each row holds :func:`welch_test` of X vs Y; ``q_bh``
    (Benjamini-Hochberg) and ``p_holm`` (Holm) adjust over the K(K-1) tests of this
    comparison; ``significant`` is ``q_bh < 0.05``. Undefined tests (a group with < 2
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
                 "comparison": comparison, **res}
            )
    cols = ["target", "other", "target_name", "other_name", "comparison", "n_x", "n_y",
            "mean_x", "mean_y", "diff", "ci_low", "ci_high", "t", "df", "p", "hedges_g"]
    out = pd.DataFrame(rows, columns=cols)
    out["q_bh"] = benjamini_hochberg(out["p"].to_numpy(float))
    out["p_holm"] = holm(out["p"].to_numpy(float))
    out["significant"] = (out["q_bh"] < 0.05).to_numpy(bool)
    return out


def _check_distribution(p, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d probability vector, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {a}")
    s = a.sum()
    if abs(s - 1.0) > _SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (tolerance {_SUM_TOL}), got sum {s}")
    return a / s


def _kl_bits_unchecked(p: np.ndarray, q: np.ndarray) -> float:
    """sum_{p_i > 0} p_i log2(p_i / q_i); inf if q_i = 0 where p_i > 0."""
    s = p > 0
    if (q[s] == 0).any():
        return float("inf")
    return float(max(0.0, np.sum(p[s] * np.log2(p[s] / q[s]))))


def kl_divergence_bits(p, q) -> float:
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i log2(p_i / q_i)`` in bits.

    Terms with ``p_i = 0`` contribute 0 (``0 log 0 = 0``). Raises ``ValueError`` when
    p and q differ in length, are not probability vectors (non-negative, summing to 1
    within 1e-4; they are then renormalised exactly), or when ``q_i = 0`` where
    ``p_i > 0`` (the divergence is infinite). Reference: Kullback, S. & Leibler,
    R. A. (1951). On information and sufficiency. Ann. Math. Stat. 22, 79-86; Cover &
    Thomas (2006), Elements of Information Theory, eq. 2.26.
    """
    p = _check_distribution(p, "p")
    q = _check_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.size} and {q.size}")
    bad = np.flatnonzero((p > 0) & (q == 0))
    if bad.size:
        raise ValueError(f"KL(p || q) is infinite: q is 0 where p > 0 at indices {bad.tolist()}")
    return _kl_bits_unchecked(p, q)


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
                px = _check_distribution(x[probs].to_numpy(float).mean(axis=0), f"mean prob_* of T={t} in {gx}")
                py = _check_distribution(y[probs].to_numpy(float).mean(axis=0), f"mean prob_* of T={t} in {gy}")
                cx = x[preds].to_numpy(float).sum(axis=0) + 1.0
                cy = y[preds].to_numpy(float).sum(axis=0) + 1.0
                row.update(
                    logloss_x=lx, logloss_y=ly, delta_logloss_bits=lx - ly,
                    kl_bits=_kl_bits_unchecked(px, py),
                    kl_counts_bits=_kl_bits_unchecked(cx / cx.sum(), cy / cy.sum()),
                )
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ordering


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
        raise ValueError(f"class groups name unknown classes {unknown}; known classes are {names}")
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


# --------------------------------------------------------------------------- output


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name in the same directory (same filesystem, so os.replace is atomic);
    # created by the writer itself so it gets the default permissions, not mkstemp's 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_tables(df: pd.DataFrame, stem: Path) -> None:
    """Write ``df`` to ``stem.parquet``, ``stem.csv`` and ``stem.md``, each atomically.

    The suffixes are appended to the full name (``a/welch.cvc`` -> ``a/welch.cvc.csv``);
    parent directories are created. Markdown via ``df.to_markdown(index=False,
    floatfmt=".4g")``.
    """
    stem = Path(stem)

    def _with(suffix: str) -> Path:
        return stem.with_name(stem.name + suffix)

    _atomic_write(_with(".parquet"), lambda p: df.to_parquet(p, index=False, engine="pyarrow"))
    _atomic_write(_with(".csv"), lambda p: df.to_csv(p, index=False))
    md = df.to_markdown(index=False, floatfmt=".4g")
    _atomic_write(_with(".md"), lambda p: Path(p).write_text(md + "\n", encoding="utf-8"))
