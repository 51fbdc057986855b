"""The visualize study (nnprobe.studies.visualize): its training recipe through the engine (natural,
PGD adversarial, top-down), BadNets poisoning and the class-wise patterns that find a planted trigger.
CPU, well under a minute.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnprobe.core.weights import save_weights
from nnprobe.engines.evaluation import accuracy, to_unit
from nnprobe.engines.pgd import PGD
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models import load_model
from nnprobe.models.topdown import Normalized, TopDownNet, standard_cnn, topdown_net
from nnprobe.studies.visualize.backdoor import add_trigger, badnets_poison, trigger_region, trigger_success
from nnprobe.studies.visualize.patterns import (
    choose_canvases,
    class_patterns,
    paste,
    predictive_power,
    region_overlap,
    top_k_mask,
)
from nnprobe.studies.visualize.training import VisualizeTask

TRIGGER_SIZE, TRIGGER_MARGIN, TARGET = 2, 1, 0


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _tiny(channels: int = 1, width: int = 8, seed: int = 0) -> Normalized:
    return Normalized(standard_cnn(channels, 10, width, torch.Generator().manual_seed(seed)), [0.3] * channels, [0.4] * channels)


def train_classifier(model: nn.Module, images, labels, *, epochs: int, batch_size: int, lr: float, seed: int,
                     adversarial: PGD | None = None) -> list[dict]:
    """Train ``model`` in place with the study's recipe (VisualizeTask, no weight decay, no flips)."""
    task = VisualizeTask(model, images, labels, batch_size=batch_size, lr=lr, weight_decay=0.0, seed=seed,
                         adversarial=adversarial)
    return fit(task, TrainOptions(epochs=epochs, device="cpu", progress=False))


@pytest.fixture(scope="module")
def natural(digit_images):
    torch.manual_seed(0)
    model = _tiny(width=8)
    x, y = digit_images["train"]
    train_classifier(model, x, y, epochs=6, batch_size=64, lr=5e-3, seed=1)
    return model


@pytest.fixture(scope="module")
def backdoored(digit_images):
    x, y = digit_images["train"]
    xp, yp, poisoned = badnets_poison(x, y, fraction=0.1, target=TARGET, size=TRIGGER_SIZE, margin=TRIGGER_MARGIN, seed=3)
    model = _tiny(width=8, seed=1)
    train_classifier(model, xp, yp, epochs=6, batch_size=64, lr=5e-3, seed=2)
    return model, xp, yp, poisoned


# --------------------------------------------------------------------------- the recipe


def test_training_step_lowers_the_loss_and_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 2, (64,))
    model = Normalized(topdown_net(1, 2, 4, torch.Generator().manual_seed(0)), [0.5], [0.3])
    history = train_classifier(model, x, y, epochs=15, batch_size=16, lr=1e-2, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    # the weights file as rule visualize_train writes it
    arch = {"name": "topdown_net", "in_channels": 1, "num_classes": 2, "width": 4, "input": {"mean": [0.5], "std": [0.3]}}
    path = save_weights(tmp_path / "w.safetensors", model.state_dict(), architecture=arch, config={"classes": ["a", "b"]})
    loaded, weights = load_model(path)
    assert isinstance(loaded, Normalized) and isinstance(loaded.net, TopDownNet)
    assert weights.architecture["name"] == "topdown_net" and weights.config["classes"] == ["a", "b"]
    xf = to_unit(x[:4])
    torch.testing.assert_close(loaded(xf), model(xf))


def test_adversarial_training_runs_on_pgd_examples(digit_images):
    x, y = digit_images["train"]
    model = _tiny(width=4, seed=2)
    history = train_classifier(model, x[:256], y[:256], epochs=2, batch_size=64, lr=3e-3, seed=0,
                               adversarial=PGD(0.1, 2, 0.05))
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


def test_mask_search_finds_the_planted_trigger(backdoored, natural, digit_images):
    model, xp, yp, poisoned = backdoored
    x_test, y_test = digit_images["test"]
    assert accuracy(model, x_test, y_test) > 0.85
    assert trigger_success(model, x_test, y_test, TARGET, TRIGGER_SIZE, TRIGGER_MARGIN) > 0.8
    assert trigger_success(natural, x_test, y_test, TARGET, TRIGGER_SIZE, TRIGGER_MARGIN) < 0.2  # control
    canvases_idx = choose_canvases(model, xp, yp, 10)
    canvases = to_unit(xp[canvases_idx])
    x_train, y_train = digit_images["train"]
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
