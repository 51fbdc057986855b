"""Transfer of adversarial examples (nnprobe.studies.adversarial.transfer): distortion-matched
controls and the cross-model error matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.studies.adversarial.transfer import cross_model_error_matrix, gaussian_noise_control, rescale_to_rms

# --------------------------------------------------------------------------- distortion-matched controls


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


# --------------------------------------------------------------------------- cross-model error matrix


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
