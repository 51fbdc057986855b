"""The noise study's ResNet recipe (nnprobe.studies.noise.training) trained through the engine:
its schedule, augmentation, a few CPU steps, reproducibility and the config keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nnprobe.engines.evaluation import embed
from nnprobe.engines.training import TrainOptions, fit, one_cycle
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.studies.noise.training import ResNetTask, TrainConfig, augment_batch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ResNets: one intra-op thread is faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_resnet(model, images, labels, mean, std, config: TrainConfig, seed: int) -> list[dict]:
    """Train ``model`` in place with the recipe on the CPU, as rule noise_train does."""
    task = ResNetTask(model, images, labels, mean, std, config, seed)
    return fit(task, TrainOptions(epochs=config.epochs, device="cpu", precision=config.precision("cpu"), progress=False))


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
    config = TrainConfig(epochs=8, batch_size=16, lr=0.05, crop_padding=1, flip=False,
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
    config = TrainConfig(epochs=1, batch_size=8)
    runs = []
    for _ in range(2):
        model = resnet18_cifar(num_classes=3, in_channels=1, width=4, seed=5)
        runs.append((train_resnet(model, images, labels, [0.5], [0.25], config, seed=9), model))
    assert runs[0][0][0]["loss"] == runs[1][0][0]["loss"]
    for pa, pb in zip(runs[0][1].parameters(), runs[1][1].parameters()):
        assert torch.equal(pa, pb)


def test_schema_train_keys_are_the_recipe():
    """rule noise_train passes config noise.train to TrainConfig(**...): same keys, same defaults."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    train = schema["properties"]["noise"]["properties"]["train"]["properties"]
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert set(train) == set(fields)
    for key, spec in train.items():
        assert spec["default"] == fields[key], key
        assert spec.get("description"), key
