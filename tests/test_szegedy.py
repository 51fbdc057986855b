"""Szegedy et al. (2013) core: zoo, weight decay, P1/P2, distortion, L-BFGS attack, transfer, units.

The attack tests train tiny networks on scikit-learn's 8x8 digits (pixels scaled to [0, 1])
in a few hundred steps; the whole file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.szegedy import (
    DEFAULT_C_GRID,
    ZOO,
    AutoencoderClassifier,
    SigmoidMLP,
    SoftmaxRegression,
    ae400_10,
    build_zoo_model,
    count_parameters,
    cross_model_error_matrix,
    decayed_layers,
    fc10,
    fc_sigmoid,
    fit_classifier,
    gaussian_noise_control,
    iterative_gradient_attack,
    minimal_adversarial_any_target,
    minimal_adversarial_lbfgs,
    p1_p2_split,
    random_directions,
    rescale_to_rms,
    rms_distortion,
    top_activating_images,
    train_zoo_model,
    weight_decay_penalty,
)

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32)  # (1797, 64) in [0, 1]
    y = torch.tensor(bunch.target, dtype=torch.int64)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


@pytest.fixture(scope="module")
def mlp(digits) -> SigmoidMLP:
    torch.manual_seed(0)
    model = fc_sigmoid((32,), num_inputs=64, generator=torch.Generator().manual_seed(1))
    fit_classifier(model, digits["x_train"], digits["y_train"], (1e-5, 1e-6), epochs=25, batch_size=64, lr=1e-2, seed=2)
    return model


@pytest.fixture(scope="module")
def softmax(digits) -> SoftmaxRegression:
    model = fc10(num_inputs=64, generator=torch.Generator().manual_seed(3))
    fit_classifier(model, digits["x_train"], digits["y_train"], 1e-4, epochs=20, batch_size=64, lr=1e-2, seed=4)
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def attack_batch(model: nn.Module, digits, n: int = 24, seed: int = 0):
    """The first n correctly classified test digits and a random wrong target for each."""
    x, y = digits["x_test"], digits["y_test"]
    with torch.no_grad():
        right = torch.nonzero(model(x).argmax(1) == y).flatten()[:n]
    g = torch.Generator().manual_seed(seed)
    target = (y[right] + torch.randint(1, 10, (right.numel(),), generator=g)) % 10
    return x[right], y[right], target


# --------------------------------------------------------------------------- zoo


@pytest.mark.parametrize(
    "name, count",
    [
        ("FC10(1e-4)", 784 * 10 + 10),
        ("FC10(1)", 7_850),
        ("FC100-100-10", 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
        ("FC200-200-10", 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10),
        ("FC123-456-10", 784 * 123 + 123 + 123 * 456 + 456 + 456 * 10 + 10),
        ("AE400-10", 784 * 400 + 400 + 400 * 784 + 784 + 400 * 10 + 10),
    ],
)
def test_zoo_parameter_counts_and_shapes(name, count):
    model = build_zoo_model(name, generator=torch.Generator().manual_seed(0))
    assert count_parameters(model) == count
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert torch.equal(model(x), model(x.flatten(1)))  # images or flat vectors


def test_zoo_names_and_paper_facts():
    assert {"FC10(1e-4)", "FC10(1e-2)", "FC10(1)", "FC100-100-10", "FC200-200-10", "AE400-10"} <= set(ZOO)
    assert count_parameters(build_zoo_model("FC100-100-10")) == 89_610
    assert [ZOO[f"FC10({s})"].weight_decay for s in ("1e-4", "1e-2", "1")] == [1e-4, 1e-2, 1.0]
    assert ZOO["FC100-100-10"].weight_decay == (1e-5, 1e-5, 1e-6)
    assert ZOO["AE400-10"].weight_decay == 1e-6
    for entry in ZOO.values():  # every spec fits its model's decayed layers
        weight_decay_penalty(entry.constructor(), entry.weight_decay)
    mlp = fc_sigmoid((100, 100))
    assert [name for name, _ in decayed_layers(mlp)] == ["layers.0", "layers.1", "out"]
    hidden = mlp.hidden(torch.rand(4, 784))
    assert [h.shape for h in hidden] == [(4, 100), (4, 100)]
    assert all(((h > 0) & (h < 1)).all() for h in hidden)  # sigmoid units
    ae = ae400_10()
    assert isinstance(ae, AutoencoderClassifier)
    assert [name for name, _ in decayed_layers(ae)] == ["encoder", "decoder", "classifier"]
    assert ae.code(torch.rand(2, 784)).shape == (2, 400)
    assert ae.reconstruct(torch.rand(2, 784)).shape == (2, 784)
    assert fc10().hidden(torch.rand(2, 784)) == []


def test_constructors_are_seeded():
    a = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(5))
    b = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(5))
    c = fc_sigmoid((10,), num_inputs=16, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    with pytest.raises(ValueError, match="model must be one of"):
        build_zoo_model("FC7")
    with pytest.raises(ValueError, match="hidden must be"):
        fc_sigmoid(())


# --------------------------------------------------------------------------- weight decay


def penalty(*args, **kwargs) -> float:
    return float(weight_decay_penalty(*args, **kwargs).detach())


def test_weight_decay_is_lambda_times_squared_weights_over_units_per_layer():
    model = fc_sigmoid((3, 2), num_inputs=4, num_classes=2)  # weights (3, 4), (2, 3), (2, 2)
    with torch.no_grad():
        for i, (_, layer) in enumerate(decayed_layers(model)):
            layer.weight.copy_(torch.arange(layer.weight.numel(), dtype=torch.float32).view_as(layer.weight) + i)
            layer.bias.fill_(100.0)
    lambdas = (1e-1, 1e-2, 1e-3)
    layers = [layer for _, layer in decayed_layers(model)]
    squares = [float((layer.weight.detach().double() ** 2).sum()) for layer in layers]
    units = [3, 2, 2]  # output units of each layer
    expected = sum(lam * sq / k for lam, sq, k in zip(lambdas, squares, units))
    assert penalty(model, lambdas) == pytest.approx(expected, rel=1e-6)
    # hand value of layer 0: sum_{k<12} k^2 = 506, over its 3 units
    assert squares[0] == 506
    assert penalty(model, (1.0, 0.0, 0.0)) == pytest.approx(506 / 3)
    # biases are not decayed
    with torch.no_grad():
        for layer in layers:
            layer.bias.fill_(-7.0)
    assert penalty(model, lambdas) == pytest.approx(expected, rel=1e-6)
    # gradient 2 * lambda_l * w / k_l, none on the biases
    model.zero_grad()
    weight_decay_penalty(model, lambdas).backward()
    for lam, k, layer in zip(lambdas, units, layers):
        torch.testing.assert_close(layer.weight.grad, 2 * lam * layer.weight.detach() / k)
        assert layer.bias.grad is None
    # the other normalisations: mean squared weight (divide by 12 weights), plain sum
    assert penalty(model, (1.0, 0, 0), normalize="weights") == pytest.approx(506 / 12)
    assert penalty(model, lambdas, normalize="weights") == pytest.approx(
        sum(lam * sq / layer.weight.numel() for lam, sq, layer in zip(lambdas, squares, layers)), rel=1e-6
    )
    assert penalty(model, (1.0, 0, 0), normalize="none") == pytest.approx(506)
    # one lambda for every layer
    assert penalty(model, 0.5) == pytest.approx(penalty(model, (0.5,) * 3))
    # FC10: 10 units
    fc = fc10(num_inputs=4)
    with torch.no_grad():
        fc.fc.weight.fill_(0.5)
    assert penalty(fc, 1.0) == pytest.approx(40 * 0.25 / 10)


def test_weight_decay_errors():
    model = fc_sigmoid((3,), num_inputs=4)
    with pytest.raises(ValueError, match="lambdas has 3 values but SigmoidMLP has 2 decayed layers"):
        weight_decay_penalty(model, (1e-5, 1e-5, 1e-6))
    with pytest.raises(ValueError, match=">= 0"):
        weight_decay_penalty(model, -1.0)
    with pytest.raises(ValueError, match="normalize must be"):
        weight_decay_penalty(model, 1.0, normalize="fan_in")


def test_weight_decay_shrinks_weights(digits):
    x, y = digits["x_train"][:300], digits["y_train"][:300]
    norms = []
    for lam in (0.0, 10.0):
        model = fc10(num_inputs=64, generator=torch.Generator().manual_seed(0))
        fit_classifier(model, x, y, lam, epochs=5, batch_size=50, lr=1e-2, seed=0)
        norms.append(float(model.fc.weight.detach().norm()))
    assert norms[1] < 0.7 * norms[0]


# --------------------------------------------------------------------------- P1 / P2


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


# --------------------------------------------------------------------------- distortion


def test_rms_distortion_hand_case():
    x = torch.zeros(2, 1, 2, 2)
    adv = x.clone()
    adv[0, 0, 0, 0] = 1.0  # one of 4 pixels changed by 1: sqrt(1/4) = 0.5
    adv[1] = 0.3  # every pixel by 0.3
    torch.testing.assert_close(rms_distortion(adv, x), torch.tensor([0.5, 0.3]))
    with pytest.raises(ValueError, match="same shape"):
        rms_distortion(adv[:1], x)


def test_rescale_to_rms_hits_the_target():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 64, generator=g, dtype=torch.float64)
    adv = (x + 0.01 * torch.randn(5, 64, generator=g, dtype=torch.float64)).clamp(0, 1)
    out = rescale_to_rms(adv, x, 0.1)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(rms_distortion(out, x), torch.full((5,), 0.1, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.equal(rescale_to_rms(x, x, 0.1), x)  # nothing to rescale


def test_gaussian_noise_control_seeded_and_clipped():
    x = torch.full((200, 64), 0.5)
    a = gaussian_noise_control(x, 0.1, seed=1)
    assert torch.equal(a, gaussian_noise_control(x, 0.1, seed=1))
    assert not torch.equal(a, gaussian_noise_control(x, 0.1, seed=2))
    assert float(rms_distortion(a, x).mean()) == pytest.approx(0.1, rel=0.05)
    b = gaussian_noise_control(torch.zeros(10, 64), 0.3, seed=0)
    assert b.min() >= 0 and b.max() <= 1
    with pytest.raises(ValueError, match="pixels in \\[0, 1\\]"):
        gaussian_noise_control(x * 255, 0.1, seed=0)


# --------------------------------------------------------------------------- attacks


def check_attack(model: nn.Module, x: torch.Tensor, res) -> None:
    """Every success is classified as its target and lies in the box; failures are NaN."""
    assert res.adversarial.shape == x.shape and res.adversarial.dtype == x.dtype
    with torch.no_grad():
        pred = model(res.adversarial).argmax(1)
    assert torch.equal(res.success, pred == res.target)
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1
    torch.testing.assert_close(res.distortion[res.success], rms_distortion(res.adversarial, x).double()[res.success])
    assert torch.isnan(res.distortion[~res.success]).all()
    assert torch.equal(res.failed, torch.nonzero(~res.success).flatten())


@pytest.mark.parametrize("which", ["mlp", "softmax"])
def test_lbfgs_is_minimal_against_the_gradient_baseline(which, request, digits):
    model = request.getfixturevalue(which)
    assert accuracy(model, digits["x_test"], digits["y_test"]) > 0.9
    x, _, target = attack_batch(model, digits, n=16)
    res = minimal_adversarial_lbfgs(model, x, target, max_iter=60, bisection_steps=6)
    base = iterative_gradient_attack(model, x, target, steps=1000, step_size=0.02)
    check_attack(model, x, res)
    check_attack(model, x, base)
    assert res.success.all(), f"L-BFGS failed on {res.failed.tolist()}"
    assert base.success.all()
    both = res.success & base.success
    excess = res.distortion[both] - base.distortion[both]
    assert (excess <= 1e-4).all(), f"L-BFGS larger than the baseline by {excess.max():.4g}: {excess.tolist()}"
    assert float(res.distortion.mean()) < float(base.distortion.mean())
    assert torch.isfinite(res.c).all() and (res.c > 0).all()


def test_lbfgs_without_refinement_is_adversarial_and_minimal(mlp, digits):
    x, _, target = attack_batch(mlp, digits, n=12, seed=1)
    res = minimal_adversarial_lbfgs(mlp, x, target, max_iter=60, bisection_steps=6, refine_steps=0)
    base = iterative_gradient_attack(mlp, x, target, steps=400, step_size=0.05)
    check_attack(mlp, x, res)
    assert res.success.all()
    assert (res.distortion - base.distortion <= 1e-4).all()


def test_lbfgs_with_the_plain_cross_entropy_is_adversarial(mlp, digits):
    """temperature=1 (the classifier's own loss) gives valid examples, no smaller than T = 0.1."""
    x, _, target = attack_batch(mlp, digits, n=8, seed=4)
    plain = minimal_adversarial_lbfgs(mlp, x, target, max_iter=40, bisection_steps=4, temperature=1.0)
    sharp = minimal_adversarial_lbfgs(mlp, x, target, max_iter=40, bisection_steps=4)
    check_attack(mlp, x, plain)
    assert plain.success.all()
    assert float(sharp.distortion.mean()) <= float(plain.distortion.mean()) + 1e-4


def test_lbfgs_batches_do_not_change_the_answer(mlp, digits):
    x, _, target = attack_batch(mlp, digits, n=6, seed=2)
    whole = minimal_adversarial_lbfgs(mlp, x, target, max_iter=30, bisection_steps=2)
    chunked = minimal_adversarial_lbfgs(mlp, x, target, max_iter=30, bisection_steps=2, batch_size=4)
    check_attack(mlp, x, chunked)
    assert torch.equal(whole.success, chunked.success)
    torch.testing.assert_close(whole.distortion, chunked.distortion, atol=1e-3, rtol=0)


def test_lbfgs_reports_unreachable_targets_and_trivial_ones():
    model = nn.Linear(16, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0] = 1.0
        model.weight[1] = -1.0
        model.bias.copy_(torch.tensor([0.0, 8.0, -1e3]))  # class 2 can never win in the box
    x = torch.full((4, 16), 0.25)  # logits 4, 4, -1000: a tie goes to class 0
    target = torch.tensor([2, 0, 1, 2])
    res = minimal_adversarial_lbfgs(model, x, target, c_grid=(1.0, 0.25, 0.0625), max_iter=20, bisection_steps=2)
    check_attack(model, x, res)
    assert res.success.tolist() == [False, True, True, False]
    assert res.failed.tolist() == [0, 3]
    assert float(res.distortion[1]) == 0 and math.isinf(float(res.c[1]))  # already class 0
    # class 1 needs only a tiny push: logit1 - logit0 = 8 - 2 * sum(x) > 0 once the pixels
    # drop below 0.25 at all, so the minimal example sits just past the tie
    assert 0 < float(res.distortion[2]) < 1e-3


def test_lbfgs_hits_the_linear_boundary():
    """Two-class linear model: the minimal L2 perturbation is along w, of length |margin|/|w|."""
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(16, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 16, generator=g))
        model.bias.zero_()
    x = 0.4 + 0.2 * torch.rand(8, 16, generator=g)
    with torch.no_grad():
        label = model(x).argmax(1)
    target = 1 - label
    w = (model.weight[1] - model.weight[0]).detach()
    sign = torch.where(target == 1, 1.0, -1.0)
    gap = -(sign * (x @ w))  # distance to go along w, in logit units
    expected_l2 = gap / w.norm()
    steps_fit = (expected_l2[:, None] * w.abs()[None] / w.norm() <= 0.4).all()  # stays in the box
    assert steps_fit
    res = minimal_adversarial_lbfgs(model, x, target, max_iter=50, bisection_steps=6)
    check_attack(model, x, res)
    assert res.success.all()
    torch.testing.assert_close(res.distortion * 4, expected_l2.double(), atol=2e-3, rtol=2e-3)  # rms*sqrt(16) = L2
    # images (N, C, H, W) work the same, and the answer has their shape
    images = x.view(8, 1, 4, 4)
    res4 = minimal_adversarial_lbfgs(nn.Sequential(nn.Flatten(), model), images, target, max_iter=50, bisection_steps=6)
    assert res4.adversarial.shape == images.shape
    torch.testing.assert_close(res4.distortion, res.distortion, atol=1e-5, rtol=0)


