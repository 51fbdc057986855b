"""The minimal adversarial examples of Szegedy et al. (2013) by box-constrained L-BFGS
(nnprobe.engines.lbfgs), checked against the iterative-gradient baseline (nnprobe.engines.pgd).

The attack tests train tiny networks on scikit-learn's 8x8 digits (pixels scaled to [0, 1])
in a few hundred steps, with the zoo's recipe (mini-batch Adam plus the paper's weight decay);
the whole file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnprobe.engines.lbfgs import (
    DEFAULT_C_GRID,
    halving_c_grid,
    minimal_adversarial_any_target,
    minimal_adversarial_lbfgs,
    rms_distortion,
)
from nnprobe.engines.pgd import iterative_gradient_attack
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.szegedy import SigmoidMLP, SoftmaxRegression, fc10, fc_sigmoid
from nnprobe.studies.adversarial.training import ZooClassifierTask

# --------------------------------------------------------------------------- fixtures


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight_decay, *, epochs: int, batch_size: int, lr: float,
          seed: int) -> list[dict]:
    """Train ``model`` in place as the zoo trains (Adam on cross-entropy + layer-normalised weight decay)."""
    task = ZooClassifierTask(model, x, y, weight_decay=weight_decay, normalize="units", batch_size=batch_size, lr=lr,
                             order_seed=seed)
    return fit(task, TrainOptions(epochs=epochs, device="cpu", progress=False))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def mlp(digit_vector_split) -> SigmoidMLP:
    torch.manual_seed(0)
    model = fc_sigmoid((32,), num_inputs=64, generator=torch.Generator().manual_seed(1))
    train(model, digit_vector_split["x_train"], digit_vector_split["y_train"], (1e-5, 1e-6), epochs=25, batch_size=64, lr=1e-2, seed=2)
    return model


@pytest.fixture(scope="module")
def softmax(digit_vector_split) -> SoftmaxRegression:
    model = fc10(num_inputs=64, generator=torch.Generator().manual_seed(3))
    train(model, digit_vector_split["x_train"], digit_vector_split["y_train"], 1e-4, epochs=20, batch_size=64, lr=1e-2, seed=4)
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def attack_batch(model: nn.Module, digit_vector_split, n: int = 24, seed: int = 0):
    """The first n correctly classified test digits and a random wrong target for each."""
    x, y = digit_vector_split["x_test"], digit_vector_split["y_test"]
    with torch.no_grad():
        right = torch.nonzero(model(x).argmax(1) == y).flatten()[:n]
    g = torch.Generator().manual_seed(seed)
    target = (y[right] + torch.randint(1, 10, (right.numel(),), generator=g)) % 10
    return x[right], y[right], target


# --------------------------------------------------------------------------- distortion


def test_rms_distortion_hand_case():
    x = torch.zeros(2, 1, 2, 2)
    adv = x.clone()
    adv[0, 0, 0, 0] = 1.0  # one of 4 pixels changed by 1: sqrt(1/4) = 0.5
    adv[1] = 0.3  # every pixel by 0.3
    torch.testing.assert_close(rms_distortion(adv, x), torch.tensor([0.5, 0.3]))
    with pytest.raises(ValueError, match="same shape"):
        rms_distortion(adv[:1], x)


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
def test_lbfgs_is_minimal_against_the_gradient_baseline(which, request, digit_vector_split):
    model = request.getfixturevalue(which)
    assert accuracy(model, digit_vector_split["x_test"], digit_vector_split["y_test"]) > 0.9
    x, _, target = attack_batch(model, digit_vector_split, n=16)
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


def test_lbfgs_without_refinement_is_adversarial_and_minimal(mlp, digit_vector_split):
    x, _, target = attack_batch(mlp, digit_vector_split, n=12, seed=1)
    res = minimal_adversarial_lbfgs(mlp, x, target, max_iter=60, bisection_steps=6, refine_steps=0)
    base = iterative_gradient_attack(mlp, x, target, steps=400, step_size=0.05)
    check_attack(mlp, x, res)
    assert res.success.all()
    assert (res.distortion - base.distortion <= 1e-4).all()


def test_lbfgs_with_the_plain_cross_entropy_is_adversarial(mlp, digit_vector_split):
    """temperature=1 (the classifier's own loss) gives valid examples, no smaller than T = 0.1."""
    x, _, target = attack_batch(mlp, digit_vector_split, n=8, seed=4)
    plain = minimal_adversarial_lbfgs(mlp, x, target, max_iter=40, bisection_steps=4, temperature=1.0)
    sharp = minimal_adversarial_lbfgs(mlp, x, target, max_iter=40, bisection_steps=4)
    check_attack(mlp, x, plain)
    assert plain.success.all()
    assert float(sharp.distortion.mean()) <= float(plain.distortion.mean()) + 1e-4


def test_lbfgs_batches_do_not_change_the_answer(mlp, digit_vector_split):
    x, _, target = attack_batch(mlp, digit_vector_split, n=6, seed=2)
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


def test_any_target_picks_the_easiest_wrong_class(softmax, digit_vector_split):
    x, y, other = attack_batch(softmax, digit_vector_split, n=3, seed=3)
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


def test_halving_c_grid():
    assert halving_c_grid(64, 2**-12) == DEFAULT_C_GRID
    assert halving_c_grid(1.0, 0.3) == (1.0, 0.5)
    with pytest.raises(ValueError):
        halving_c_grid(0.1, 1.0)
