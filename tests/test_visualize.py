"""The visualize study's package: feature visualization, class-wise patterns, BadNets, PGD and the
top-down network (nnprobe.visualize, nnprobe.patterns, nnprobe.topdown). CPU, well under a minute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.data import load_sklearn_digits
from nnprobe.models import count_parameters
from nnprobe.patterns import (
    PGD,
    accuracy,
    add_trigger,
    badnets_poison,
    choose_canvases,
    class_patterns,
    paste,
    pgd_attack,
    predictive_power,
    region_overlap,
    robust_accuracy,
    to_unit,
    top_k_mask,
    train_classifier,
    trigger_region,
    trigger_success,
)
from nnprobe.topdown import Normalized, StandardCNN, TopDownNet, load_model, standard_cnn, topdown_net
from nnprobe.visualize import (
    ImageParam,
    Regularizers,
    activation_maximization,
    alpha_norm,
    capture,
    caricature,
    colour_matrix,
    gaussian_blur,
    invert,
    layer_objective,
    random_transform,
    total_variation,
)

TRIGGER_SIZE, TRIGGER_MARGIN, TARGET = 2, 1, 0


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: one intra-op thread is fastest, and far faster than two on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    splits, _ = load_sklearn_digits(test_fraction=0.25, seed=0)
    return {k: (torch.from_numpy(s.images), torch.from_numpy(s.labels)) for k, s in splits.items()}


def _tiny(channels: int = 1, width: int = 8, seed: int = 0) -> Normalized:
    return Normalized(standard_cnn(channels, 10, width, torch.Generator().manual_seed(seed)), [0.3] * channels, [0.4] * channels)


@pytest.fixture(scope="module")
def natural(digits):
    torch.manual_seed(0)
    model = _tiny(width=8)
    x, y = digits["train"]
    train_classifier(model, x, y, epochs=6, batch_size=64, lr=5e-3, seed=1, progress=False)
    return model


@pytest.fixture(scope="module")
def backdoored(digits):
    x, y = digits["train"]
    xp, yp, poisoned = badnets_poison(x, y, fraction=0.1, target=TARGET, size=TRIGGER_SIZE, margin=TRIGGER_MARGIN, seed=3)
    model = _tiny(width=8, seed=1)
    train_classifier(model, xp, yp, epochs=6, batch_size=64, lr=5e-3, seed=2, progress=False)
    return model, xp, yp, poisoned


# --------------------------------------------------------------------------- top-down network


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 32), (3, 12)])
def test_topdown_and_standard_shapes_and_sizes(channels, size):
    x = torch.rand(2, channels, size, size)
    for cls in (StandardCNN, TopDownNet):
        net = cls(channels, 10, 8)
        assert net(x).shape == (2, 10)
    # Same widths in reverse order: parameter counts within 10% of each other.
    a, b = count_parameters(standard_cnn(channels, 10, 16)), count_parameters(topdown_net(channels, 10, 16))
    assert 0.9 < a / b < 1.1, (a, b)
    assert count_parameters(standard_cnn(3, 10, 32)) == 288_298


def test_topdown_sees_the_coarse_image_first():
    net = TopDownNet(1, 10, 4)
    assert TopDownNet.scales(32, 32) == [(8, 8), (16, 16), (32, 32)]
    seen = {}
    with capture(Normalized(net, [0.0], [1.0]), ["net.stage1", "net.stage2", "net.stage3"]) as acts:
        net_out = Normalized(net, [0.0], [1.0])(torch.rand(1, 1, 32, 32))
        seen = {k: v.shape[-1] for k, v in acts.items()}
    assert net_out.shape == (1, 10)
    assert seen == {"net.stage1": 8, "net.stage2": 16, "net.stage3": 32}
    with pytest.raises(ValueError, match="at least 4x4"):
        TopDownNet.scales(3, 8)


def test_training_step_lowers_the_loss_and_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 2, (64,))
    model = Normalized(topdown_net(1, 2, 4, torch.Generator().manual_seed(0)), [0.5], [0.3])
    history = train_classifier(model, x, y, epochs=15, batch_size=16, lr=1e-2, seed=0, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    import json

    import safetensors.torch

    path = tmp_path / "w.safetensors"
    arch = {"name": "topdown", "in_channels": 1, "num_classes": 2, "width": 4, "mean": [0.5], "std": [0.3], "classes": ["a", "b"]}
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
                                {"architecture": json.dumps(arch)})
    loaded, meta = load_model(path)
    assert meta["architecture"]["name"] == "topdown"
    xf = to_unit(x[:4])
    torch.testing.assert_close(loaded(xf), model(xf))


# --------------------------------------------------------------------------- regularizers


def test_total_variation_and_alpha_norm():
    assert total_variation(torch.full((2, 3, 8, 8), 0.7)).item() == 0.0
    ramp = torch.arange(8.0).repeat(8, 1).view(1, 1, 8, 8)  # +1 per column
    assert total_variation(ramp).item() == pytest.approx(7 * 7 / 64)
    assert total_variation(torch.rand(1, 1, 8, 8)) > 0
    assert alpha_norm(torch.full((1, 1, 4, 4), 0.5)).item() == 0.0
    assert alpha_norm(torch.ones(1, 1, 4, 4), alpha=2).item() == pytest.approx(0.25)


@pytest.mark.parametrize("fourier,channels,size", [(True, 3, 8), (True, 1, 7), (False, 3, 8)])
def test_image_parameterization_round_trip(fourier, channels, size):
    rng = np.random.default_rng(0)
    colour = colour_matrix(rng.integers(0, 256, (50, channels, 4, 4), dtype=np.uint8)) if channels == 3 else None
    param = ImageParam((2, channels, size, size), fourier=fourier, colour=colour)
    x = param()
    assert x.shape == (2, channels, size, size) and 0 <= x.min() and x.max() <= 1
    if fourier:
        assert param.raw.shape == (2, channels, size, size // 2 + 1, 2)
    target = torch.rand(2, channels, size, size) * 0.9 + 0.05
    torch.testing.assert_close(param.from_images(target)(), target, atol=1e-4, rtol=1e-4)


def test_colour_matrix_decorrelates():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (200, 1, 6, 6))
    images = np.concatenate([base, base // 2 + 60, 255 - base], axis=1).astype(np.uint8)  # correlated channels
    m = colour_matrix(images)
    assert m.shape == (3, 3) and np.linalg.norm(m, axis=0).max() == pytest.approx(1.0)
    assert colour_matrix(images[:, :1]).tolist() == [[1.0]]


def test_blur_smooths_in_both_bases_and_transforms_keep_shape():
    x = torch.rand(2, 3, 16, 16)
    assert total_variation(gaussian_blur(x, 1.0)) < total_variation(x)
    torch.testing.assert_close(gaussian_blur(torch.full((1, 1, 8, 8), 0.3), 1.0), torch.full((1, 1, 8, 8), 0.3))
    for fourier in (True, False):
        param = ImageParam((1, 1, 16, 16), fourier=fourier, colour=None, init_std=1.0, generator=torch.Generator().manual_seed(0))
        before = total_variation(param.decorrelated().detach())
        param.blur_(1.0)
        assert total_variation(param.decorrelated().detach()) < before
    out = random_transform(x, jitter=2, scale=0.1, rotate=10, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert random_transform(x, 0, 0.0, 0.0) is x


# --------------------------------------------------------------------------- feature visualization


@pytest.mark.parametrize("fourier", [True, False])
def test_activation_maximization_raises_every_target_logit(natural, fourier):
    reg = Regularizers(jitter=1, scale=0.05, rotate=5, blur_sigma=0.5, blur_every=5, tv=0.01, fourier=fourier, decorrelate=fourier)
    start = ImageParam((10 * 2, 1, 8, 8), fourier=fourier, colour=None, generator=torch.Generator().manual_seed(1))()
    with torch.no_grad():
        before = natural(start).view(10, 2, 10)
    images, logits, history = activation_maximization(natural, 10, (1, 8, 8), seeds=2, steps=60, lr=0.1, reg=reg, seed=1)
    assert images.shape == (10, 2, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    idx = torch.arange(10)
    target_after, target_before = logits[idx, :, idx], before[idx, :, idx]
    assert (target_after > target_before + 1).all()
    # Each image's own class wins: the objective is class-specific.
    assert (logits.argmax(-1) == idx.view(-1, 1)).float().mean() > 0.8
    assert history[-1] > history[0]


def test_caricature_amplifies_each_layer_and_inversion_matches_representations(natural, digits):
    x = to_unit(digits["test"][0][:3])
    layers = list(natural.layers)
    reg = Regularizers(jitter=1, scale=0.0, rotate=0.0, tv=0.0, fourier=False, decorrelate=False)
    car, objective = caricature(natural, x, layers, target="layer", channel=0, steps=20, lr=0.05, reg=reg, seed=0)
    assert car.shape == (3, 3, 1, 8, 8)
    assert (objective[1] > objective[0]).all()
    inv, error = invert(natural, x, layers, steps=150, lr=0.1, reg=reg, seed=0, alpha_weight=0.1, tv_weight=0.1)
    assert inv.shape == (3, 3, 1, 8, 8)
    # Random images are far from the reference representation (relative error ~1); inversions are close.
    assert (error < 0.5).all(), error
    with pytest.raises(ValueError, match="not a submodule"):
        invert(natural, x, ["net.nope"], steps=1, lr=0.1, reg=reg, seed=0)


def test_layer_objective_targets():
    acts = torch.zeros(2, 3, 5, 5)
    acts[0, 1, 2, 2] = 4.0
    assert layer_objective(acts, "unit", 1).tolist() == [4.0, 0.0]
    assert layer_objective(acts, "channel", 1)[0].item() == pytest.approx(4 / 25)
    assert layer_objective(acts, "layer")[0].item() == pytest.approx(16 / 75)
    assert layer_objective(torch.ones(2, 6), "unit", 5).tolist() == [1.0, 1.0]  # dense layers
    with pytest.raises(ValueError, match="channel 9"):
        layer_objective(acts, "channel", 9)


# --------------------------------------------------------------------------- PGD


def test_pgd_stays_in_the_ball_and_the_box_and_lowers_accuracy(natural, digits):
    x_u8, y = digits["test"]
    x = to_unit(x_u8[:200])
    y = y[:200]
    natural.zero_grad(set_to_none=True)
    attack = PGD(epsilon=0.1, steps=10, step_size=0.03)
    adv = pgd_attack(natural, x, y, attack, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert not torch.equal(adv, x)
    assert all(p.grad is None and p.requires_grad for p in natural.parameters())
    clean = accuracy(natural, x_u8[:200], y)
    robust = robust_accuracy(natural, x_u8[:200], y, PGD.madry(0.2, 10), seed=0)
    assert clean > 0.85 and robust < clean - 0.3, (clean, robust)
    torch.testing.assert_close(pgd_attack(natural, x, y, PGD(0.0, 1, 1.0)), x)
    with pytest.raises(ValueError, match="epsilon"):
        PGD(2.0, 1, 0.1)


def test_adversarial_training_runs_on_pgd_examples(digits):
    x, y = digits["train"]
    model = _tiny(width=4, seed=2)
    history = train_classifier(model, x[:256], y[:256], epochs=2, batch_size=64, lr=3e-3, seed=0,
                               adversarial=PGD(0.1, 2, 0.05), progress=False)
    assert len(history) == 2 and math.isfinite(history[-1]["loss"])


# --------------------------------------------------------------------------- BadNets and class-wise patterns


def test_badnets_poisoning():
    x = torch.zeros(100, 1, 8, 8, dtype=torch.uint8)
    y = torch.arange(100) % 10
    xp, yp, poisoned = badnets_poison(x, y, fraction=0.2, target=3, size=2, margin=1, seed=0)
    assert poisoned.sum() == 20 and (y[poisoned] != 3).all() and (yp[poisoned] == 3).all()
    assert (xp[poisoned][..., 5:7, 5:7] == 255).all() and xp[poisoned].sum() == 20 * 4 * 255
    assert (xp[~poisoned] == 0).all() and torch.equal(yp[~poisoned], y[~poisoned])
    assert trigger_region(8, 8, 2, 1) == (slice(5, 7), slice(5, 7))
    assert add_trigger(torch.zeros(1, 3, 4, 4), 1, 0)[0, :, 3, 3].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="does not fit"):
        trigger_region(8, 8, 8, 1)


def test_top_k_mask_and_region_overlap():
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, 0, 5:7, 5:7] = 1.0
    mask[1, 0, 0, :4] = 1.0
    binary = top_k_mask(mask + 0.01 * torch.rand_like(mask), 0.05)  # ceil(0.05 * 64) = 4 pixels
    assert binary.flatten(1).sum(1).tolist() == [4.0, 4.0]
    precision, recall = region_overlap(binary, slice(5, 7), slice(5, 7))
    assert precision.tolist() == [1.0, 0.0] and recall.tolist() == [1.0, 0.0]
    torch.testing.assert_close(paste(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])),
                               torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))


def test_mask_search_finds_the_planted_trigger(backdoored, natural, digits):
    model, xp, yp, poisoned = backdoored
    x_test, y_test = digits["test"]
    assert accuracy(model, x_test, y_test) > 0.85
    assert trigger_success(model, x_test, y_test, TARGET, TRIGGER_SIZE, TRIGGER_MARGIN) > 0.8
    assert trigger_success(natural, x_test, y_test, TARGET, TRIGGER_SIZE, TRIGGER_MARGIN) < 0.2  # control
    canvases_idx = choose_canvases(model, xp, yp, 10)
    canvases = to_unit(xp[canvases_idx])
    x_train, y_train = digits["train"]
    clean = torch.nonzero(~poisoned).flatten()[:600]
    masks, history = class_patterns(model, canvases, x_train[clean], y_train[clean], steps=120, lr=0.1, l1=1.0,
                                    batch_size=24, seed=0)
    assert masks.shape == (10, 1, 8, 8) and history[-1]["mask_mean"] < history[0]["mask_mean"]
    binary = top_k_mask(masks, 0.05)
    rows, cols = trigger_region(8, 8, TRIGGER_SIZE, TRIGGER_MARGIN)
    precision, recall = region_overlap(binary, rows, cols)
    # The target class's pattern sits on the trigger; the other classes' patterns mostly do not.
    assert precision[TARGET] >= 0.75, (precision, binary[TARGET, 0])
    others = torch.arange(10) != TARGET
    assert precision[others].mean() < 0.5, precision
    power = predictive_power(model, canvases, binary, x_test, y_test)
    assert power[TARGET] > 0.8 and power[TARGET] == power.max()
