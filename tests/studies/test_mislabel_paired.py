"""The paired analysis of the mislabel study (nnprobe.studies.mislabel.paired):
known answers computed by hand, and simulated studies with a planted replicate effect and a planted pair effect."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from nnprobe import stats as ns
from nnprobe.studies.mislabel.paired import (
    mixed_model_contrast,
    paired_information_table,
    paired_t_test,
    paired_table,
    replicate_contrasts,
)
from nnprobe.studies.mislabel.statistics import welch_table

# --------------------------------------------------------------------------- tables


def network_rows(pair: str, replicate: int, k: int, accuracy: dict[int, float], design: str = "paired") -> list[dict]:
    """The rows of one network: class c has accuracy ``accuracy[c]``; its softmax on c's images puts
    the accuracy on c and the rest evenly on the other classes (so log2-loss and KL have closed forms)."""
    a, b = (-1, -1) if pair == "none" else (int(x) for x in pair.split("-"))
    rows = []
    for c in range(k):
        acc = accuracy[c]
        prob = np.full(k, (1 - acc) / (k - 1))
        prob[c] = acc
        rows.append({"pair": pair, "pair_a": a, "pair_b": b, "replicate": replicate, "seed": replicate,
                     "design": design, "class": c, "class_name": f"c{c}", "n_images": 100, "accuracy": acc,
                     "logloss_bits": -np.log2(acc), **{f"pred_{j}": int(round(100 * prob[j])) for j in range(k)},
                     **{f"prob_{j}": float(prob[j]) for j in range(k)}})
    return rows


def simulate(k: int = 5, r: int = 4, pair_effect: float = 0.01, replicate_sd: float = 0.05, noise_sd: float = 0.002,
             seed: int = 0) -> pd.DataFrame:
    """A paired study: every pair and the baseline, ``r`` replicates. T's accuracy in the network of
    pair p and replicate r is ``0.8 - 0.3 [T in p] + u_{r,T} + e`` with a replicate effect ``u_{r,T} ~
    N(0, replicate_sd)`` shared by every pair of the replicate (the paired design's common init and
    order) and ``e ~ N(0, noise_sd)``; planted pair effect: class 0 loses ``pair_effect`` when the
    pair holds 1 and not 0."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, replicate_sd, size=(r, k))
    rows = []
    for (a, b), rep in itertools.product([*itertools.combinations(range(k), 2), (-1, -1)], range(r)):
        accuracy = {c: 0.8 - 0.3 * (c in (a, b)) + u[rep, c] + rng.normal(0, noise_sd)
                    - pair_effect * (c == 0 and 1 in (a, b) and 0 not in (a, b)) for c in range(k)}
        rows += network_rows("none" if a < 0 else f"{a}-{b}", rep, k, accuracy)
    return pd.DataFrame(rows)


#: T = 0's accuracy by hand, 4 classes, 3 replicates: the confused pairs of C = 1 (1-2, 1-3), the
#: clean pair (2-3) and the baseline.
HAND = {"1-2": [0.70, 0.60, 0.65], "1-3": [0.72, 0.64, 0.66], "2-3": [0.80, 0.70, 0.78], "none": [0.82, 0.71, 0.77]}


@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for pair in ["none", *(f"{a}-{b}" for a, b in itertools.combinations(range(4), 2))]:
        for r in range(3):
            accuracy = {c: float(rng.uniform(0.5, 0.9)) for c in range(4)}
            accuracy[0] = HAND[pair][r] if pair in HAND else 0.5
            rows += network_rows(pair, r, 4, accuracy)
    return pd.DataFrame(rows)


def cell(table: pd.DataFrame, target: int, other: int) -> pd.Series:
    return table[(table["target"] == target) & (table["other"] == other)].iloc[0]


# --------------------------------------------------------------------------- known answers by hand