def test_any_target_picks_the_easiest_wrong_class(softmax, digits):
    x, y, other = attack_batch(softmax, digits, n=3, seed=3)
    res = minimal_adversarial_any_target(softmax, x, y, max_iter=30, bisection_steps=2)
    check_attack(softmax, x, res)
    assert res.success.all() and (res.target != y).all()
    # a run towards the chosen targets gives the same distortion; any other target no less
    chosen = minimal_adversarial_lbfgs(softmax, x, res.target, max_iter=30, bisection_steps=2)
    torch.testing.assert_close(chosen.distortion, res.distortion, atol=1e-3, rtol=0)  # other batch
    other = torch.where(other == res.target, (other + 1) % 10, other)
    other = torch.where(other == y, (other + 1) % 10, other)
    assert (other != y).all() and (other != res.target).all()
    one = minimal_adversarial_lbfgs(softmax, x, other, max_iter=30, bisection_steps=2)
    assert (res.distortion <= one.distortion + 1e-4).all()


def test_attack_input_errors(mlp):
    x = torch.rand(2, 64)
    with pytest.raises(ValueError, match="pixels in \\[0, 1\\]"):
        minimal_adversarial_lbfgs(mlp, x * 2, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="target must be 2 integer class labels"):
        minimal_adversarial_lbfgs(mlp, x, torch.tensor([0]))
    with pytest.raises(ValueError, match="target must be in \\[0, 10\\)"):
        iterative_gradient_attack(mlp, x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        minimal_adversarial_lbfgs(mlp, x, torch.tensor([0, 1]), temperature=0.0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        minimal_adversarial_lbfgs(mlp, x, torch.tensor([0, 1]), c_grid=(1.0, 2.0))
    assert DEFAULT_C_GRID[0] > DEFAULT_C_GRID[-1]


# --------------------------------------------------------------------------- transfer


class Constant(nn.Module):
    """Predicts one class for every input."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), self.label), 3).float()


class Threshold(nn.Module):
    """Class 1 if the first pixel exceeds 0.5, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (x.flatten(1)[:, 0] > 0.5).float()
        return torch.stack([1 - p, p, torch.zeros_like(p)], dim=1)


def test_cross_model_error_matrix_hand_case():
    models = {"zero": Constant(0), "thr": Threshold()}
    made_for_zero = torch.tensor([[0.9, 0.0], [0.1, 0.0], [0.7, 0.0], [0.2, 0.0]])
    made_for_thr = torch.tensor([[0.6, 0.0], [0.6, 0.0]])
    noise = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    labels = {"zero": torch.tensor([1, 1, 0, 0]), "thr": torch.tensor([0, 0]), "noise 0.1": torch.tensor([0, 2])}
    m = cross_model_error_matrix(models, {"zero": made_for_zero, "thr": made_for_thr, "noise 0.1": noise}, labels)
    assert m.rows == ("zero", "thr", "noise 0.1") and m.columns == ("zero", "thr")
    # zero: predicts 0 -> wrong on labels 1,1 -> 2/4; thr predicts 1,0,1,0 vs 1,1,0,0 -> 2/4
    # thr set: zero predicts 0 = label -> 0; thr predicts 1,1 vs 0,0 -> 1
    # noise: zero predicts 0,0 vs 0,2 -> 1/2; thr predicts 0,1 vs 0,2 -> 1/2
    np.testing.assert_allclose(m.error, [[0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])
    assert m.as_dict()["thr"] == {"zero": 0.0, "thr": 1.0}
    shared = cross_model_error_matrix(models, {"a": made_for_thr}, torch.tensor([0, 1]))
    np.testing.assert_allclose(shared.error, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="labels has no entry for example set 'b'"):
        cross_model_error_matrix(models, {"b": noise}, {"a": torch.tensor([0, 0])})


def test_train_zoo_model_autoencoder_freezes_the_code(digits):
    x, y = digits["x_train"][:400], digits["y_train"][:400]
    import nnprobe.szegedy as sz

    small = sz.ZooEntry(
        lambda num_inputs, num_classes, generator: ae400_10(24, num_inputs, num_classes, generator), 1e-6, "tiny AE"
    )
    sz.ZOO["tiny-AE"] = small
    try:
        reference = build_zoo_model("tiny-AE", 64, 10, torch.Generator().manual_seed(0))
        model = train_zoo_model("tiny-AE", x, y, epochs=3, ae_epochs=3, batch_size=50, lr=1e-2, seed=0)
        frozen = train_zoo_model("tiny-AE", x, y, epochs=1, ae_epochs=3, batch_size=50, lr=1e-2, seed=0)
    finally:
        del sz.ZOO["tiny-AE"]
    assert not torch.equal(model.encoder.weight, reference.encoder.weight)  # pre-trained
    # classifier stage leaves the encoder as pre-training left it (same seed, same pre-training)
    assert torch.equal(model.encoder.weight, frozen.encoder.weight)
    assert not torch.equal(model.classifier.weight, frozen.classifier.weight)
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- units


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


# --------------------------------------------------------------------------- workflow helpers


def test_dropout_acts_in_training_only_and_only_on_sigmoid_networks(digits):
    from nnprobe.szegedy import build_zoo_model

    x = digits["x_test"][:32]
    model = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(0), dropout=(0.2, 0.5))
    plain = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), plain.eval()(x))  # same weights, no dropout in eval
        model.train()
        torch.manual_seed(0)
        a = model(x)
        b = model(x)
    assert not torch.allclose(a, b)  # dropout masks differ between calls in training
    assert all(torch.equal(h, g) for h, g in zip(model.hidden(x), plain.hidden(x)))  # hidden(): no dropout
    with pytest.raises(ValueError, match="sigmoid networks"):
        build_zoo_model("FC10(1)", 64, 10, dropout=(0.2, 0.5))
    with pytest.raises(ValueError, match="drop probability"):
        build_zoo_model("FC100-100-10", 64, 10, dropout=(0.2, 1.0))


