"""Unit tests of nnprobe.stats: hand-computed tests, multiple testing, KL, mislabel tables."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from nnprobe import stats as ns


# --------------------------------------------------------------------------- synthetic data


def make_table(k: int = 4, r: int = 5, effect: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Synthetic per_model_class table: all C(k,2) pairs + "none", r replicates each.

    Planted effect: target class 0 loses ``effect`` accuracy and gains 0.4 bits of
    log-loss when class 1 is confused (pair contains 1 but not 0). The classes of the
    mislabelled pair themselves lose 0.3 accuracy (must not leak into the groups).
    """
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(k)]
    pairs = [(a, b) for a, b in itertools.combinations(range(k), 2)] + [(-1, -1)]
    rows = []
    n_img = 100
    for (a, b), rep in itertools.product(pairs, range(r)):
        pair = "none" if a < 0 else f"{a}-{b}"
        for c in range(k):
            acc = 0.8 + rng.normal(0, 0.02)
            ll = 0.5 + rng.normal(0, 0.03)
            if c in (a, b):
                acc -= 0.3
            if c == 0 and 1 in (a, b) and 0 not in (a, b):
                acc -= effect
                ll += 0.4
            correct = int(round(acc * n_img))
            acc = correct / n_img
            pred = np.zeros(k, int)
            pred[c] = correct
            others = [j for j in range(k) if j != c]
            pred[others] = rng.multinomial(n_img - correct, np.full(k - 1, 1 / (k - 1)))
            prob = np.full(k, (1 - acc) / (k - 1))
            prob[c] = acc
            row = {"pair": pair, "pair_a": a, "pair_b": b, "replicate": rep,
                   "seed": 1000 * (a + 1) + 10 * (b + 1) + rep, "class": c, "class_name": names[c],
                   "n_images": n_img, "accuracy": acc, "logloss_bits": ll}
            row.update({f"pred_{j}": int(pred[j]) for j in range(k)})
            row.update({f"prob_{j}": float(prob[j]) for j in range(k)})
            rows.append(row)
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------- tables


def test_group_masks_pairs():
    tab = make_table()
    masks = ns.group_masks(tab, target=0, other=1)
    rows = tab[tab["class"] == 0]
    for m in masks.values():
        assert m.index.equals(rows.index) and m.dtype == bool
    pairs = {g: set(rows.loc[m, "pair"]) for g, m in masks.items()}
    assert pairs == {"confused": {"1-2", "1-3"}, "clean": {"2-3"}, "baseline": {"none"}}


@pytest.mark.parametrize("k", [4, 5])
def test_welch_table_group_sizes(k):
    r = 5
    w = ns.welch_table(make_table(k=k, r=r))
    assert len(w) == k * (k - 1)
    assert (w["target"] != w["other"]).all()
    assert (w["n_x"] == (k - 2) * r).all()  # pairs containing C but not T
    assert (w["n_y"] == math.comb(k - 2, 2) * r).all()  # pairs with neither
    cols = {"target", "other", "target_name", "other_name", "comparison", "n_x", "n_y", "mean_x",
            "mean_y", "diff", "ci_low", "ci_high", "t", "df", "p", "hedges_g", "q_bh", "p_holm",
            "significant"}
    assert cols <= set(w.columns)
    base = ns.welch_table(make_table(k=k, r=r), comparison="clean_vs_baseline")
    assert (base["n_x"] == math.comb(k - 2, 2) * r).all() and (base["n_y"] == r).all()


def test_welch_table_finds_planted_effect():
    tab = make_table(k=4, r=5)
    for comp in ("confused_vs_clean", "confused_vs_baseline"):
        w = ns.welch_table(tab, comparison=comp)
        row = w[(w["target"] == 0) & (w["other"] == 1)].iloc[0]
        assert row["t"] < 0 and row["diff"] == pytest.approx(-0.2, abs=0.05)
        assert row["q_bh"] < 0.05 and row["p_holm"] < 0.05 and row["significant"]
        assert row["ci_high"] < 0 and row["hedges_g"] < -2
        assert row["target_name"] == "c0" and row["other_name"] == "c1"
        assert w["t"].idxmin() == row.name
        np.testing.assert_allclose(w["q_bh"], ns.benjamini_hochberg(w["p"].to_numpy()))
        np.testing.assert_allclose(w["p_holm"], ns.holm(w["p"].to_numpy()))
    # clean vs baseline: no planted difference for (0, 1)
    w = ns.welch_table(tab, comparison="clean_vs_baseline")
    assert not w.loc[(w["target"] == 0) & (w["other"] == 1), "significant"].item()


def test_welch_table_degenerate_groups_do_not_crash():
    tab = make_table(k=4, r=5)
    tab["accuracy"] = 0.5  # zero variance everywhere
    w = ns.welch_table(tab)
    assert w["t"].isna().all() and w["q_bh"].isna().all() and w["p_holm"].isna().all()
    assert not w["significant"].any()
    w = ns.welch_table(make_table(k=4, r=1))  # one model per pair: clean group has 1 model
    assert len(w) == 12 and w["p"].isna().all()


