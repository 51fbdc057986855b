"""The design of the adversarial study (nnprobe.studies.adversarial.design): the halves P1/P2,
the attacked images and the pixels of a prepared split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnprobe.core.seeds import seeded_subset
from nnprobe.studies.adversarial.design import p1_p2_split, unit_pixels


def test_p1_p2_split_disjoint_sizes_reproducible():
    p1, p2 = p1_p2_split(60_000, seed=7)
    assert p1.shape == p2.shape == (30_000,)
    assert p1.dtype == p2.dtype == np.int64
    assert np.intersect1d(p1, p2).size == 0
    assert np.array_equal(np.union1d(p1, p2), np.arange(60_000))
    assert np.all(np.diff(p1) > 0) and np.all(np.diff(p2) > 0)
    q1, q2 = p1_p2_split(60_000, seed=7)
    assert np.array_equal(p1, q1) and np.array_equal(p2, q2)
    r1, _ = p1_p2_split(60_000, seed=8)
    assert not np.array_equal(p1, r1)
    odd1, odd2 = p1_p2_split(11, seed=0)
    assert odd1.size == odd2.size == 5 and np.intersect1d(odd1, odd2).size == 0
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        p1_p2_split(1, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        p1_p2_split(10, seed=-1)


def test_seeded_subset():
    a = seeded_subset(100, 10, seed=3)
    assert a.dtype == np.int64 and len(np.unique(a)) == 10 and np.all(np.diff(a) > 0) and a.max() < 100
    assert np.array_equal(a, seeded_subset(100, 10, seed=3))
    assert not np.array_equal(a, seeded_subset(100, 10, seed=4))
    assert np.array_equal(seeded_subset(5, 10, seed=0), np.arange(5))
    # a random subset, not the first items: data stored class by class keeps every class in it
    assert a.max() > 50
    with pytest.raises(ValueError, match="n and count must be >= 1"):
        seeded_subset(0, 10, seed=0)


def test_unit_pixels():
    pixels = unit_pixels(np.array([[[[0, 255]]]], dtype=np.uint8))
    assert pixels.dtype == torch.float32 and pixels.flatten().tolist() == [0.0, 1.0]
    with pytest.raises(TypeError, match="uint8"):
        unit_pixels(np.zeros((1, 1, 2, 2)))
