"""The noise study: probe sets, feature geometry, bias split, AUROC, clutter, the ResNet and its recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from nnprobe import noise
from nnprobe.resnet import (
    TrainConfig,
    augment_batch,
    embed,
    normalize,
    one_cycle,
    resnet18_cifar,
    train_resnet,
)

MEAN, STD = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])


# --------------------------------------------------------------------------- probe sets


def test_gaussian_set_matches_the_data_channel_statistics():
    x = noise.gaussian_noise(2000, MEAN, STD, (3, 16, 16), np.random.default_rng(0))
    assert x.shape == (2000, 3, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), MEAN, atol=2e-3)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), STD, rtol=5e-3)
    # pixels are independent: neighbouring pixels uncorrelated
    a, b = x[:, 0, :, :-1].ravel(), x[:, 0, :, 1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_gaussian_set_statistics_follow_real_data():
    rng = np.random.default_rng(1)
    images = (rng.beta(2, 3, (50, 3, 8, 8)) * 255).astype(np.uint8)
    mean, std = images.mean(axis=(0, 2, 3)) / 255, images.std(axis=(0, 2, 3)) / 255
    sets = noise.probe_sets(["gaussian"], 20000, mean, std, images, seed=3)
    np.testing.assert_allclose(sets["gaussian"].mean(axis=(0, 2, 3)), mean, atol=2e-3)
    np.testing.assert_allclose(sets["gaussian"].std(axis=(0, 2, 3)), std, rtol=5e-3)


def test_uniform_set_covers_the_pixel_range():
    x = noise.uniform_noise(500, (3, 8, 8), np.random.default_rng(0))
    assert x.min() >= 0 and x.max() < 1
    np.testing.assert_allclose(x.mean(), 0.5, atol=0.01)
    np.testing.assert_allclose(x.var(), 1 / 12, rtol=0.03)


def test_shuffled_images_are_permutations_of_the_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 6, 5), dtype=np.uint8)
    out = noise.shuffled_pixels(images, 20, np.random.default_rng(1))
    flat_in = images.reshape(20, 3, -1).transpose(0, 2, 1)  # (N, pixels, RGB)
    flat_out = np.rint(out * 255).astype(np.uint8).reshape(20, 3, -1).transpose(0, 2, 1)
    matched = 0
    for o in flat_out:
        # each shuffled image is one test image with its RGB triples permuted (colours kept together)
        for i in flat_in:
            if sorted(map(tuple, o)) == sorted(map(tuple, i)):
                matched += 1
                assert not np.array_equal(o, i)  # and really shuffled
                break
    assert matched == 20


def test_shuffled_set_cannot_exceed_the_test_set():
    with pytest.raises(ValueError, match="probe_size"):
        noise.shuffled_pixels(np.zeros((3, 1, 2, 2), np.uint8), 4, np.random.default_rng(0))


def test_lowfreq_noise_is_low_frequency_with_the_data_statistics():
    cutoff = 0.25
    x = noise.lowfreq_noise(400, MEAN, STD, (3, 32, 32), cutoff, np.random.default_rng(0))
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), MEAN, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), STD, rtol=1e-5)
    power = np.abs(np.fft.fft2(x - x.mean(axis=(2, 3), keepdims=True))) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij"))
    above = power[..., radius > cutoff * 0.5 + 1e-9].sum() / power.sum()
    assert above < 1e-10
    # and it is smooth: neighbouring pixels strongly correlated, unlike white noise
    a, b = x[:, 0, :, :-1].ravel(), x[:, 0, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_constant_image_is_the_mean():
    x = noise.constant_image(MEAN, (3, 4, 5))
    assert x.shape == (1, 3, 4, 5)
    for c in range(3):
        np.testing.assert_allclose(x[0, c], MEAN[c], rtol=1e-6)


def test_probe_sets_are_reproducible_and_independent_of_each_other():
    images = np.random.default_rng(0).integers(0, 256, (30, 3, 8, 8), dtype=np.uint8)
    a = noise.probe_sets(noise.PROBE_SETS, 10, MEAN, STD, images, seed=7)
    b = noise.probe_sets(["lowfreq", "gaussian"], 10, MEAN, STD, images, seed=7)
    assert list(a) == list(noise.PROBE_SETS)
    np.testing.assert_array_equal(a["gaussian"], b["gaussian"])
    np.testing.assert_array_equal(a["lowfreq"], b["lowfreq"])
    assert a["constant"].shape[0] == 1 and a["shuffled"].shape[0] == 10
    c = noise.probe_sets(["gaussian"], 10, MEAN, STD, images, seed=8)
    assert not np.array_equal(a["gaussian"], c["gaussian"])
    with pytest.raises(ValueError, match="unknown probe sets"):
        noise.probe_sets(["pink"], 10, MEAN, STD, images, seed=7)


# --------------------------------------------------------------------------- geometry


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


# --------------------------------------------------------------------------- bias split and AUROC


def test_bias_split_reconstructs_the_logits_of_a_network():
    model = resnet18_cifar(num_classes=4, in_channels=3, width=4, seed=0).eval()
    images = torch.randint(0, 256, (9, 3, 8, 8), dtype=torch.uint8)
    logits, features = embed(model.features, model.fc, images, MEAN, STD)
    with torch.no_grad():
        direct = model(normalize(images, torch.tensor(MEAN), torch.tensor(STD)))
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


def test_auroc_known_cases_and_sklearn():
    assert noise.auroc([2, 3, 4], [0, 1]) == 1.0
    assert noise.auroc([0, 1], [2, 3]) == 0.0
    assert noise.auroc([1, 1], [1, 1, 1]) == 0.5
    assert noise.auroc([1, 3], [2]) == 0.5
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos, neg = rng.normal(0.5, 1, 200), rng.normal(0, 1, 150)
        pos[:20] = neg[:20]  # ties
        y = np.r_[np.ones(200), np.zeros(150)]
        assert noise.auroc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))
    with pytest.raises(ValueError, match="at least one"):
        noise.auroc([], [1.0])


def test_max_softmax_and_predicted_fractions():
    logits = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [1.0, 0.0]])
    np.testing.assert_allclose(noise.max_softmax(logits)[0], 0.5)
    np.testing.assert_allclose(noise.predicted_fractions(logits, 3), [0.75, 0.25, 0.0])


# --------------------------------------------------------------------------- clutter


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


def test_spearman_and_agreement():
    rho, p = noise.spearman([1, 2, 3, 4, 5], [2, 4, 8, 16, 32])
    assert rho == pytest.approx(1.0) and p < 0.05
    assert noise.spearman([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    assert np.isnan(noise.spearman([1, 1, 1], [1, 2, 3])[0])
    a = noise.dominant_agreement([3, 3, 5, 3])
    assert a == {"models": 4, "mode": 3, "mode_fraction": 0.75, "distinct": 2, "all_same": False}
    assert noise.dominant_agreement([2, 2])["all_same"]


def test_probe_tables_of_one_network():
    rng = np.random.default_rng(0)
    k, d = 3, 4
    labels = np.repeat(np.arange(k), 20)
    features = rng.normal(size=(60, d)) + np.eye(k, d)[labels] * 3
    weight, bias = np.eye(k, d) * 2, np.array([0.0, 0.0, 5.0])
    noise_features = rng.normal(size=(30, d)) * 0.1
    probes = {"gaussian": (noise_features @ weight.T + bias, noise_features)}
    groups, distances, mst = noise.probe_tables(features @ weight.T + bias, features, labels, ["a", "b", "c"],
                                                ["a", "b", "c"], probes, weight, bias)
    g = groups.set_index("group")
    assert list(g.index) == ["a", "b", "c", "gaussian"]
    assert g.loc["gaussian", "dominant_name"] == "c" and g.loc["gaussian", "bias_predicts_dominant"]
    assert g.loc["gaussian", "pred_c"] == 1.0 and np.isnan(g.loc["a", "auroc"])
    assert 0 <= g.loc["gaussian", "auroc"] <= 1
    assert len(distances) == 4 * 3 and set(distances["kind_a"]) == {"class", "noise"}
    assert len(mst) == 3 and (mst["noise_set"] == "gaussian").all()


def test_tables_across_networks():
    rows = []
    for model, dom in (("s0", 1), ("s1", 1), ("s2", 0)):
        for group, kind in (("a", "class"), ("b", "class"), ("c", "class"), ("gaussian", "noise")):
            shares = {"pred_a": 0.0, "pred_b": 0.0, "pred_c": 0.0}
            if kind == "noise":
                shares["pred_" + "abc"[dom]] = 1.0
            rows.append({"source": "resnet18", "model": model, "group": group, "kind": kind, **shares,
                         "dominant": dom, "dominant_name": "abc"[dom], "dominant_fraction": 1.0,
                         "mean_confidence": 0.9, "auroc": 0.7 if kind == "noise" else np.nan,
                         "bias_predicts_dominant": dom == 1, "feature_mean_distance": {"a": 1, "b": 2, "c": 3}.get(group, 0),
                         "feature_participation_ratio": {"a": 3, "b": 2, "c": 1}.get(group, 0)})
    groups = pd.DataFrame(rows)
    agree = noise.agreement_table(groups).iloc[0]
    assert agree["mode_name"] == "b" and agree["mode_fraction"] == pytest.approx(2 / 3) and not agree["all_same"]
    assert agree["bias_predicts_dominant"] == pytest.approx(2 / 3)
    inputs = pd.DataFrame({"class": [0, 1, 2], "group": ["a", "b", "c"], "input_mean_distance": [1.0, 3, 2],
                           "input_participation_ratio": [1.0, 2, 3]})
    clutter = noise.clutter_table(groups, inputs)
    assert clutter.set_index("group").loc["b", "attraction_gaussian"] == pytest.approx(2 / 3)
    corr = noise.clutter_correlations(clutter).set_index("measure")
    assert corr.loc["feature_mean_distance", "most_cluttered"] == "c"
    assert corr.loc["input_mean_distance", "most_cluttered_attracts"]  # b: most cluttered and most attracting

    binary = groups.assign(source="resnet18_binary")
    table = noise.binary_table(binary, "b").set_index("group")
    assert table.loc["gaussian", "mean"] == pytest.approx(2 / 3) and table.loc["gaussian", "models"] == 3
    assert table.loc["gaussian", "min"] == 0 and table.loc["a", "max"] == 0
    with pytest.raises(ValueError, match="binary_classes"):
        noise.binary_table(binary, "cat")


# --------------------------------------------------------------------------- the ResNet and its recipe


def test_resnet18_parameter_count():
    assert sum(p.numel() for p in resnet18_cifar().parameters()) == 11_173_962
    model = resnet18_cifar(num_classes=10, in_channels=1, width=8)
    assert model.feature_dim == 64
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # the CIFAR stem: 3x3 stride-1 convolution, no max-pool, so a 32x32 input reaches 4x4 in the last stage
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_resnet_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = resnet18_cifar(width=4, seed=3), resnet18_cifar(width=4, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = resnet18_cifar(width=4, seed=4)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_one_cycle_schedule():
    total = 100
    factors = [one_cycle(s, total, 0.25) for s in range(total)]
    assert factors[0] == pytest.approx(1 / 25) and max(factors) == pytest.approx(1.0)
    assert int(np.argmax(factors)) == 24 and factors[-1] == pytest.approx(1 / 75)
    assert all(x >= y for x, y in zip(factors[24:], factors[25:]))


def test_augment_batch_is_crop_and_flip():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    idx = torch.tensor([1, 0, 1])
    offsets = torch.tensor([[1, 1], [0, 2], [2, 0]])
    flips = torch.tensor([False, True, True])
    out = augment_batch(padded, idx, offsets, flips, (4, 4))
    torch.testing.assert_close(out[0], images[1])  # offset (1, 1) of a 1-pixel padding: the image itself
    torch.testing.assert_close(out[1], padded[0, :, 0:4, 2:6].flip(-1))
    torch.testing.assert_close(out[2], padded[1, :, 2:6, 0:4].flip(-1))


def test_a_few_cpu_training_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    images = np.zeros((64, 1, 8, 8), dtype=np.uint8)
    images[labels == 1, :, :, :4] = 255  # class 1: left half bright
    images[labels == 0, :, :, 4:] = 255
    config = TrainConfig(epochs=8, batch_size=16, lr=0.05, crop_padding=1, flip=False, progress=False,
                         label_smoothing=0.0, warmup_fraction=0.2)
    model = resnet18_cifar(num_classes=2, in_channels=1, width=4, seed=0)
    history = train_resnet(model, images, labels, [0.5], [0.5], config, seed=0)
    assert len(history) == 8 and not model.training
    assert history[-1]["loss"] < 0.7 * history[0]["loss"], history
    logits, _ = embed(model.features, model.fc, images, [0.5], [0.5])
    assert (logits.argmax(1).numpy() == labels).mean() > 0.9


def test_training_is_reproducible_from_its_seed():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (32, 1, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 3, 32)
    config = TrainConfig(epochs=1, batch_size=8, progress=False)
    runs = []
    for _ in range(2):
        model = resnet18_cifar(num_classes=3, in_channels=1, width=4, seed=5)
        runs.append((train_resnet(model, images, labels, [0.5], [0.25], config, seed=9), model))
    assert runs[0][0][0]["loss"] == runs[1][0][0]["loss"]
    for pa, pb in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(pa, pb)


def test_schema_train_keys_are_the_recipe():
    """rule noise_train passes config noise.train to TrainConfig(**...): same keys, same defaults."""
    import dataclasses
    from pathlib import Path

    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "schema.yaml").read_text())
    train = schema["properties"]["noise"]["properties"]["train"]["properties"]
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert set(train) == set(fields)
    for key, spec in train.items():
        assert spec["default"] == fields[key], key
        assert spec.get("description"), key
