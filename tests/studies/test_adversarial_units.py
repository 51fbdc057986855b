"""Unit inspection of the adversarial study (nnprobe.studies.adversarial.units): the images that
most activate a unit or a random direction of a layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnprobe.studies.adversarial.units import random_directions, top_activating_images


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
