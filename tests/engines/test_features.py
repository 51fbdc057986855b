"""Feature visualization (nnprobe.engines.features): regularizers, image parameterizations,
activation maximization, caricatures and inversion, on a tiny CNN trained on the 8x8 digits.
CPU, well under a minute.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.engines.classifier import ClassifierTask
from nnprobe.engines.evaluation import to_unit
from nnprobe.engines.features import (
    ImageParam,
    Regularizers,
    activation_maximization,
    alpha_norm,
    caricature,
    colour_matrix,
    gaussian_blur,
    invert,
    layer_objective,
    random_transform,
    total_variation,
)
from nnprobe.engines.training import OptimizerSpec, TrainOptions, fit
from nnprobe.models.topdown import Normalized, standard_cnn


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _tiny(channels: int = 1, width: int = 8, seed: int = 0) -> Normalized:
    return Normalized(standard_cnn(channels, 10, width, torch.Generator().manual_seed(seed)), [0.3] * channels, [0.4] * channels)


def train_classifier(model: nn.Module, images, labels, *, epochs: int, batch_size: int, lr: float, seed: int) -> list[dict]:
    """The visualize study's recipe without its extras (Adam, cosine schedule to 0, no weight decay,
    no flips, no PGD), as a plain engine task: what VisualizeTask trains with those off."""
    task = ClassifierTask(model, images, labels, batch_size=batch_size, order_seed=seed,
                          optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8), schedule="cosine")
    return fit(task, TrainOptions(epochs=epochs, device="cpu", progress=False))


@pytest.fixture(scope="module")
def natural(digit_images):
    torch.manual_seed(0)
    model = _tiny(width=8)
    x, y = digit_images["train"]
    train_classifier(model, x, y, epochs=6, batch_size=64, lr=5e-3, seed=1)
    return model


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


def test_caricature_amplifies_each_layer_and_inversion_matches_representations(natural, digit_images):
    x = to_unit(digit_images["test"][0][:3])
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
