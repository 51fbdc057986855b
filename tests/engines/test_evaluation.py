"""Evaluating trained networks (nnprobe.engines.evaluation): batched predictions, accuracy, error rate."""

from __future__ import annotations

import pytest
import torch

from nnprobe.engines.evaluation import accuracy, error_rate, logit_accuracy, predict
from nnprobe.models.szegedy import fc_sigmoid


def test_error_rate_is_one_minus_accuracy_in_any_batch_size(few_digit_vectors):
    x, y = few_digit_vectors
    model = fc_sigmoid((16,), num_inputs=64, generator=torch.Generator().manual_seed(0)).train()
    with torch.no_grad():
        expected = float((model(x).argmax(1) != y).double().mean())  # no dropout: train mode computes the same
    assert 0 < expected < 1
    err = error_rate(model, x, y, batch_size=7)
    assert err == pytest.approx(expected) and err == pytest.approx(1 - accuracy(model, x, y))
    assert model.training  # the mode is restored
    assert torch.equal(predict(model, x, batch_size=7), predict(model, x))
    with torch.no_grad():
        assert logit_accuracy(model(x), y) == pytest.approx(1 - expected)
    u8 = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)  # uint8 images are scaled to [0, 1]
    torch.testing.assert_close(predict(model, u8), predict(model, u8.float() / 255))