def test_welch_table_rejects_bad_arguments():
    tab = make_table()
    with pytest.raises(ValueError, match="comparison must be one of"):
        ns.welch_table(tab, comparison="confused")
    with pytest.raises(ValueError, match="top5"):
        ns.welch_table(tab, metric="top5")


def test_information_table_signs():
    k = 4
    tab = make_table(k=k, r=5)
    info = ns.information_table(tab)
    assert len(info) == k * (k - 1)
    cols = {"target", "other", "target_name", "other_name", "comparison", "n_x", "n_y",
            "logloss_x", "logloss_y", "delta_logloss_bits", "kl_bits", "kl_counts_bits"}
    assert cols <= set(info.columns)
    row = info[(info["target"] == 0) & (info["other"] == 1)].iloc[0]
    assert row["delta_logloss_bits"] == pytest.approx(0.4, abs=0.1)
    assert row["delta_logloss_bits"] == pytest.approx(row["logloss_x"] - row["logloss_y"])
    assert (info["kl_bits"] >= 0).all() and (info["kl_counts_bits"] >= 0).all()
    assert info["kl_bits"].idxmax() == row.name  # the planted cell has the largest divergence
    assert (info["n_x"] == 10).all() and (info["n_y"] == 5).all()

    # kl_bits is KL of the group-mean softmax, by hand for the planted cell
    masks = ns.group_masks(tab, 0, 1)
    rows0 = tab[tab["class"] == 0]
    probs = [f"prob_{j}" for j in range(k)]
    px = rows0.loc[masks["confused"], probs].mean().to_numpy()
    py = rows0.loc[masks["clean"], probs].mean().to_numpy()
    assert row["kl_bits"] == pytest.approx(float(np.sum(px * np.log2(px / py))))
    # kl_counts_bits: pooled counts with add-one smoothing
    preds = [f"pred_{j}" for j in range(k)]
    cx = rows0.loc[masks["confused"], preds].sum().to_numpy() + 1.0
    cy = rows0.loc[masks["clean"], preds].sum().to_numpy() + 1.0
    assert row["kl_counts_bits"] == pytest.approx(ns.kl_divergence_bits(cx / cx.sum(), cy / cy.sum()))

    base = ns.information_table(tab, comparison="confused_vs_baseline")
    assert (base["n_y"] == 5).all()
    assert base.loc[row.name, "delta_logloss_bits"] > 0.2


def test_information_table_zero_probability_is_infinite_kl():
    tab = make_table(k=4, r=2)
    sel = (tab["class"] == 0) & (tab["pair"] == "2-3")  # the clean group of (0, 1)
    tab.loc[sel, "prob_0"] = 1.0
    tab.loc[sel, ["prob_1", "prob_2", "prob_3"]] = 0.0
    info = ns.information_table(tab)
    assert np.isinf(info.loc[(info["target"] == 0) & (info["other"] == 1), "kl_bits"]).all()


# --------------------------------------------------------------------------- ordering


def test_class_order_groups():
    classes = ["car", "truck", "cat", "dog", "frog"]
    order, spans = ns.class_order(classes, {"animals": ["dog", "cat"], "vehicles": ["truck"]})
    assert order == [3, 2, 1, 0, 4]
    assert spans == [("animals", 0, 2), ("vehicles", 2, 3)]
    assert ns.class_order(classes, None) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError, match=r"unknown classes \['horse'\].*'frog'"):
        ns.class_order(classes, {"animals": ["horse", "cat"]})
    with pytest.raises(ValueError, match="twice"):
        ns.class_order(classes, {"a": ["cat"], "b": ["cat"]})


def test_effect_matrix_and_linkage():
    k = 4
    w = ns.welch_table(make_table(k=k, r=5))
    m = ns.effect_matrix(w, "t")
    assert m.shape == (k, k) and np.isnan(np.diag(m)).all()
    assert m[0, 1] == pytest.approx(w.loc[(w["target"] == 0) & (w["other"] == 1), "t"].item())
    with pytest.raises(ValueError, match="one comparison"):
        ns.effect_matrix(pd.concat([w, ns.welch_table(make_table(), "clean_vs_baseline")]))
    z = ns.class_linkage(w)
    assert z.shape == (k - 1, 4)
    assert sorted(z[0, :2].astype(int)) == [0, 1]  # the planted pair joins first
    assert (np.diff(z[:, 2]) >= 0).all() and (z[:, 2] > 0).all()
    w_nan = w.assign(t=np.where(w["other"] == 3, np.nan, w["t"]))
    assert np.isfinite(ns.class_linkage(w_nan)).all()


def test_class_names_ordered_by_class_index():
    table = pd.DataFrame({"class": [2, 0, 1, 0], "class_name": ["cat", "plane", "car", "plane"]})
    assert ns.class_names(table) == ["plane", "car", "cat"]
    with pytest.raises(ValueError):
        ns.class_names(table.drop(columns="class_name"))
