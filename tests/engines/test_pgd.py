"""L-infinity PGD (nnprobe.engines.pgd, Madry et al. 2018) against a tiny CNN trained on the 8x8 digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnprobe.engines.classifier import ClassifierTask
from nnprobe.engines.evaluation import accuracy, to_unit
from nnprobe.engines.pgd import PGD, pgd_attack, robust_accuracy
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


def test_pgd_stays_in_the_ball_and_the_box_and_lowers_accuracy(natural, digit_images):
    x_u8, y = digit_images["test"]
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
