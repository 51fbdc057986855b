"""The class-pair mislabel design (nnprobe.studies.mislabel.design): label swaps, members' seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nnprobe.core.seeds import derive_seed
from nnprobe.studies.mislabel.design import member_seeds, mislabel_labels, mislabel_members

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


# --------------------------------------------------------------------------- designs


def test_the_independent_design_keeps_its_seeds(labels):
    """The seeds of the independent design are those of the study before the paired design existed."""
    members = mislabel_members(["none", "2-3"], labels, num_classes=4, seed=7, replicates=2)
    _same_members(members, mislabel_members(["none", "2-3"], labels, num_classes=4, seed=7, replicates=2,
                                            design="independent"))
    for m in members:
        pair, r = m.name.split("/r")
        assert m.init_seed == derive_seed(7, "mislabel", pair, int(r), "init")
        assert m.order_seed == derive_seed(7, "mislabel", pair, int(r), "order")
    assert member_seeds(7, "2-3", 1) == {"init": derive_seed(7, "mislabel", "2-3", 1, "init"),
                                         "order": derive_seed(7, "mislabel", "2-3", 1, "order"),
                                         "labels": derive_seed(7, "mislabel", "2-3", 1, "labels")}


@pytest.mark.parametrize("design", ["independent", "paired"])
def test_paired_replicates_share_init_and_order_across_pairs(labels, design):
    """Paired: replicate r of every pair and of the baseline has one init seed and one order seed,
    from (seed, replicate) alone; its labels still come from (seed, pair, replicate). Independent:
    nothing is shared."""
    pairs = ["none", "0-1", "2-3", "1-3"]
    members = {m.name: m for m in mislabel_members(pairs, labels, num_classes=4, seed=0, replicates=3,
                                                   design=design)}
    for r in range(3):
        block = [members[f"{p}/r{r:03d}"] for p in pairs]
        inits, orders = {m.init_seed for m in block}, {m.order_seed for m in block}
        if design == "paired":
            assert inits == {derive_seed(0, "mislabel", "paired", r, "init")}
            assert orders == {derive_seed(0, "mislabel", "paired", r, "order")}
        else:
            assert len(inits) == len(orders) == len(pairs)
        # labels: the baseline's are clean, every pair's its own draw (as in the independent design)
        np.testing.assert_array_equal(block[0].labels, labels)
        for m in block[1:]:
            pair = m.name.split("/")[0]
            expected = mislabel_labels(labels, tuple(int(c) for c in pair.split("-")),
                                       derive_seed(0, "mislabel", pair, r, "labels"))
            np.testing.assert_array_equal(m.labels, expected)
    # replicates differ from each other in both designs
    assert len({members[f"0-1/r{r:03d}"].init_seed for r in range(3)}) == 3
    assert len({members[f"0-1/r{r:03d}"].order_seed for r in range(3)}) == 3
    # and the init and order streams of a replicate are distinct
    assert all(m.init_seed != m.order_seed for m in members.values())


def test_paired_members_do_not_depend_on_their_pack(labels):
    def members(pairs, replicates):
        return mislabel_members(pairs, labels, num_classes=4, seed=0, replicates=replicates, design="paired")

    whole = members(["none", "0-1", "2-3"], 3)
    _same_members(whole, members(["none"], 3) + members(["0-1"], 3) + members(["2-3"], 3))
    _same_members([m for m in whole if m.name.endswith("r002")], members(["none", "0-1", "2-3"], [2]))


def test_an_unknown_design_is_refused(labels):
    with pytest.raises(ValueError, match=r"mislabel\.design must be one of \['independent', 'paired'\], got 'crossed'"):
        mislabel_members(["0-1"], labels, num_classes=4, seed=0, replicates=1, design="crossed")
