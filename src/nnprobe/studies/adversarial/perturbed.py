"""Training on perturbations made on the fly: the fast gradient sign method and its random control.

Goodfellow, Shlens & Szegedy (2014), "Explaining and harnessing adversarial examples"
(arXiv:1412.6572), Sec. 6, train on the objective

    J~(theta, x, y) = alpha J(theta, x, y) + (1 - alpha) J(theta, x + epsilon sign(grad_x J(theta, x, y)), y)

with alpha = 0.5 ("we found that adversarial training with the fast gradient sign method" gave
a regularisation beyond dropout on MNIST, epsilon = 0.25 for their maxout network): every
batch makes its own adversarial examples against the network as it is, so no example is ever
stale. :class:`PerturbedTrainingTask` trains on that objective with ``direction="gradient"``
(``adversarial_weight`` = 1 - alpha), optionally with ``steps > 1`` projected steps from a
random start (PGD, Madry et al. 2018, :func:`~nnprobe.engines.pgd.pgd_attack`), and with
``direction="random"`` as the control: the same objective and the same size of perturbation,
``epsilon * s`` with ``s`` uniform random signs, so the control differs from the arm only in
the perturbation's direction. Perturbed images are clipped to the box [0, 1] (Goodfellow et al.
do not say; the clipped image is still an image). The perturbation is a constant in the loss:
no gradient flows through its construction.

Its log (:class:`~nnprobe.studies.adversarial.monitor.TrainingMonitor`) holds, per epoch, the
clean training error and the realised RMS of the perturbations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...engines.lbfgs import rms_distortion
from ...engines.pgd import PGD, pgd_attack
from ...engines.training import Step
from .monitor import TrainingMonitor
from .training import ZooClassifierTask

__all__ = ["DIRECTIONS", "MonitoredZooTask", "PerturbedTrainingTask", "sign_perturbation"]

DIRECTIONS = ("gradient", "random")
"""The perturbations of :class:`PerturbedTrainingTask`: the loss's gradient sign, or random signs."""


def sign_perturbation(network: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, direction: str,
                      generator: torch.Generator | None = None, steps: int = 1,
                      step_size: float | None = None) -> torch.Tensor:
    """``clip(x + delta, 0, 1)`` with ``delta`` of L-infinity size ``epsilon`` (no gradient).

    ``direction="gradient"``: ``delta = epsilon * sign(grad_x CE(network(x), y))`` for ``steps=1``
    (Goodfellow et al. 2014's fast gradient sign method, from x itself); for ``steps > 1`` the
    PGD attack of :func:`~nnprobe.engines.pgd.pgd_attack` (random start in the epsilon ball,
    ``steps`` signed steps of ``step_size``, default ``2.5 epsilon / steps``). ``"random"``:
    ``delta = epsilon * s``, ``s`` uniform on {-1, +1} per pixel from ``generator``: before
    clipping, exactly the size of the gradient-sign perturbation (RMS and L-infinity norm
    epsilon). The network's mode is kept (its dropout, if any, acts as in its training step).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1] (pixel units), got {epsilon}")
    if direction == "random":
        signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        return (x + epsilon * signs).clamp(0, 1)
    if steps > 1:
        attack = PGD(epsilon, steps, step_size) if step_size else PGD.madry(epsilon, steps)
        return pgd_attack(network, x, y, attack, generator)
    x_in = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(network(x_in), y, reduction="sum"), x_in)
    return (x + epsilon * grad.sign()).clamp(0, 1).detach()


class MonitoredZooTask(ZooClassifierTask):
    """:class:`~.training.ZooClassifierTask` that logs to ``monitor`` at the start of every epoch.

    The row of epoch e (the network after e epochs) holds :meth:`epoch_values`; :meth:`finish`
    writes the row after the last epoch. The rows live in the checkpoint, so a resumed job
    continues the same log. The weight-decay and dropout regimes train with it as it is.
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 monitor: TrainingMonitor | None = None, **recipe: Any) -> None:
        super().__init__(network, images, labels, **recipe)
        self.monitor = monitor
        self.epoch = 0

    def epoch_values(self) -> dict[str, Any]:
        """What a row adds besides the epoch and the clean training error (and resets it)."""
        return {}

    def _record(self, epoch: int) -> None:
        values = self.epoch_values()
        if self.monitor is not None:
            self.monitor.record(self.network, self.images, self.labels, epoch=epoch, epochs_done=float(epoch),
                                **values)

    def train_batches(self, epoch: int):
        self.epoch = int(epoch)
        self._record(self.epoch)  # the state after the epochs before this one
        self.network.train()
        return super().train_batches(epoch)

    def finish(self, epochs: int) -> None:
        """The monitor's last row, after the ``epochs`` epochs of training."""
        self._record(int(epochs))

    def get_extra_state(self) -> dict[str, Any]:
        return {"monitor": list(self.monitor.rows) if self.monitor is not None else []}

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        if self.monitor is not None:
            self.monitor.rows = [dict(row) for row in state["monitor"]]


