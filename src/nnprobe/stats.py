"""Statistics: tests, multiple comparisons, confidence intervals, information in bits, AUROC, rank correlation.

Pure numpy/scipy functions on arrays, each with its formula and reference; the studies build
their tables from them (:mod:`nnprobe.studies.mislabel.statistics`, the noise study's tables).
This module imports no other nnprobe module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

__all__ = [
    "hedges_g",
    "welch_test",
    "holm",
    "benjamini_hochberg",
    "check_distribution",
    "kl_bits",
    "kl_divergence_bits",
    "auroc",
    "spearman",
    "chance_threshold",
    "at_chance",
    "wilson_interval",
    "mean_interval",
]

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


# --------------------------------------------------------------------------- information


def check_distribution(p, name: str) -> np.ndarray:
    """``p`` as a float probability vector (renormalised), or a ValueError naming ``name``.

    It must be 1-d, non-empty, finite, non-negative and sum to 1 within 1e-4.
    """
    a = np.asarray(p, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d probability vector, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {a}")
    s = a.sum()
    if abs(s - 1.0) > _SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (tolerance {_SUM_TOL}), got sum {s}")
    return a / s


def kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    """``KL(p || q) = sum_{p_i > 0} p_i log2(p_i / q_i)`` of checked vectors; inf if q_i = 0 where p_i > 0."""
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
    p = check_distribution(p, "p")
    q = check_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.size} and {q.size}")
    bad = np.flatnonzero((p > 0) & (q == 0))
    if bad.size:
        raise ValueError(f"KL(p || q) is infinite: q is 0 where p > 0 at indices {bad.tolist()}")
    return kl_bits(p, q)


# --------------------------------------------------------------------------- ranks


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of a score separating ``positive`` from ``negative`` samples.

    Equals ``P(s+ > s-) + P(s+ = s-)/2`` (the Mann-Whitney U statistic divided by
    ``n+ n-``; Hanley & McNeil 1982), computed from mid-ranks so that ties count half.
    For the OOD score, positives are test images and the score is the max softmax probability.
    """
    pos, neg = np.asarray(positive, dtype=np.float64).ravel(), np.asarray(negative, dtype=np.float64).ravel()
    if not len(pos) or not len(neg):
        raise ValueError(f"AUROC needs at least one sample per side, got {len(pos)} positive and {len(neg)} negative")
    ranks = _st.rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation and its two-sided p-value (scipy's t approximation)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"Spearman's rho needs two equally long samples of at least 3, got {len(x)} and {len(y)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = _st.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


# --------------------------------------------------------------------------- chance


def chance_threshold(num_classes: int) -> float:
    """The accuracy below which a classifier of ``num_classes`` classes counts as at chance.

    Chance is ``1/K``; the threshold is a tenth of the way from chance to perfect,
    ``1/K + 0.1 (1 - 1/K)`` (0.55 for 2 classes, 0.4 for 3, 0.19 for 10): a network below it has
    learnt next to nothing, whatever the size of the test set.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    chance = 1.0 / num_classes
    return chance + 0.1 * (1.0 - chance)


def at_chance(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` is at chance for ``num_classes`` classes (:func:`chance_threshold`)."""
    return bool(accuracy < chance_threshold(num_classes))


# --------------------------------------------------------------------------- confidence intervals


def wilson_interval(successes, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a binomial rate ``successes / n`` (element-wise).

    ``(p + z^2/2n -/+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)`` with ``p = k / n`` and
    ``z`` the two-sided normal quantile of ``confidence`` (1.96 for 95%). Unlike the Wald
    interval ``p -/+ z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and keeps its coverage near
    0% and 100%, where transfer rates and errors of adversarial examples live (E. B. Wilson
    1927, "Probable inference, the law of succession, and statistical inference", JASA 22;
    L. D. Brown, T. T. Cai & A. DasGupta 2001, "Interval estimation for a binomial
    proportion", Statistical Science 16). ``n = 0`` gives NaN bounds. Returns arrays
    ``(low, high)`` of the broadcast shape (0-d for scalars).
    """
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"successes must lie in [0, n], got successes={successes!r}, n={n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = _st.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(k == 0, 0.0, low), np.where(k == n, 1.0, high)  # exact at the ends, not 1 - 1e-16
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """The mean of ``values`` and its Student-t interval ``mean -/+ t_{n-1} s / sqrt(n)``.

    ``s`` is the sample standard deviation (ddof 1) and ``t_{n-1}`` the two-sided quantile of
    ``confidence``. For a mean over hundreds of images (a mean minimal distortion) the t and
    normal intervals agree; for three seeds the t quantile (4.30 at 95%) is what keeps the
    interval honest. NaNs are dropped; fewer than two values give NaN bounds. Returns
    ``(mean, low, high)``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half
