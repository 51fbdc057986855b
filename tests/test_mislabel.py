"""The class-pair mislabel design: pairs, label swaps, members' seeds, the tidy per-model table."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from nnprobe.mislabel import BASELINE, mislabel_labels, mislabel_pairs, pair_name, parse_pair, per_model_class_table
from nnprobe.mislabel_population import mislabel_members
from nnprobe.seeds import derive_seed

# --------------------------------------------------------------------------- pairs and names


def test_mislabel_pairs():
    pairs = mislabel_pairs(10)
    assert len(pairs) == 45 == len(set(pairs))
    assert all(0 <= a < b < 10 for a, b in pairs)
    assert pairs[0] == (0, 1) and pairs[-1] == (8, 9)
    assert mislabel_pairs(2) == [(0, 1)]
    with pytest.raises(ValueError, match="at least 2"):
        mislabel_pairs(1)


def test_pair_name_round_trip():
    assert parse_pair(pair_name(None)) is None and pair_name(None) == BASELINE == "none"
    for pair in mislabel_pairs(10):
        assert parse_pair(pair_name(pair), 10) == pair
    assert pair_name((5, 3)) == "3-5"  # unordered: the smaller index first
    assert parse_pair("12-40") == (12, 40)  # no bound without num_classes


@pytest.mark.parametrize(
    "name", ["3-3", "5-3", "a-b", "3", "3-5-7", "-1-2", "", "None", "3+5", "0-10", "03-05", " 3-5", "+3-5", "1_0-2"]
)
def test_parse_pair_rejects_bad_names(name):
    with pytest.raises(ValueError, match="pair"):
        parse_pair(name, num_classes=10)


# --------------------------------------------------------------------------- labels


@pytest.fixture
def labels():
    """Shuffled labels of 4 classes with 7, 10, 5 and 6 images."""
    base = np.repeat(np.arange(4), [7, 10, 5, 6])
    return np.random.default_rng(0).permutation(base).astype(np.int64)


@pytest.mark.parametrize("fraction", [0.5, 0.3, 1.0])
def test_mislabel_labels_swaps_exactly_floor_fraction(labels, fraction):
    before = labels.copy()
    a, b = 0, 1
    out = mislabel_labels(labels, (a, b), seed=11, fraction=fraction)
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert out.dtype == np.int64 and out.shape == labels.shape
    a_to_b = np.flatnonzero((labels == a) & (out == b))
    b_to_a = np.flatnonzero((labels == b) & (out == a))
    assert len(a_to_b) == int(fraction * 7) and len(b_to_a) == int(fraction * 10)
    assert set(a_to_b) <= set(np.flatnonzero(labels == a))
    assert set(b_to_a) <= set(np.flatnonzero(labels == b))
    assert not set(a_to_b) & set(b_to_a)
    changed = np.flatnonzero(out != labels)
    np.testing.assert_array_equal(np.sort(changed), np.sort(np.concatenate([a_to_b, b_to_a])))
    # every other image keeps its label; nothing is relabelled to a third class
    assert set(out[changed]) <= {a, b}
    np.testing.assert_array_equal(out[labels >= 2], labels[labels >= 2])
    if fraction == 1.0:  # a full swap
        np.testing.assert_array_equal(out[labels == a], b)
        np.testing.assert_array_equal(out[labels == b], a)


def test_mislabel_labels_baseline_is_a_copy(labels):
    out = mislabel_labels(labels, None, seed=0)
    np.testing.assert_array_equal(out, labels)
    assert out is not labels and not np.shares_memory(out, labels)


def test_mislabel_labels_reproducible_from_seed(labels):
    a = mislabel_labels(labels, (2, 3), seed=5)
    np.testing.assert_array_equal(a, mislabel_labels(labels, (2, 3), seed=5))
    others = [mislabel_labels(labels, (2, 3), seed=s) for s in range(6, 16)]
    assert any(not np.array_equal(a, o) for o in others)


def test_replicates_choose_independently():
    """Chosen halves of two replicates overlap as much as two independent random halves."""
    n, a, b = 1000, 0, 1
    labels = np.repeat(np.arange(3), n).astype(np.int64)
    k = n // 2
    # the seeds the workflow uses for the replicates of pair 0-1
    seeds = [derive_seed(0, "mislabel", "0-1", r, "labels") for r in range(12)]
    chosen = [set(np.flatnonzero((labels == a) & (mislabel_labels(labels, (a, b), s) == b))) for s in seeds]
    assert all(len(c) == k for c in chosen)
    # overlap of two independent k-subsets of n: hypergeometric, mean k^2/n = 250, sd ~7.9
    mean = k * k / n
    sd = np.sqrt(k * (k / n) * ((n - k) / n) * ((n - k) / (n - 1)))
    overlaps = np.array([len(x & y) for x, y in itertools.combinations(chosen, 2)])
    assert np.all(np.abs(overlaps - mean) < 5 * sd), overlaps
    assert abs(overlaps.mean() - mean) < 5 * sd / np.sqrt(len(seeds) / 2), overlaps.mean()
    # and the choice for class b does not mirror the choice for class a
    both = mislabel_labels(labels, (a, b), seeds[0])
    from_b = np.flatnonzero((labels == b) & (both == a)) - n
    assert abs(len(set(from_b) & chosen[0]) - mean) < 5 * sd


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, float("nan")])
def test_mislabel_labels_fraction_validated(labels, fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        mislabel_labels(labels, (0, 1), seed=0, fraction=fraction)


def test_mislabel_labels_empty_class(labels):
    with pytest.raises(ValueError, match="class 7"):
        mislabel_labels(labels, (0, 7), seed=0)


# --------------------------------------------------------------------------- members


def _same_members(x, y):
    assert [m.name for m in x] == [m.name for m in y]
    for m, n in zip(x, y, strict=True):
        assert (m.init_seed, m.order_seed) == (n.init_seed, n.order_seed), m.name
        np.testing.assert_array_equal(m.labels, n.labels, err_msg=m.name)


def test_members_do_not_depend_on_their_pack(labels):
    def members(pairs, seed=0):
        return mislabel_members(pairs, labels, num_classes=4, seed=seed, replicates=3, fraction=0.5)

    pack = members(["none", "0-1"])
    assert len(pack) == 6
    _same_members(pack, members(["none"]) + members(["0-1"]))
    _same_members(members(["0-1", "2-3", "1-3"])[3:6], members(["2-3"]))
    assert [m.name for m in pack] == ["none/r000", "none/r001", "none/r002", "0-1/r000", "0-1/r001", "0-1/r002"]
    # every member and every role has its own seed
    seeds = [m.init_seed for m in pack] + [m.order_seed for m in pack]
    assert len(set(seeds)) == len(seeds)
    for m in pack[:3]:  # the baseline is not mislabelled
        np.testing.assert_array_equal(m.labels, labels)
    assert all(np.sum(m.labels != labels) == 3 + 5 for m in pack[3:])  # floor(7/2) + floor(10/2)
    assert len({m.labels.tobytes() for m in pack[3:]}) == 3  # replicates differ
    # the config seed changes everything
    other = members(["none", "0-1"], seed=1)
    assert all(m.init_seed != n.init_seed for m, n in zip(pack, other))


def test_members_reject_bad_pairs(labels):
    with pytest.raises(ValueError, match="pair"):
        mislabel_members(["0-4"], labels, num_classes=4, seed=0, replicates=2)


# --------------------------------------------------------------------------- the tidy table


def test_per_model_class_table():
    k, c = 3, 3
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, size=(k, c, c))
    metrics = {
        "accuracy": rng.random((k, c)),
        "logloss_bits": rng.random((k, c)) * 3,
        "confusion": confusion,
        "mean_probs": rng.dirichlet(np.ones(c), size=(k, c)),
        "n_images": np.array([4, 5, 6]),
    }
    table = per_model_class_table(["none", "none", "0-2"], [0, 1, 0], [11, 12, 13], ["cat", "dog", "fox"], metrics)
    assert list(table.columns) == [
        "pair", "pair_a", "pair_b", "replicate", "seed", "class", "class_name", "n_images", "accuracy",
        "logloss_bits", "pred_0", "pred_1", "pred_2", "prob_0", "prob_1", "prob_2",
    ]
    assert len(table) == k * c
    assert table["pair"].tolist() == ["none"] * 6 + ["0-2"] * 3
    assert table["pair_a"].tolist() == [-1] * 6 + [0] * 3 and table["pair_b"].tolist() == [-1] * 6 + [2] * 3
    assert table["replicate"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert table["seed"].tolist() == [11] * 3 + [12] * 3 + [13] * 3
    assert table["class"].tolist() == [0, 1, 2] * 3
    assert table["class_name"].tolist() == ["cat", "dog", "fox"] * 3
    assert table["n_images"].tolist() == [4, 5, 6] * 3
    np.testing.assert_allclose(table["accuracy"], metrics["accuracy"].ravel())
    np.testing.assert_allclose(table["logloss_bits"], metrics["logloss_bits"].ravel())
    np.testing.assert_array_equal(table[["pred_0", "pred_1", "pred_2"]].to_numpy(), confusion.reshape(k * c, c))
    np.testing.assert_allclose(
        table[["prob_0", "prob_1", "prob_2"]].to_numpy(), metrics["mean_probs"].reshape(k * c, c)
    )
    assert table["pred_0"].dtype.kind == "i" and table["accuracy"].dtype.kind == "f"


def test_per_model_class_table_checks_lengths_and_pairs():
    metrics = {
        "accuracy": np.zeros((1, 2)),
        "logloss_bits": np.zeros((1, 2)),
        "confusion": np.zeros((1, 2, 2), int),
        "mean_probs": np.full((1, 2, 2), 0.5),
        "n_images": np.array([1, 1]),
    }
    with pytest.raises(ValueError):
        per_model_class_table(["none", "none"], [0], [1], ["a", "b"], metrics)
    with pytest.raises(ValueError, match="pair"):
        per_model_class_table(["0-2"], [0], [1], ["a", "b"], metrics)
    assert isinstance(per_model_class_table(["0-1"], [0], [1], ["a", "b"], metrics), pd.DataFrame)
