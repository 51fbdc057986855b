"""One classifier as a training task: the recipe that the single networks of the studies share.

:class:`ClassifierTask` trains one network on images held on the device, in mini-batches of a
seeded permutation per epoch, with cross-entropy (optionally label-smoothed) plus the network's
penalty, an optimizer of :class:`~nnprobe.engines.training.OptimizerSpec` and a per-step
learning-rate schedule. Recipes that differ (augmentation, adversarial batches, another loss,
an adversarial pool) override :meth:`ClassifierTask.inputs`, :meth:`ClassifierTask.loss` or
:meth:`ClassifierTask.training_step`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .population import batch_indices, epoch_permutations
from .training import (
    OptimizerSpec,
    Step,
    TrainingTask,
    epoch_generator,
    make_optimizer,
    step_schedule,
)

__all__ = ["ClassifierTask"]


class ClassifierTask(TrainingTask):
    """Train ``network`` on ``images`` (uint8, or float pixels in [0, 1]) and integer ``labels``.

    Epoch e visits the images in the order of :func:`~nnprobe.engines.population.epoch_permutations`
    of ``(order_seed, e)``, ``batch_size`` at a time (the last batch shorter unless
    ``drop_last``); :attr:`generator` holds the epoch's own random stream for augmentation.
    ``trainable`` restricts training to those parameters (the others are frozen while training
    and restored after). ``schedule`` is ``"constant"``, ``"cosine"`` or ``"one_cycle"``
    (with ``warmup_fraction``). ``compile_mode`` trains through ``torch.compile(network)``. The
    network is in train mode while training, eval mode after.
    """

    def __init__(
        self,
        network: nn.Module,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        *,
        batch_size: int,
        order_seed: int,
        optimizer: OptimizerSpec = OptimizerSpec(),
        schedule: str = "constant",
        warmup_fraction: float = 0.0,
        label_smoothing: float = 0.0,
        drop_last: bool = False,
        trainable: Sequence[nn.Parameter] | None = None,
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise ValueError(f"images and labels must be N >= 1 of each, got {tuple(images.shape)} and {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.ndim != 1:
            raise ValueError(f"labels must be integer class labels of shape (N,), got {labels.dtype} {tuple(labels.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network
        # The compiled forward shares the network's parameters; it is no submodule (state dicts stay plain).
        self.__dict__["forward_network"] = network if compile_mode is None else torch.compile(network, mode=compile_mode)
        self.register_buffer("images", images, persistent=False)
        self.register_buffer("labels", labels.long(), persistent=False)
        self.batch_size = min(int(batch_size), images.shape[0]) if drop_last else int(batch_size)
        self.order_seed = int(order_seed)
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmup_fraction = warmup_fraction
        self.label_smoothing = label_smoothing
        self.drop_last = drop_last
        self._trainable = None if trainable is None else {id(p) for p in trainable}
        self._flags: list[bool] = []
        self.generator: torch.Generator | None = None
        self.dtype = torch.get_default_dtype()

    # --- what the engine calls

    def steps_per_epoch(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def configure_optimizers(self, fused: bool, epochs: int):
        params = [p for p in self.network.parameters() if self._trainable is None or id(p) in self._trainable]
        optimizer = make_optimizer(params, self.optimizer, fused=fused)
        schedule = step_schedule(optimizer, self.schedule, epochs * self.steps_per_epoch(), self.warmup_fraction)
        return optimizer if schedule is None else (optimizer, schedule)

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        device = self.images.device
        self.generator = epoch_generator(self.order_seed, epoch, device)
        self.dtype = next(self.network.parameters()).dtype
        perm = epoch_permutations([self.order_seed], epoch, self.images.shape[0], device)
        if self.drop_last:
            perm = perm[:, : self.steps_per_epoch() * self.batch_size]
        return (idx[0] for idx in batch_indices(perm, self.batch_size))

    def training_step(self, idx: torch.Tensor) -> Step:
        x, y = self.inputs(idx)
        logits = self.forward_network(x)
        loss = self.loss(logits, y)
        return Step(loss, examples=len(idx), correct=(logits.argmax(1) == y).sum())

    def on_fit_start(self) -> None:
        self._flags = [p.requires_grad for p in self.network.parameters()]
        if self._trainable is not None:
            for p in self.network.parameters():
                p.requires_grad_(id(p) in self._trainable)
        self.network.train()

    def on_fit_end(self) -> None:
        for p, flag in zip(self.network.parameters(), self._flags):
            p.requires_grad_(flag)
        self.network.eval()

    # --- what a recipe overrides

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's inputs and the labels of the images ``idx`` (uint8 scaled to [0, 1]), in the
        dtype of the network's parameters."""
        x = self.images[idx]
        x = x.to(self.dtype) / 255.0 if x.dtype == torch.uint8 else x.to(self.dtype)
        return x, self.labels[idx]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (label-smoothed if asked) plus :meth:`penalty`."""
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss + self.penalty()

    def penalty(self) -> torch.Tensor | float:
        """A term added to every batch's loss (e.g. a weight decay); none by default."""
        return 0.0
