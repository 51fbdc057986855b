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
from nnprobe.engines.training import PRECISIONS, TrainOptions, fit, one_cycle
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.studies.noise.training import ResNetTask, TrainConfig, augment_batch, binary_subset

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def train_resnet(model, images, labels, mean, std, config: TrainConfig, seed: int) -> list[dict]:
    """Train ``model`` in place with the recipe on the CPU, as rule noise_train does."""
    task = ResNetTask(model, images, labels, mean, std, config, seed)
    return fit(task, TrainOptions(epochs=config.epochs, device="cpu", precision=config.precision, progress=False))


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
    assert train["precision"]["enum"] == list(PRECISIONS)  # the engine's vocabulary, as train.precision
    with pytest.raises(ValueError, match=r"noise\.train\.precision must be one of .*got 'bf16'"):
        TrainConfig(precision="bf16")


# --------------------------------------------------------------------------- two-class subsets


def test_binary_subset_keeps_the_named_classes_in_the_order_named():
    classes = ["cat", "dog", "fox", "owl"]
    labels = np.array([0, 1, 2, 3, 2, 1, 0, 2])
    images = np.broadcast_to(np.arange(8, dtype=np.uint8)[:, None, None, None], (8, 1, 2, 2)).copy()
    sub_images, sub_labels = binary_subset(images, labels, classes, ["fox", "cat"])
    assert sub_images[:, 0, 0, 0].tolist() == [0, 2, 4, 6, 7]  # the images keep their order
    assert sub_labels.tolist() == [1, 0, 0, 1, 0]  # fox -> 0, cat -> 1: output 0 is the first name
    assert sub_labels.dtype == np.int64 and sub_images.dtype == np.uint8
    _, swapped = binary_subset(images, labels, classes, ["cat", "fox"])
    assert swapped.tolist() == [0, 1, 1, 0, 1]


def test_binary_subset_refuses_unknown_class_names():
    labels = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"config key noise\.binary_classes names \['wolf'\], which the prepared data "
                                         r"does not have; its classes are \['cat', 'dog', 'fox'\]: pick two of them"):
        binary_subset(np.zeros((3, 1, 2, 2), np.uint8), labels, ("cat", "dog", "fox"), ["cat", "wolf"])


# --------------------------------------------------------------------------- the recipe's inputs

N_IMG, SIZE = 20, (6, 5)  # not square: a crop that mixed up height and width would show


def recipe_task(seed: int = 3, padding: int = 2, flip: bool = True, channels_last: bool = False) -> ResNetTask:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (N_IMG, 2, *SIZE), dtype=np.uint8)  # no zero pixel: zeros are the padding
    labels = rng.integers(0, 3, N_IMG)
    network = torch.nn.Conv2d(2, 3, 1)
    config = TrainConfig(batch_size=8, crop_padding=padding, flip=flip)
    return ResNetTask(network, images, labels, [0.25, 0.5], [0.5, 0.125], config, seed, channels_last=channels_last)


def epoch_inputs(task: ResNetTask, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every batch of ``epoch`` as (indices, inputs, labels), as the engine draws them."""
    return [(idx, *task.inputs(idx)) for idx in task.train_batches(epoch)]


def test_recipe_inputs_are_normalised_images():
    task = recipe_task(padding=0, flip=False)  # no augmentation: the images themselves
    batches = epoch_inputs(task, 0)
    assert len(batches) == 2 == task.steps_per_epoch()  # 20 images, batches of 8, the last incomplete one dropped
    images = torch.as_tensor(np.random.default_rng(0).integers(1, 256, (N_IMG, 2, *SIZE), dtype=np.uint8))
    mean, std = torch.tensor([0.25, 0.5]).view(1, 2, 1, 1), torch.tensor([0.5, 0.125]).view(1, 2, 1, 1)
    for idx, x, y in batches:
        assert x.shape == (8, 2, *SIZE) and x.dtype == torch.float32
        torch.testing.assert_close(x, (images[idx].float() / 255 - mean) / std)
        assert torch.equal(y, task.labels[idx]) and y.dtype == torch.int64


def test_recipe_crops_lie_within_the_padding():
    task = recipe_task(padding=2)
    padded = task.images  # (N, C, H + 4, W + 4)
    assert padded.shape == (N_IMG, 2, SIZE[0] + 4, SIZE[1] + 4)
    mean, std = torch.tensor([0.25, 0.5]).view(1, 2, 1, 1), torch.tensor([0.5, 0.125]).view(1, 2, 1, 1)
    seen_offsets, seen_flips = set(), set()
    for epoch in range(3):
        for idx, x, _ in epoch_inputs(task, epoch):
            assert x.shape == (8, 2, *SIZE) and x.dtype == torch.float32
            pixels = ((x * std + mean) * 255).round().to(torch.uint8)
            for i, image in zip(idx.tolist(), pixels):
                matches = [(r, c, f) for r in range(5) for c in range(5) for f in (False, True)
                           if torch.equal(image, (lambda w: w.flip(-1) if f else w)(padded[i, :, r:r + 6, c:c + 5]))]
                assert len(matches) == 1, (i, matches)  # a window of the zero-padded image, mirrored or not
                seen_offsets.add(matches[0][:2])
                seen_flips.add(matches[0][2])
    assert len(seen_offsets) > 5 and seen_flips == {False, True}  # the draws vary


def test_recipe_draws_depend_on_seed_and_epoch_only():
    first, second = recipe_task(seed=3), recipe_task(seed=3)
    epoch0 = epoch_inputs(first, 0)
    epoch1 = epoch_inputs(first, 1)
    again1 = epoch_inputs(second, 1)  # a fresh task (as after a restart) straight at epoch 1
    again0 = epoch_inputs(second, 0)
    for a, b in [*zip(epoch1, again1, strict=True), *zip(epoch0, again0, strict=True)]:
        for ta, tb in zip(a, b):
            assert torch.equal(ta, tb)
    assert not torch.equal(epoch0[0][0], epoch1[0][0])  # another epoch, another order
    first.train_batches(1)  # epoch 1's generator: the same images get other crops and flips
    assert not torch.equal(first.inputs(epoch0[0][0])[0], epoch0[0][1])
    other = epoch_inputs(recipe_task(seed=4), 0)
    assert not torch.equal(other[0][0], epoch0[0][0])  # another seed, another order


def test_recipe_inputs_in_channels_last_when_asked():
    task = recipe_task(channels_last=True)
    idx = next(iter(task.train_batches(0)))
    x, _ = task.inputs(idx)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_recipe_refuses_images_that_are_not_uint8():
    with pytest.raises(ValueError, match=r"needs uint8 images \(N, C, H, W\), got torch.float32 \(4, 1, 2, 2\)"):
        ResNetTask(torch.nn.Conv2d(1, 2, 1), np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64), [0.5], [0.5],
                   TrainConfig(batch_size=2), seed=0)
