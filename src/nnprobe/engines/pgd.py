"""Gradient attacks: L-infinity PGD (Madry et al. 2018) and a targeted iterative-gradient baseline.

* :func:`pgd_attack` (Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards Deep Learning
  Models Resistant to Adversarial Attacks"): projected gradient ascent on the cross-entropy
  from a random start in the epsilon ball, projected onto the ball and the box ``[0, 1]``
  after every step; PGD adversarial training uses it on every batch.
* :func:`iterative_gradient_attack`: targeted descent on the target's cross-entropy, an upper
  bound that the minimal L-BFGS attack (:mod:`nnprobe.engines.lbfgs`) should not exceed.

Images are pixels in ``[0, 1]``; the model's parameters receive no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .evaluation import predict, to_unit
from .lbfgs import AdversarialResult, check_attack_inputs, predicted, rms_distortion

__all__ = ["PGD", "pgd_attack", "robust_accuracy", "iterative_gradient_attack"]


@dataclass(frozen=True)
class PGD:
    """An L-infinity PGD attack: radius ``epsilon`` in pixel units (images in [0, 1]), ``steps``
    signed-gradient steps of ``step_size``, from a uniform random start in the ball."""

    epsilon: float
    steps: int
    step_size: float

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"PGD epsilon must be in [0, 1] (pixel units), got {self.epsilon}")
        if self.steps < 1 or self.step_size <= 0:
            raise ValueError(f"PGD needs steps >= 1 and step_size > 0, got {self.steps} and {self.step_size}")

    @classmethod
    def madry(cls, epsilon: float, steps: int) -> "PGD":
        """Madry et al.'s step size for evaluation, ``2.5 * epsilon / steps``."""
        return cls(epsilon, steps, 2.5 * epsilon / steps if epsilon > 0 else 1.0)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: PGD, generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial examples ``x'`` with ``|x' - x|_inf <= epsilon`` and ``x'`` in ``[0, 1]`` (Madry et al. 2018).

    ``x' = clip(x + U(-eps, eps))``, then ``steps`` times ``x' <- proj(x' + step_size *
    sign(grad CE(model(x'), y)))``, where ``proj`` clips to the epsilon ball around ``x`` and
    to the box. The model's parameters receive no gradient. ``epsilon = 0`` returns ``x``.
    """
    if attack.epsilon == 0:
        return x.detach().clone()
    eps = attack.epsilon
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) if generator is not None \
        else torch.rand_like(x)
    low, high = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    adv = torch.min(torch.max(x + (2 * noise - 1) * eps, low), high).detach()
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(attack.steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(model(adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            adv = torch.min(torch.max(adv.detach() + attack.step_size * grad.sign(), low), high).detach()
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    return adv


def robust_accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, attack: PGD, seed: int,
                    batch_size: int = 512) -> float:
    """Accuracy under :func:`pgd_attack` (each image attacked once, random start from ``seed``)."""
    generator = torch.Generator(images_u8.device).manual_seed(seed)
    correct = 0
    for start in range(0, len(labels), batch_size):
        x, y = to_unit(images_u8[start : start + batch_size]), labels[start : start + batch_size]
        adv = pgd_attack(model, x, y, attack, generator)
        correct += (predict(model, adv) == y).sum().item()
    return correct / max(len(labels), 1)


def iterative_gradient_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int = 200,
    step_size: float = 0.05,
    norm: Literal["l2", "linf"] = "l2",
) -> AdversarialResult:
    """A simple targeted baseline: iterative gradient descent on the target's cross-entropy.

    ``x' <- clip(x' - a * g / |g|_2, 0, 1)`` (``norm="l2"``: ``a = step_size`` is the L2 length
    of a step over the whole image) or ``x' <- clip(x' - a * sign(g), 0, 1)`` (``norm="linf"``,
    the targeted basic iterative method of Kurakin et al. 2016), ``g`` the gradient of
    ``CE(f(x'), target)``; each example stops as soon as the model classifies it as its target
    (examples already classified so are returned unchanged). At most ``steps`` steps. No
    minimality is sought, so it is an upper bound the L-BFGS attack should not exceed.
    """
    target = check_attack_inputs(model, x, target)
    if steps < 1 or not step_size > 0:
        raise ValueError(f"steps must be >= 1 and step_size > 0, got {steps}, {step_size}")
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")
    was_training = model.training
    model.eval()
    try:
        adv = x.detach().clone()
        done = predicted(model, adv) == target
        shape = (-1,) + (1,) * (x.ndim - 1)
        for _ in range(steps):
            idx = torch.nonzero(~done).flatten()
            if idx.numel() == 0:
                break
            xi = adv[idx].clone().requires_grad_(True)
            loss = F.cross_entropy(model(xi), target[idx], reduction="sum")
            (g,) = torch.autograd.grad(loss, xi)
            if norm == "l2":
                step = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            else:
                step = g.sign()
            adv[idx] = (xi.detach() - step_size * step).clamp(0, 1)
            done[idx] = predicted(model, adv[idx]) == target[idx]
        success = predicted(model, adv) == target
    finally:
        model.train(was_training)
    distortion = rms_distortion(adv, x).double()
    distortion[~success] = math.nan
    c = torch.full_like(distortion, math.nan)
    return AdversarialResult(adv, target, success, distortion, c)
