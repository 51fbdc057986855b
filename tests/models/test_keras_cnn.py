"""The Keras tutorial CNN: architecture, shapes, Keras (Glorot-uniform) initialisation, seeding."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnprobe.core.checks import KERAS_CNN_MIN_SIDE
from nnprobe.models import count_parameters
from nnprobe.models.init import glorot_init_
from nnprobe.models.keras_cnn import KerasCNN, keras_cnn, keras_cnn_min_size


def seeded(seed: int, **kwargs) -> KerasCNN:
    return keras_cnn(generator=torch.Generator().manual_seed(seed), **kwargs)


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def test_parameter_count_of_the_tutorial_cnn():
    model = keras_cnn(in_channels=3, num_classes=10, input_size=32, padding=0)
    # conv 3->32: 896, conv 32->64: 18,496, conv 64->64: 36,928, dense 1024->64: 65,600,
    # dense 64->10: 650 (Keras's model.summary() of the TensorFlow CIFAR-10 tutorial)
    per_layer = {name: count_parameters(m) for name, m in weighted_layers(model).items()}
    assert per_layer == {"conv1": 896, "conv2": 18_496, "conv3": 36_928, "fc1": 65_600, "fc2": 650}
    assert count_parameters(model) == 122_570


def test_shapes_valid_32x32():
    model = keras_cnn(3, 10, 32, padding=0)
    assert model.fc1.in_features == 64 * 4 * 4  # 32 -> 30 -> 15 -> 13 -> 6 -> 4
    x = torch.rand(5, 3, 32, 32)
    assert model(x).shape == (5, 10)
    assert model.penultimate(x).shape == (5, 64)


def test_shapes_same_8x8_digits():
    model = keras_cnn(1, 10, 8, padding=1)
    assert model.fc1.in_features == 64 * 2 * 2  # 8 -> 8 -> 4 -> 4 -> 2 -> 2
    x = torch.rand(7, 1, 8, 8)
    assert model(x).shape == (7, 10)
    assert model.penultimate(x).shape == (7, 64)
    assert keras_cnn(1, 3, 8, padding=1)(x).shape == (7, 3)


def test_glorot_uniform_init():
    model = seeded(0)
    for name, layer in weighted_layers(model).items():
        w = layer.weight.detach().double()
        receptive = w[0, 0].numel() if w.dim() == 4 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert w.abs().max() <= bound, name
        assert w.abs().max() > 0.95 * bound, name  # the whole interval is used
        # Var U(-b, b) = b^2 / 3 = 2 / (fan_in + fan_out); the sample variance of >= 640
        # weights is within ~4% of it (one standard error), 15% is > 4 standard errors.
        assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.15), name
        assert abs(w.mean().item()) < 0.1 * bound, name
        assert torch.count_nonzero(layer.bias) == 0, name


def test_glorot_init_resets_an_existing_module():
    model = KerasCNN()
    nn.init.constant_(model.fc2.bias, 1.0)
    glorot_init_(model, torch.Generator().manual_seed(0))
    assert torch.count_nonzero(model.fc2.bias) == 0
    for name, value in seeded(0).state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)


def test_same_seed_same_weights_different_seed_different_weights():
    a, b, c = seeded(7).state_dict(), seeded(7).state_dict(), seeded(8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
        if name.endswith("weight"):
            assert not torch.equal(a[name], c[name]), name


def test_generator_not_global_rng():
    torch.manual_seed(1)
    first = seeded(3).conv1.weight.detach().clone()
    torch.manual_seed(2)
    assert torch.equal(seeded(3).conv1.weight, first)


@pytest.mark.parametrize("size", [8, 16, 17, (17, 40), (40, 17)])
def test_too_small_for_valid_padding(size):
    h, w = (size, size) if isinstance(size, int) else size
    with pytest.raises(ValueError, match=f"images of {h}x{w} pixels are too small") as err:
        keras_cnn(3, 10, size, padding=0)
    assert "model.padding" in str(err.value) and "18x18" in str(err.value)


@pytest.mark.parametrize(("size", "padding"), [((20, 28), 0), ((28, 20), 0), ((5, 9), 1), ((4, 4), 1)])
def test_images_need_not_be_square(size, padding):
    model = keras_cnn(3, 7, size, padding=padding)
    assert model(torch.rand(2, 3, *size)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        keras_cnn(3, 7, (3, 9), padding=1)


def test_smallest_side_is_what_the_data_check_expects():
    """nnprobe.core.checks (torch-free) checks the data against these two numbers."""
    assert keras_cnn_min_size(0) == KERAS_CNN_MIN_SIDE["valid"] == 18
    assert keras_cnn_min_size(1) == KERAS_CNN_MIN_SIDE["same"] == 4


def test_smallest_valid_input_and_bad_padding():
    model = keras_cnn(3, 10, 18, padding=0)  # 18 -> 16 -> 8 -> 6 -> 3 -> 1
    assert model.fc1.in_features == 64
    assert model(torch.rand(2, 3, 18, 18)).shape == (2, 10)
    with pytest.raises(ValueError, match="padding must be 0"):
        KerasCNN(padding=2)