def test_paired_t_test_by_hand():
    res = paired_t_test([-0.09, -0.08, -0.125])
    # mean -0.295 / 3; deviations 0.0083, 0.0183, -0.0267: s^2 = 0.00111667 / 2
    assert res["n"] == 3 and res["diff"] == pytest.approx(-0.0983333333, abs=1e-10)
    assert res["sd_diff"] == pytest.approx(np.sqrt(0.0011166667 / 2), rel=1e-7)
    assert res["t"] == pytest.approx(-0.0983333333 / (0.0236290781 / np.sqrt(3)), rel=1e-7)
    assert res["t"] == pytest.approx(-7.207997, rel=1e-6) and res["df"] == 2
    assert res["p"] == pytest.approx(2 * st.t.sf(7.207997217, 2), rel=1e-6)
    assert res["p"] == pytest.approx(0.0187089, rel=1e-4)
    half = st.t.ppf(0.975, 2) * 0.0236290781 / np.sqrt(3)  # 4.303 * se
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((-0.0983333333 - half, -0.0983333333 + half), rel=1e-7)
    assert res["dz"] == pytest.approx(-0.0983333333 / 0.0236290781, rel=1e-7)


@pytest.mark.parametrize("values", [[0.1], [], [0.02, 0.02, 0.02]])
def test_paired_t_test_undefined(values):
    res = paired_t_test(values)
    assert np.isnan(res["t"]) and np.isnan(res["p"]) and np.isnan(res["ci_low"]) and np.isnan(res["dz"])
    assert res["n"] == len(values)
    if values:
        assert res["diff"] == pytest.approx(np.mean(values))


def test_replicate_contrasts_by_hand():
    x = pd.DataFrame({"replicate": [0, 0, 1, 1, 2], "v": [0.70, 0.72, 0.60, 0.64, 0.65]})
    y = pd.DataFrame({"replicate": [1, 0, 3], "v": [0.70, 0.80, 0.9]})
    out = replicate_contrasts(x, y, "v")
    assert out.index.tolist() == [0, 1]  # replicate 2 has no Y network, replicate 3 no X network
    assert out["n_x"].tolist() == [2, 2] and out["n_y"].tolist() == [1, 1]
    np.testing.assert_allclose(out["mean_x"], [0.71, 0.62])
    np.testing.assert_allclose(out["contrast"], [0.71 - 0.80, 0.62 - 0.70])


def test_paired_table_by_hand(hand):
    table = paired_table(hand)
    row = cell(table, 0, 1)
    # d_r = mean(1-2, 1-3) - (2-3) = -0.09, -0.08, -0.125: the case of test_paired_t_test_by_hand
    assert row["test"] == "paired t" and row["comparison"] == "confused_vs_clean"
    assert row["n_replicates"] == 3 and row["n_x"] == 6 and row["n_y"] == 3
    assert row["mean_x"] == pytest.approx((0.71 + 0.62 + 0.655) / 3) and row["mean_y"] == pytest.approx(0.76)
    assert row["diff"] == pytest.approx(-0.0983333333) and row["t"] == pytest.approx(-7.207997, rel=1e-6)
    assert row["se"] == pytest.approx(0.0136422546, rel=1e-7) and row["p"] == pytest.approx(0.0187089, rel=1e-4)
    # the mixed model on the same 3 x 3 layout (a randomised complete block design): the estimate is
    # the mean contrast, se^2 = MS_res * sum(L^2) / R with MS_res the two-way residual mean square
    # (residuals y - row mean - column mean + grand mean, (3-1)(3-1) = 4 degrees of freedom),
    # and the REML replicate variance the ANOVA one, (MS_rep - MS_res) / 3 (3 pairs a replicate)
    y = np.array([HAND["1-2"], HAND["1-3"], HAND["2-3"]])
    residuals = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    ms_res = (residuals**2).sum() / 4
    ms_rep = 3 * ((y.mean(axis=0) - y.mean()) ** 2).sum() / 2
    assert ms_res == pytest.approx(0.0022 / 9) and ms_rep == pytest.approx(0.0065444444)
    se = np.sqrt(ms_res * (0.5**2 + 0.5**2 + 1) / 3)
    assert row["mixed_estimate"] == pytest.approx(-0.0983333333, rel=1e-9)
    assert row["mixed_se"] == pytest.approx(se, rel=1e-4) and row["mixed_df"] == 4
    assert row["mixed_t"] == pytest.approx(-0.0983333333 / se, rel=1e-4)
    assert row["mixed_p"] == pytest.approx(2 * st.t.sf(0.0983333333 / se, 4), rel=1e-3)
    assert row["mixed_replicate_sd"] == pytest.approx(np.sqrt((ms_rep - ms_res) / 3), rel=1e-3)
    assert row["mixed_residual_sd"] == pytest.approx(np.sqrt(ms_res), rel=1e-3)
    assert row["mixed_note"] == "" and row["note"] == ""
    # confused vs baseline: d_r = mean(1-2, 1-3) - none = -0.11, -0.09, -0.115
    base = cell(paired_table(hand, "confused_vs_baseline"), 0, 1)
    assert base["n_y"] == 3 and base["diff"] == pytest.approx(-0.105)
    assert base["t"] == pytest.approx(paired_t_test([-0.11, -0.09, -0.115])["t"])
    # the corrections are the Welch tables' over the K(K-1) = 12 tests
    assert len(table) == 12
    np.testing.assert_allclose(table["q_bh"], ns.benjamini_hochberg(table["p"].to_numpy()))
    np.testing.assert_allclose(table["p_holm"], ns.holm(table["p"].to_numpy()))
    np.testing.assert_allclose(table["mixed_q_bh"], ns.benjamini_hochberg(table["mixed_p"].to_numpy()))
    assert (table["significant"] == (table["q_bh"] < 0.05)).all()


