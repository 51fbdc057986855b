"""The visualize study's networks: a standard CNN trained naturally, on BadNets-poisoned data and
with PGD adversarial training, and the top-down network.

Recipe (:class:`VisualizeTask`): Adam with (coupled) weight decay and a cosine learning-rate
schedule to 0 over all steps; optional horizontal flips; with ``adversarial`` every batch is
replaced by its PGD examples against the current network (Madry et al. 2018, min-max
training). Every random draw of an epoch (order, flips, PGD starts) comes from that epoch's
generator.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...engines.classifier import ClassifierTask
from ...engines.pgd import PGD, pgd_attack
from ...engines.training import OptimizerSpec

__all__ = ["VisualizeTask"]


class VisualizeTask(ClassifierTask):
    """Train a network that takes pixels in [0, 1] (a :class:`~nnprobe.models.topdown.Normalized`)."""

    def __init__(self, network: nn.Module, images_u8: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, lr: float, weight_decay: float, seed: int, flip: bool = False,
                 adversarial: PGD | None = None) -> None:
        super().__init__(network, images_u8, labels, batch_size=batch_size, order_seed=seed,
                         optimizer=OptimizerSpec("adam", lr=lr, eps=1e-8, weight_decay=weight_decay), schedule="cosine")
        self.flip = flip
        self.adversarial = adversarial

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().inputs(idx)
        if self.flip:
            flips = torch.rand(len(idx), generator=self.generator, device=x.device) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.adversarial is not None:
            x = pgd_attack(self.network, x, y, self.adversarial, self.generator)
        return x, y