def test_zoo_slug_matches_the_rules_and_is_unique():
    import re as re_

    from nnprobe.szegedy import zoo_slug

    rules = (REPO / "rules" / "common.smk").read_text()
    pattern = re_.search(r're\.sub\((r"[^"]+"), "_", name\.lower\(\)\)\.strip\("_"\)', rules)
    assert pattern, "rules/common.smk no longer defines zoo_slug like nnprobe.szegedy.zoo_slug"
    import inspect

    assert pattern.group(1) in inspect.getsource(zoo_slug), "the rules and the package slug zoo names differently"
    slugs = {zoo_slug(name) for name in ZOO}
    assert len(slugs) == len(ZOO)
    assert zoo_slug("FC10(1e-4)") == "fc10_1e-4" and zoo_slug("AE400-10") == "ae400-10"
    assert all(re_.fullmatch(r"[a-z0-9._-]+", s) for s in slugs)


def test_schema_lists_exactly_the_zoo():
    import yaml

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    adv = schema["properties"]["adversarial"]["properties"]
    assert set(adv["models"]["items"]["enum"]) == set(ZOO)
    assert set(adv["models"]["default"]) <= set(ZOO)


def test_halving_c_grid_and_attacked_subset():
    from nnprobe.szegedy import attacked_subset, halving_c_grid

    assert halving_c_grid(64, 2**-12) == DEFAULT_C_GRID
    assert halving_c_grid(1.0, 0.3) == (1.0, 0.5)
    with pytest.raises(ValueError):
        halving_c_grid(0.1, 1.0)
    a = attacked_subset(100, 10, seed=3)
    assert a.dtype == np.int64 and len(np.unique(a)) == 10 and np.all(np.diff(a) > 0) and a.max() < 100
    assert np.array_equal(a, attacked_subset(100, 10, seed=3))
    assert not np.array_equal(a, attacked_subset(100, 10, seed=4))
    assert np.array_equal(attacked_subset(5, 10, seed=0), np.arange(5))