def test_paired_information_table_by_hand(hand):
    info = paired_information_table(hand)
    row = cell(info, 0, 1)
    assert row["test"] == "paired t" and row["n_replicates"] == 3
    x = np.array([HAND["1-2"], HAND["1-3"]])
    y = np.array(HAND["2-3"])
    delta = -np.log2(x).mean(axis=0) + np.log2(y)  # mean log2-loss of X minus Y, per replicate
    assert row["delta_logloss_bits"] == pytest.approx(delta.mean())
    assert row["t"] == pytest.approx(paired_t_test(delta)["t"]) and row["df"] == 2
    # within replicate r the mean softmax on T's images is (a, (1-a)/3, (1-a)/3, (1-a)/3) with a the mean
    # accuracy, so KL(P_X || P_Y) = a log2(a/b) + (1-a) log2((1-a)/(1-b))
    a, b = x.mean(axis=0), y
    kl = a * np.log2(a / b) + (1 - a) * np.log2((1 - a) / (1 - b))
    assert row["kl_bits"] == pytest.approx(kl.mean(), rel=1e-9)
    half = st.t.ppf(0.975, 2) * kl.std(ddof=1) / np.sqrt(3)
    assert (row["kl_ci_low"], row["kl_ci_high"]) == pytest.approx((kl.mean() - half, kl.mean() + half))
    assert row["kl_counts_bits"] >= 0 and (info["kl_bits"] >= 0).all()
    np.testing.assert_allclose(info["q_bh"], ns.benjamini_hochberg(info["p"].to_numpy()))


def test_the_mixed_model_matches_the_paired_mean_when_balanced_and_runs_unbalanced():
    tab = simulate(k=4, r=5, seed=3)
    rows = tab[tab["class"] == 0]
    x, y = rows[rows["pair"].isin(["1-2", "1-3"])], rows[rows["pair"] == "2-3"]
    both = pd.concat([x, y])
    res = mixed_model_contrast(both["accuracy"], both["pair"], both["replicate"], both["pair"] != "2-3")
    assert res["mixed_estimate"] == pytest.approx(replicate_contrasts(x, y, "accuracy")["contrast"].mean(), rel=1e-9)
    assert res["mixed_df"] == (3 - 1) * (5 - 1)
    gone = both.drop(both.index[0])  # one network missing: an unbalanced layout still fits
    res = mixed_model_contrast(gone["accuracy"], gone["pair"], gone["replicate"], gone["pair"] != "2-3")
    assert np.isfinite(res["mixed_estimate"]) and res["mixed_df"] == 14 - 3 - 5 + 1
    assert res["mixed_estimate"] == pytest.approx(-0.01, abs=0.005)


def test_the_mixed_model_says_why_it_is_undefined():
    one = mixed_model_contrast([0.1, 0.2, 0.3], ["a", "b", "b"], [0, 0, 0], [True, False, False])
    assert np.isnan(one["mixed_estimate"]) and "2 or more replicates" in one["mixed_note"]
    flat = mixed_model_contrast([0.5] * 4, ["a", "b", "a", "b"], [0, 0, 1, 1], [True, False, True, False])
    assert np.isnan(flat["mixed_p"]) and "no variance" in flat["mixed_note"]
    empty = mixed_model_contrast([0.5, 0.6], ["a", "a"], [0, 1], [True, True])
    assert np.isnan(empty["mixed_p"]) and "no networks" in empty["mixed_note"]


