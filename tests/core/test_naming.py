"""Names of the workflow's things (nnprobe.core.naming): class pairs, packs of pairs."""

from __future__ import annotations

import pytest

from nnprobe.core.naming import BASELINE, mislabel_pairs, pair_name, pair_packs, parse_pair, population_pairs

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


def test_population_pairs_and_packs():
    assert population_pairs(3) == ["none", "0-1", "0-2", "1-2"]
    assert len(population_pairs(10)) == 46
    assert pair_packs(["none", "0-1", "0-2"], 2) == ["none+0-1", "0-2"]
    assert pair_packs(population_pairs(3), 10) == ["none+0-1+0-2+1-2"]
    with pytest.raises(ValueError, match="pairs_per_job"):
        pair_packs(["none"], 0)


@pytest.mark.parametrize("per_job", [0, -2])
def test_pair_packs_refuses_fewer_than_one_pair_per_job(per_job):
    with pytest.raises(ValueError, match=rf"^config key mislabel\.pairs_per_job must be >= 1, got {per_job}$"):
        pair_packs(["none", "0-1"], per_job)