def test_save_load_zoo_model_round_trip(tmp_path, mlp, digits):
    from nnprobe.szegedy import error_rate, load_zoo_model, save_zoo_model, unit_pixels

    model = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(5))
    save_zoo_model(model, tmp_path / "m.safetensors")
    back = load_zoo_model("FC100-100-10", tmp_path / "m.safetensors", 64, 10)
    x = digits["x_test"]
    torch.testing.assert_close(back(x), model.eval()(x))
    with pytest.raises(ValueError, match="does not hold the weights"):
        load_zoo_model("FC200-200-10", tmp_path / "m.safetensors", 64, 10)
    err = error_rate(mlp, x, digits["y_test"], batch_size=7)
    assert err == pytest.approx(1 - accuracy(mlp, x, digits["y_test"]))
    pixels = unit_pixels(np.array([[[[0, 255]]]], dtype=np.uint8))
    assert pixels.dtype == torch.float32 and pixels.flatten().tolist() == [0.0, 1.0]
    with pytest.raises(TypeError, match="uint8"):
        unit_pixels(np.zeros((1, 1, 2, 2)))


def test_adversarial_pool_holds_true_labels_and_adversarial_examples(digits):
    from nnprobe.szegedy import train_with_adversarial_pool

    x, y = digits["x_train"][:400], digits["y_train"][:400]
    attack = {"c_grid": (1.0, 0.25, 0.0625), "max_iter": 20, "bisection_steps": 0, "refine_steps": 0}

    def run():
        model = fc_sigmoid((32,), num_inputs=64, generator=torch.Generator().manual_seed(1))
        history, pool = train_with_adversarial_pool(
            model, x, y, (1e-5, 1e-6), epochs=3, pool_size=40, refresh_every=5, refresh_size=16,
            batch_size=50, lr=1e-2, seed=7, attack=attack,
        )
        return model, history, pool

    model, history, pool = run()
    # 3 epochs x 8 steps, refreshed at steps 0, 5, ..., 20: 5 refreshes of 16 images.
    assert 0 < pool.generated and pool.generated + pool.failed <= 5 * 16
    assert len(pool) == min(40, pool.generated) and len(pool.distortions) == pool.generated
    assert pool.images.min() >= 0 and pool.images.max() <= 1
    # Every pool example carries the true label of the training image it was made from, and
    # was adversarial when made: it differs from its source by a small perturbation.
    assert torch.equal(y[pool.sources], pool.labels)
    d = rms_distortion(pool.images, x[pool.sources])
    assert (d > 0).all() and (d < 0.3).all()
    assert history[-1] < history[0]
    model2, history2, pool2 = run()  # seeded: the same pool and weights again
    assert history2 == history and torch.equal(pool2.sources, pool.sources)
    with pytest.raises(ValueError, match="pool_fraction"):
        train_with_adversarial_pool(model, x, y, 0.0, epochs=1, pool_size=1, refresh_every=1, refresh_size=1, pool_fraction=0)