class PerturbedTrainingTask(MonitoredZooTask):
    """Weight decay and the objective ``(1 - w) CE(x, y) + w CE(x + delta, y)`` of every batch.

    ``delta`` from :func:`sign_perturbation` (``direction``, ``epsilon``, ``steps``,
    ``step_size``), drawn from the epoch's generator where it is random; ``w =
    adversarial_weight`` (Goodfellow et al.'s 1 - alpha, 0.5 there). The monitor's rows add
    ``perturbation_rms``, the mean realised RMS of the clipped perturbations of the epoch
    before. ``recipe`` are :class:`MonitoredZooTask`'s keyword arguments.
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, direction: str,
                 epsilon: float, adversarial_weight: float = 0.5, steps: int = 1, step_size: float | None = None,
                 **recipe: Any) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if not 0 < epsilon <= 1:
            raise ValueError(f"epsilon (config key adversarial.adversarial_training.gradient_sign.epsilon) must be in "
                             f"(0, 1], pixel units, got {epsilon}")
        if not 0 < adversarial_weight <= 1:
            raise ValueError(f"adversarial_weight must be in (0, 1] (0.5: Goodfellow et al.'s alpha), "
                             f"got {adversarial_weight}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1 (1: the fast gradient sign method), got {steps}")
        super().__init__(network, images, labels, **recipe)
        self.direction, self.epsilon, self.adversarial_weight = direction, float(epsilon), float(adversarial_weight)
        self.steps, self.step_size = int(steps), step_size
        self._rms_sum, self._rms_count = 0.0, 0

    def epoch_values(self) -> dict[str, Any]:
        mean_rms = self._rms_sum / self._rms_count if self._rms_count else float("nan")
        self._rms_sum, self._rms_count = 0.0, 0
        return {"perturbation_rms": mean_rms}

    def training_step(self, idx: torch.Tensor) -> Step:
        x, y = self.inputs(idx)
        perturbed = sign_perturbation(self.forward_network, x, y, self.epsilon, self.direction, self.generator,
                                      self.steps, self.step_size)
        self._rms_sum += float(rms_distortion(perturbed, x).sum())
        self._rms_count += len(idx)
        logits = self.forward_network(torch.cat([x, perturbed]))
        clean, adversarial = logits[: len(idx)], logits[len(idx) :]
        w = self.adversarial_weight
        loss = (1 - w) * F.cross_entropy(clean.float(), y) + w * F.cross_entropy(adversarial.float(), y)
        return Step(loss + self.penalty(), examples=len(idx), correct=(clean.argmax(1) == y).sum())

    def get_extra_state(self) -> dict[str, Any]:
        # The epoch's running sums too: its row is written when the next epoch starts.
        return {**super().get_extra_state(), "rms_sum": self._rms_sum, "rms_count": self._rms_count}

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        super().set_extra_state(state)
        self._rms_sum, self._rms_count = float(state["rms_sum"]), int(state["rms_count"])
