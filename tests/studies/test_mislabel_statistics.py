"""The mislabel study's statistics (nnprobe.studies.mislabel.statistics): Welch and information
tables over model groups, class order, effect matrices and the class dendrogram's linkage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from nnprobe import stats as ns
from nnprobe.studies.mislabel import statistics as ms

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


# --------------------------------------------------------------------------- tables


def test_group_masks_pairs():
    tab = make_table()
    masks = ms.group_masks(tab, target=0, other=1)
    rows = tab[tab["class"] == 0]
    for m in masks.values():
        assert m.index.equals(rows.index) and m.dtype == bool
    pairs = {g: set(rows.loc[m, "pair"]) for g, m in masks.items()}
    assert pairs == {"confused": {"1-2", "1-3"}, "clean": {"2-3"}, "baseline": {"none"}}


@pytest.mark.parametrize("k", [4, 5])
def test_welch_table_group_sizes(k):
    r = 5
    w = ms.welch_table(make_table(k=k, r=r))
    assert len(w) == k * (k - 1)
    assert (w["target"] != w["other"]).all()
    assert (w["n_x"] == (k - 2) * r).all()  # pairs containing C but not T
    assert (w["n_y"] == math.comb(k - 2, 2) * r).all()  # pairs with neither
    cols = {"target", "other", "target_name", "other_name", "comparison", "n_x", "n_y", "mean_x",
            "mean_y", "diff", "ci_low", "ci_high", "t", "df", "p", "hedges_g", "q_bh", "p_holm",
            "significant"}
    assert cols <= set(w.columns)
    base = ms.welch_table(make_table(k=k, r=r), comparison="clean_vs_baseline")
    assert (base["n_x"] == math.comb(k - 2, 2) * r).all() and (base["n_y"] == r).all()


def test_welch_table_finds_planted_effect():
    tab = make_table(k=4, r=5)
    for comp in ("confused_vs_clean", "confused_vs_baseline"):
        w = ms.welch_table(tab, comparison=comp)
        row = w[(w["target"] == 0) & (w["other"] == 1)].iloc[0]
        assert row["t"] < 0 and row["diff"] == pytest.approx(-0.2, abs=0.05)
        assert row["q_bh"] < 0.05 and row["p_holm"] < 0.05 and row["significant"]
        assert row["ci_high"] < 0 and row["hedges_g"] < -2
        assert row["target_name"] == "c0" and row["other_name"] == "c1"
        assert w["t"].idxmin() == row.name
        np.testing.assert_allclose(w["q_bh"], ns.benjamini_hochberg(w["p"].to_numpy()))
        np.testing.assert_allclose(w["p_holm"], ns.holm(w["p"].to_numpy()))
    # clean vs baseline: no planted difference for (0, 1)
    w = ms.welch_table(tab, comparison="clean_vs_baseline")
    assert not w.loc[(w["target"] == 0) & (w["other"] == 1), "significant"].item()


def test_welch_table_degenerate_groups_do_not_crash():
    tab = make_table(k=4, r=5)
    tab["accuracy"] = 0.5  # zero variance everywhere
    w = ms.welch_table(tab)
    assert w["t"].isna().all() and w["q_bh"].isna().all() and w["p_holm"].isna().all()
    assert not w["significant"].any()
    w = ms.welch_table(make_table(k=4, r=1))  # one model per pair: clean group has 1 model
    assert len(w) == 12 and w["p"].isna().all()


def test_welch_table_rejects_bad_arguments():
    tab = make_table()
    with pytest.raises(ValueError, match="comparison must be one of"):
        ms.welch_table(tab, comparison="confused")
    with pytest.raises(ValueError, match="top5"):
        ms.welch_table(tab, metric="top5")


def test_information_table_signs():
    k = 4
    tab = make_table(k=k, r=5)
    info = ms.information_table(tab)
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
    masks = ms.group_masks(tab, 0, 1)
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

    base = ms.information_table(tab, comparison="confused_vs_baseline")
    assert (base["n_y"] == 5).all()
    assert base.loc[row.name, "delta_logloss_bits"] > 0.2


def test_information_table_zero_probability_is_infinite_kl():
    tab = make_table(k=4, r=2)
    sel = (tab["class"] == 0) & (tab["pair"] == "2-3")  # the clean group of (0, 1)
    tab.loc[sel, "prob_0"] = 1.0
    tab.loc[sel, ["prob_1", "prob_2", "prob_3"]] = 0.0
    info = ms.information_table(tab)
    assert np.isinf(info.loc[(info["target"] == 0) & (info["other"] == 1), "kl_bits"]).all()


# --------------------------------------------------------------------------- ordering


def test_class_order_groups():
    classes = ["car", "truck", "cat", "dog", "frog"]
    order, spans = ms.class_order(classes, {"animals": ["dog", "cat"], "vehicles": ["truck"]})
    assert order == [3, 2, 1, 0, 4]
    assert spans == [("animals", 0, 2), ("vehicles", 2, 3)]
    assert ms.class_order(classes, None) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError, match=r"mislabel.class_groups\) name \['horse'\], which are not classes.*'frog'"):
        ms.class_order(classes, {"animals": ["horse", "cat"]})
    with pytest.raises(ValueError, match="twice"):
        ms.class_order(classes, {"a": ["cat"], "b": ["cat"]})


def test_effect_matrix_and_linkage():
    k = 4
    w = ms.welch_table(make_table(k=k, r=5))
    m = ms.effect_matrix(w, "t")
    assert m.shape == (k, k) and np.isnan(np.diag(m)).all()
    assert m[0, 1] == pytest.approx(w.loc[(w["target"] == 0) & (w["other"] == 1), "t"].item())
    with pytest.raises(ValueError, match="one comparison"):
        ms.effect_matrix(pd.concat([w, ms.welch_table(make_table(), "clean_vs_baseline")]))
    z = ms.class_linkage(w)
    assert z.shape == (k - 1, 4)
    assert sorted(z[0, :2].astype(int)) == [0, 1]  # the planted pair joins first
    assert (np.diff(z[:, 2]) >= 0).all() and (z[:, 2] > 0).all()
    w_nan = w.assign(t=np.where(w["other"] == 3, np.nan, w["t"]))
    assert np.isfinite(ms.class_linkage(w_nan)).all()


def test_class_names_ordered_by_class_index():
    table = pd.DataFrame({"class": [2, 0, 1, 0], "class_name": ["cat", "plane", "car", "plane"]})
    assert ms.class_names(table) == ["plane", "car", "cat"]
    with pytest.raises(ValueError):
        ms.class_names(table.drop(columns="class_name"))
