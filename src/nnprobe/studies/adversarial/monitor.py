"""The log of an adversarial-training run: its clean training error as it trains, and what its regime adds.

Every regime of the adversarial-training comparison (Szegedy et al. 2013, Sec. 4.2) keeps one,
so that a regime that ends badly shows when and how: the pools log their size, the mean
distortion of their examples and how often each was used at every refresh, the on-the-fly
regimes the size of their perturbations every epoch, all beside the clean error on the same
fixed training images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...core.seeds import seeded_subset
from ...engines.evaluation import error_rate

__all__ = ["TrainingMonitor"]


class TrainingMonitor:
    """The clean error of a network on ``size`` seeded training images, one row per :meth:`record`.

    The subset is :func:`~nnprobe.core.seeds.seeded_subset` of ``(len(images), size, seed)``
    (all images when ``size`` is 0 or at least their number), drawn apart from every random
    stream of training, so that watching changes nothing. Rows are plain dicts (kept in a
    task's checkpoint, so a resumed job continues the same log).
    """

    def __init__(self, images: torch.Tensor, size: int, seed: int) -> None:
        n = images.shape[0]
        if size < 0:
            raise ValueError(f"the monitor's size (config key adversarial.adversarial_training.monitor_images) "
                             f"must be >= 0 (0: every training image), got {size}")
        index = torch.arange(n) if size == 0 or size >= n else torch.from_numpy(seeded_subset(n, size, seed))
        self.index = index.to(images.device)
        self.rows: list[dict[str, Any]] = []

    def record(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor, **values: Any) -> dict[str, Any]:
        """Append and return ``{**values, "clean_train_error": ..., "monitor_images": ...}``."""
        x = images[self.index]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        row = {**values, "clean_train_error": error_rate(network, x.to(next(network.parameters()).dtype),
                                                         labels[self.index]),
               "monitor_images": int(self.index.numel())}
        self.rows.append(row)
        return row