def test_undefined_paired_tests_are_noted_and_left_out_of_the_corrections():
    single = paired_table(simulate(k=4, r=1), mixed_model=False)
    assert single["p"].isna().all() and single["q_bh"].isna().all() and not single["significant"].any()
    assert single["note"].str.contains("a paired test needs 2 or more").all()
    three = paired_table(simulate(k=3, r=3), mixed_model=False)  # 3 classes: no pair holds neither T nor C
    assert three["p"].isna().all() and (three["n_y"] == 0).all() and (three["note"] != "").all()
    for table in (simulate(k=4, r=1), simulate(k=3, r=3)):
        info = paired_information_table(table)
        assert info["p"].isna().all() and (info["note"] != "").all() and not info["significant"].any()
    assert paired_information_table(simulate(k=4, r=1))["kl_bits"].notna().all()  # a divergence needs no spread
    flat = simulate(k=4, r=3).assign(accuracy=0.5)
    out = paired_table(flat)
    assert out["t"].isna().all() and out["note"].str.contains("no variance").all()
    assert out["mixed_note"].str.contains("no variance").all()


def test_networks_of_the_independent_design_are_refused(hand):
    with pytest.raises(ValueError, match=r"needs networks of the paired design \(config key mislabel\.design: "
                                         r"paired\); .* \['independent'\]"):
        paired_table(hand.assign(design="independent"))
    with pytest.raises(ValueError, match="paired design"):
        paired_information_table(hand.assign(design=np.where(hand["pair"] == "none", "independent", "paired")))
    with pytest.raises(ValueError, match="comparison must be one of"):
        paired_table(hand, "confused")
    with pytest.raises(ValueError, match="fdr_alpha"):
        paired_table(hand, fdr_alpha=1.5, mixed_model=False)


# --------------------------------------------------------------------------- simulated studies


def found(table: pd.DataFrame) -> bool:
    return bool(cell(table, 0, 1)["significant"])


def test_the_paired_test_finds_a_planted_pair_effect_that_welch_needs_far_more_replicates_for():
    """The replicate effect (sd 0.05) is five times the planted pair effect (0.01) and the noise (sd 0.002)
    smaller still. Within a replicate it cancels: with 4 replicates the paired t finds the effect in
    nearly every simulated study. Welch's t counts it as noise: it finds the effect in none of them with
    4, 16 or 64 replicates, and needs several hundred."""
    paired = [found(paired_table(simulate(r=4, seed=s), mixed_model=False)) for s in range(20)]
    assert np.mean(paired) >= 0.8, paired
    for r in (4, 16, 64):
        welch = [found(welch_table(simulate(r=r, seed=s))) for s in range(8)]
        assert not any(welch), (r, welch)
    assert found(welch_table(simulate(r=600, seed=0)))
    # one study in detail: the estimate, its interval, the mixed model, and the other targets
    table = paired_table(simulate(r=4, seed=0))
    row = cell(table, 0, 1)
    assert row["diff"] == pytest.approx(-0.01, abs=0.003) and row["ci_high"] < 0
    assert row["mixed_estimate"] == pytest.approx(row["diff"], rel=1e-9) and row["mixed_p"] < 0.05
    # targets other than 0 have no effect in any comparison: none is found (for T = 0 and another C the
    # effect of pairs holding 1 is in one group more often than in the other: a real, smaller contrast)
    assert not table.loc[table["target"] != 0, "significant"].any()


def test_without_a_pair_effect_the_paired_test_keeps_its_level():
    """No pair effect, the replicate effect as above: about 5% of the tests have p < 0.05 and, with the
    Benjamini-Hochberg correction, about 5% of the studies or fewer show any effect."""
    tables = [paired_table(simulate(k=4, r=5, pair_effect=0.0, seed=1000 + s), mixed_model=False)
              for s in range(100)]
    rate = np.mean([(t["p"] < 0.05).mean() for t in tables])
    assert 0.025 <= rate <= 0.085, rate
    studies = np.mean([t["significant"].any() for t in tables])
    assert studies <= 0.11, studies
