"""Unit tests of nnprobe.stats: hand-computed tests, multiple testing, KL, AUROC, rank correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import roc_auc_score

from nnprobe import stats as ns

# --------------------------------------------------------------------------- Welch / Hedges


X = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
Y = np.array([2.0, 4.0, 6.0, 9.0])


def test_welch_matches_hand_computation_and_scipy():
    # Hand computation: means, ddof=1 variances, standard error, Welch-Satterthwaite df.
    m1, m2 = 15 / 5, 21 / 4  # 3.0, 5.25
    v1 = sum((v - m1) ** 2 for v in X) / (5 - 1)  # 10/4 = 2.5
    v2 = sum((v - m2) ** 2 for v in Y) / (4 - 1)  # 26.75/3
    assert v1 == pytest.approx(2.5) and v2 == pytest.approx(26.75 / 3)
    a, b = v1 / 5, v2 / 4
    se = math.sqrt(a + b)
    t = (m1 - m2) / se
    df = (a + b) ** 2 / (a**2 / (5 - 1) + b**2 / (4 - 1))

    res = ns.welch_test(X, Y)
    assert res["n_x"] == 5 and res["n_y"] == 4
    assert res["mean_x"] == pytest.approx(m1) and res["mean_y"] == pytest.approx(m2)
    assert res["diff"] == pytest.approx(m1 - m2)
    assert res["t"] == pytest.approx(t, rel=1e-12)
    assert res["df"] == pytest.approx(df, rel=1e-12)
    p = 2 * st.t.sf(abs(t), df)
    assert res["p"] == pytest.approx(p, rel=1e-10)

    ref = st.ttest_ind(X, Y, equal_var=False)
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)

    # CI: diff +- t_{0.975, df} * se, and it contains diff.
    half = st.t.ppf(0.975, df) * se
    assert res["ci_low"] == pytest.approx(m1 - m2 - half, rel=1e-10)
    assert res["ci_high"] == pytest.approx(m1 - m2 + half, rel=1e-10)
    assert res["ci_low"] < res["diff"] < res["ci_high"]


def test_hedges_g_hand_computation():
    sp = math.sqrt(((5 - 1) * 2.5 + (4 - 1) * 26.75 / 3) / (5 + 4 - 2))
    j = 1 - 3 / (4 * (5 + 4) - 9)  # = 1 - 3/27
    g = j * (3.0 - 5.25) / sp
    assert ns.hedges_g(X, Y) == pytest.approx(g, rel=1e-12)
    assert ns.welch_test(X, Y)["hedges_g"] == pytest.approx(g, rel=1e-12)
    assert ns.hedges_g(Y, X) == pytest.approx(-g)


@pytest.mark.parametrize(
    "x, y",
    [([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]),  # zero variance in both
     ([1.0], [1.0, 2.0, 3.0]),  # fewer than 2 values
     ([], [1.0, 2.0])],
)
def test_welch_degenerate_gives_nan_without_raising(x, y):
    res = ns.welch_test(x, y)
    assert all(math.isnan(res[k]) for k in ("t", "df", "p", "ci_low", "ci_high"))
    assert math.isnan(res["hedges_g"])
    if len(x):
        assert res["diff"] == pytest.approx(np.mean(x) - np.mean(y))


# --------------------------------------------------------------------------- BH / Holm


def test_benjamini_hochberg_textbook():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205])
    m = 8
    raw = [p[i] * m / (i + 1) for i in range(m)]  # m p_(i) / i, p already sorted
    # step-up: q_(i) = min_{j >= i} raw_j
    expected = [min(raw[i:]) for i in range(m)]
    assert expected[2] == pytest.approx(0.042 * 8 / 5)  # monotonicity pulls 0.104 down
    shuffle = np.array([3, 0, 7, 5, 1, 6, 2, 4])
    q = ns.benjamini_hochberg(p[shuffle])
    np.testing.assert_allclose(q, np.array(expected)[shuffle], rtol=1e-12)


def test_benjamini_hochberg_small_example_and_nan():
    q = ns.benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4p/i = 0.02, 0.02, 0.04, 0.04
    np.testing.assert_allclose(q, [0.02, 0.04, 0.04, 0.02])
    q = ns.benjamini_hochberg([0.01, np.nan, 0.04, 0.03, 0.005])
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3, 4]], [0.02, 0.04, 0.04, 0.02])


def test_holm_hand_computation_monotone_and_capped():
    # sorted 0.005, 0.01, 0.03, 0.04 -> (m-i+1) p = 0.02, 0.03, 0.06, 0.04 -> cummax
    np.testing.assert_allclose(ns.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # 0.02*3 = 0.06, 0.5*2 = 1.0, 0.9*1 = 0.9 -> raised to 1.0 by monotonicity, capped at 1
    np.testing.assert_allclose(ns.holm([0.9, 0.02, 0.5]), [1.0, 0.06, 1.0])
    np.testing.assert_allclose(ns.holm([0.6, 0.7]), [1.0, 1.0])
    h = ns.holm([0.01, np.nan, 0.04])
    assert np.isnan(h[1])
    np.testing.assert_allclose(h[[0, 2]], [0.02, 0.04])
    assert ns.holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ns.holm([0.5, 1.5])


# --------------------------------------------------------------------------- KL


def test_kl_known_values():
    assert ns.kl_divergence_bits([1, 0], [0.5, 0.5]) == pytest.approx(1.0)
    p = [0.2, 0.3, 0.5]
    assert ns.kl_divergence_bits(p, p) == pytest.approx(0.0, abs=1e-15)
    # KL([.5,.5] || [.25,.75]) = .5 log2(2) + .5 log2(2/3) = 1 - .5 log2 3
    assert ns.kl_divergence_bits([0.5, 0.5], [0.25, 0.75]) == pytest.approx(1 - 0.5 * math.log2(3))
    # reverse: .25 log2(.5) + .75 log2(1.5) -- KL is asymmetric
    rev = 0.25 * math.log2(0.5) + 0.75 * math.log2(1.5)
    assert ns.kl_divergence_bits([0.25, 0.75], [0.5, 0.5]) == pytest.approx(rev)
    assert rev != pytest.approx(1 - 0.5 * math.log2(3))


@pytest.mark.parametrize(
    "p, q, match",
    [([0.5, 0.5], [1.0, 0.0], "infinite"),
     ([0.5, 0.6], [0.5, 0.5], "sum to 1"),
     ([1.5, -0.5], [0.5, 0.5], "non-negative"),
     ([0.5, 0.5], [0.2, 0.3, 0.5], "same length")],
)
def test_kl_invalid_raises(p, q, match):
    with pytest.raises(ValueError, match=match):
        ns.kl_divergence_bits(p, q)


# --------------------------------------------------------------------------- AUROC and rank correlation


def test_auroc_known_cases_and_sklearn():
    assert ns.auroc([2, 3, 4], [0, 1]) == 1.0
    assert ns.auroc([0, 1], [2, 3]) == 0.0
    assert ns.auroc([1, 1], [1, 1, 1]) == 0.5
    assert ns.auroc([1, 3], [2]) == 0.5
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos, neg = rng.normal(0.5, 1, 200), rng.normal(0, 1, 150)
        pos[:20] = neg[:20]  # ties
        y = np.r_[np.ones(200), np.zeros(150)]
        assert ns.auroc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))
    with pytest.raises(ValueError, match="at least one"):
        ns.auroc([], [1.0])


def test_spearman():
    rho, p = ns.spearman([1, 2, 3, 4, 5], [2, 4, 8, 16, 32])
    assert rho == pytest.approx(1.0) and p < 0.05
    assert ns.spearman([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    assert np.isnan(ns.spearman([1, 1, 1], [1, 2, 3])[0])


def test_wilson_interval_hand_values_and_edges():
    # 0.5 of 100 at 95%: centre 0.5, half-width z sqrt(0.25/100 + z^2/40000) / (1 + z^2/100)
    z = st.norm.ppf(0.975)
    low, high = ns.wilson_interval(50, 100)
    half = z * math.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert float(low) == pytest.approx(0.5 - half, rel=1e-12) and float(high) == pytest.approx(0.5 + half, rel=1e-12)
    assert (float(low), float(high)) == pytest.approx((0.4038, 0.5962), abs=1e-4)  # the textbook values
    # 0 of 10 and 10 of 10: inside [0, 1], and not the Wald interval's degenerate [0, 0]
    low0, high0 = ns.wilson_interval(0, 10)
    assert float(low0) == 0.0 and float(high0) == pytest.approx(z * z / (10 + z * z), rel=1e-12)
    low1, high1 = ns.wilson_interval(10, 10)
    assert float(high1) == 1.0 and float(low1) == pytest.approx(1 - float(high0), rel=1e-12)
    # element-wise, n = 0 gives NaN, a wider confidence a wider interval
    lows, highs = ns.wilson_interval(np.array([1, 0]), np.array([4, 0]))
    assert lows.shape == (2,) and math.isnan(lows[1]) and math.isnan(highs[1])
    narrow, wide = ns.wilson_interval(30, 100, 0.8), ns.wilson_interval(30, 100, 0.99)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="successes must lie in"):
        ns.wilson_interval(5, 4)


def test_wilson_interval_covers_at_its_level():
    rng = np.random.default_rng(0)
    for p in (0.02, 0.3):
        k = rng.binomial(200, p, size=4000)
        low, high = ns.wilson_interval(k, 200)
        assert 0.93 < np.mean((low <= p) & (p <= high)) < 0.975


def test_mean_interval_is_students_t():
    x = np.array([1.0, 2.0, 4.0])
    mean, low, high = ns.mean_interval(x)
    half = st.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((7 / 3, 7 / 3 - half, 7 / 3 + half), rel=1e-12)
    assert ns.mean_interval([1.0, np.nan, 2.0, 4.0]) == pytest.approx((mean, low, high))  # NaNs dropped
    single = ns.mean_interval([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])
    assert all(math.isnan(v) for v in ns.mean_interval([]))
    assert ns.mean_interval(np.zeros(5)) == (0.0, 0.0, 0.0)
