"""Feature geometry of the noise study (nnprobe.studies.noise.geometry): cosine distances, the
minimum spanning tree, the bias split of the logits, softmax scores and clutter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnprobe.engines.evaluation import embed, normalize_images
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.studies.noise import geometry as noise

MEAN, STD = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])


def test_cosine_distance_known_values():
    assert noise.cosine_distance([1, 0], [2, 0]) == pytest.approx(0.0)
    assert noise.cosine_distance([1, 0], [0, 3]) == pytest.approx(0.5)
    assert noise.cosine_distance([1, 1], [-1, -1]) == pytest.approx(1.0)
    assert noise.cosine_distance([1, 0], [1, 1]) == pytest.approx((1 - np.sqrt(0.5)) / 2)
    v = np.random.default_rng(0).normal(size=(6, 4))
    d = noise.cosine_distance_matrix(v)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert d[1, 4] == pytest.approx(noise.cosine_distance(v[1], v[4]))
    with pytest.raises(ValueError, match="zero"):
        noise.cosine_distance_matrix(np.zeros((2, 3)))


def test_minimum_spanning_tree_on_a_known_graph():
    # The textbook example (Cormen et al., Fig. 23.1 / 23.4): total weight 37.
    letters = "abcdefghi"
    edges = {("a", "b"): 4, ("a", "h"): 8, ("b", "c"): 8, ("b", "h"): 11, ("c", "d"): 7, ("c", "f"): 4,
             ("c", "i"): 2, ("d", "e"): 9, ("d", "f"): 14, ("e", "f"): 10, ("f", "g"): 2, ("g", "h"): 1,
             ("g", "i"): 6, ("h", "i"): 7}
    d = np.full((9, 9), 1000.0)  # absent edges: heavier than any tree edge
    np.fill_diagonal(d, 0)
    for (u, v), w in edges.items():
        d[letters.index(u), letters.index(v)] = d[letters.index(v), letters.index(u)] = w
    tree = noise.minimum_spanning_tree(d)
    assert len(tree) == 8
    assert sum(w for _, _, w in tree) == 37
    got = {(letters[i], letters[j]) for i, j, _ in tree}
    must = {("g", "h"), ("c", "i"), ("f", "g"), ("a", "b"), ("c", "f"), ("c", "d"), ("d", "e")}
    assert must <= got and len(got & {("a", "h"), ("b", "c")}) == 1  # the one tie of the example


def test_minimum_spanning_tree_matches_scipy_on_random_graphs():
    from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst

    rng = np.random.default_rng(0)
    for _ in range(20):
        d = noise.cosine_distance_matrix(rng.normal(size=(11, 5)))
        ours = sum(w for _, _, w in noise.minimum_spanning_tree(d))
        assert ours == pytest.approx(scipy_mst(d).sum())


def test_group_means():
    f = np.array([[1.0, 0], [3, 0], [0, 2]])
    np.testing.assert_allclose(noise.group_means(f, np.array(["a", "a", "b"]), ["b", "a"]), [[0, 2], [2, 0]])


def test_bias_split_reconstructs_the_logits_of_a_network():
    model = resnet18_cifar(num_classes=4, in_channels=3, width=4, seed=0).eval()
    images = torch.randint(0, 256, (9, 3, 8, 8), dtype=torch.uint8)
    logits, features = embed(model.features, model.fc, images, MEAN, STD)
    with torch.no_grad():
        direct = model(normalize_images(images, torch.tensor(MEAN), torch.tensor(STD)))
    torch.testing.assert_close(logits, direct, rtol=1e-5, atol=1e-5)
    term, b = noise.bias_split(features.numpy(), model.fc.weight.detach().numpy(), model.fc.bias.detach().numpy())
    np.testing.assert_allclose(term + b, logits.numpy(), rtol=1e-5, atol=1e-5)
    assert features.shape == (9, 32)


def test_bias_check_finds_a_bias_driven_class():
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(size=(100, 5))) * 0.01  # almost no signal
    weight = rng.normal(size=(3, 5))
    bias = np.array([0.0, 2.0, -1.0])
    check = noise.bias_check(features, weight, bias)
    assert check["dominant"] == 1 and check["dominant_fraction"] == 1.0
    assert check["bias_argmax"] == 1 and check["bias_predicts_dominant"]
    # the weight term, not the bias, makes class 0 win
    features = np.ones((50, 5))
    weight = np.zeros((3, 5))
    weight[0] = 1.0
    check = noise.bias_check(features, weight, np.array([0.0, 1.0, 0.5]))
    assert check["dominant"] == 0 and check["bias_argmax"] == 1 and not check["bias_predicts_dominant"]
    assert check["weight_term_dominant_fraction"] == 1.0 and check["dominant_weight_term_excess"] > 0
    with pytest.raises(ValueError, match="W phi"):
        noise.bias_split(np.ones((2, 4)), np.ones((3, 5)), np.ones(3))


def test_max_softmax_and_predicted_fractions():
    logits = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [1.0, 0.0]])
    np.testing.assert_allclose(noise.max_softmax(logits)[0], 0.5)
    np.testing.assert_allclose(noise.predicted_fractions(logits, 3), [0.75, 0.25, 0.0])


def test_participation_ratio_of_known_spectra():
    assert noise.participation_ratio([1, 0, 0]) == pytest.approx(1.0)
    assert noise.participation_ratio([2, 2, 2, 2]) == pytest.approx(4.0)
    assert noise.participation_ratio([3, 1]) == pytest.approx(16 / 10)
    with pytest.raises(ValueError):
        noise.participation_ratio([0, 0])


def test_clutter_of_isotropic_and_flat_clouds():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(4000, 6))
    flat = iso * np.array([1, 0, 0, 0, 0, 0])
    assert noise.clutter(iso)["participation_ratio"] == pytest.approx(6, rel=0.05)
    assert noise.clutter(flat)["participation_ratio"] == pytest.approx(1.0)
    spectrum = noise.pca_spectrum(iso)
    assert spectrum.sum() == pytest.approx(np.trace(np.cov(iso.T)))  # the covariance's eigenvalues
    assert np.all(np.diff(spectrum) <= 0) and np.all(np.abs(spectrum - 1) < 0.15)
    # mean distance to the centroid of a standard normal in 6-d: E|z| = sqrt(2) Gamma(3.5)/Gamma(3)
    assert noise.mean_distance_to_centroid(iso) == pytest.approx(2.3499, rel=0.02)
    assert noise.mean_distance_to_centroid(np.array([[0.0, 0], [2, 0]])) == pytest.approx(1.0)


def test_dominant_agreement():
    a = noise.dominant_agreement([3, 3, 5, 3])
    assert a == {"models": 4, "mode": 3, "mode_fraction": 0.75, "distinct": 2, "all_same": False}
    assert noise.dominant_agreement([2, 2])["all_same"]
