"""Unit inspection of the adversarial study (nnprobe.studies.adversarial.units): the images that
most activate a unit or a random direction of a layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnprobe.studies.adversarial.units import random_directions, top_activating_images, unit_image_rows


def test_top_activating_images_hand_case():
    acts = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.9, 0.0], [0.5, 0.55], [0.0, 0.2]])
    assert top_activating_images(acts, 0, k=3).tolist() == [2, 1, 3]  # tie 1/3 -> lower first
    assert top_activating_images(acts, 1, k=2).tolist() == [0, 3]
    v = np.array([1.0, -1.0])  # direction e0 - e1
    assert top_activating_images(acts.numpy(), v, k=2).tolist() == [2, 1]  # scores -.7, 0, .9, -.05, -.2
    assert top_activating_images(acts, 10 * v, k=4).tolist() == [2, 1, 3, 4]  # scale-free
    dirs = random_directions(2, 3, seed=0)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0)
    assert np.array_equal(dirs, random_directions(2, 3, seed=0))
    with pytest.raises(ValueError, match="k must be in \\[1, 5\\]"):
        top_activating_images(acts, 0, k=6)
    with pytest.raises(ValueError, match="unit index must be in \\[0, 2\\)"):
        top_activating_images(acts, 2)
    with pytest.raises(ValueError, match="non-zero vector of length 2"):
        top_activating_images(acts, np.zeros(2))


def unit_fixture():
    g = torch.Generator().manual_seed(0)
    activations = torch.rand(12, 5, generator=g)
    images = np.arange(12, dtype=np.float64)[:, None, None, None] * np.ones((1, 1, 2, 2)) / 12  # image i holds i/12
    return activations, images


def identities(images: np.ndarray) -> list[int]:
    return [int(round(v * 12)) for v in images[:, 0, 0, 0]]


def test_unit_image_rows():
    activations, images = unit_fixture()
    rows, chosen = unit_image_rows(activations, images, units=3, directions=2, top_k=4, seed=7)
    assert len(chosen) == 3 == len(set(chosen.tolist())) and all(0 <= u < 5 for u in chosen)
    assert chosen.tolist() == sorted(chosen.tolist())
    assert list(rows) == [f"unit {u}" for u in chosen] + ["random direction 1", "random direction 2"]
    for name, shown in rows.items():
        assert shown.shape == (4, 1, 2, 2), name
        assert len(set(identities(shown))) == 4, name  # four different images
    for u in chosen:  # a unit's row: the images that activate it most, the highest first
        assert identities(rows[f"unit {u}"]) == torch.argsort(activations[:, u], descending=True)[:4].tolist()
    again, chosen_again = unit_image_rows(activations, images, units=3, directions=2, top_k=4, seed=7)
    assert np.array_equal(chosen_again, chosen) and list(again) == list(rows)
    assert all(np.array_equal(again[k], rows[k]) for k in rows)
    other, other_chosen = unit_image_rows(activations, images, units=3, directions=2, top_k=4, seed=8)
    assert not (np.array_equal(other_chosen, chosen)
                and all(np.array_equal(other[k], rows[k]) for k in rows))  # another seed, other draws


def test_unit_image_rows_takes_at_most_every_unit():
    activations, images = unit_fixture()
    rows, chosen = unit_image_rows(activations, images, units=9, directions=1, top_k=2, seed=0)
    assert chosen.tolist() == [0, 1, 2, 3, 4]
    assert list(rows) == ["unit 0", "unit 1", "unit 2", "unit 3", "unit 4", "random direction 1"]
