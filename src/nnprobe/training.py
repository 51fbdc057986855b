"""Lightning wrapper of the population engine: precision, device placement, progress, CSV logs.

The LightningModule registers the stacked tensors of a :class:`~nnprobe.population.Population`
as its parameters (so the Trainer moves and optimises them) and keeps the template module on
the meta device outside the module tree. Its training step is the engine's
:func:`~nnprobe.population.population_loss`, so it matches :func:`train_population` step for
step. ``train_dataloader`` returns one iterable of index batches (a plain list would be read
by Lightning as several loaders).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from .population import (
    Population,
    default_device,
    batch_indices,
    epoch_permutations,
    make_optimizer,
    class_metrics,
    population_loss,
    predict_population,
)

__all__ = ["PopulationModule", "fit_population", "evaluate_population", "default_device"]

PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed")


class _EpochBatches:
    """Iterable over one epoch of ``(K, B)`` index batches, drawn on the module's device."""

    def __init__(self, module: "PopulationModule") -> None:
        self.module = module

    def __len__(self) -> int:
        return math.ceil(self.module.images.shape[0] / self.module.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        m = self.module
        perms = epoch_permutations(m.order_seeds, m.current_epoch, m.images.shape[0], m.device)
        return batch_indices(perms, m.batch_size)


class PopulationModule(pl.LightningModule):
    """Trains a population with Lightning; the data live on the device as buffers."""

    def __init__(
        self,
        population: Population,
        images_u8: torch.Tensor,
        labels: torch.Tensor,
        order_seeds: Sequence[int],
        mean: torch.Tensor,
        std: torch.Tensor,
        batch_size: int,
        optimizer: str = "adam",
        lr: float = 1e-3,
        eps: float = 1e-7,
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        # Outside the module tree: the Trainer must neither move nor optimise the template.
        self.__dict__["template"] = population.template
        self.layout = population.layout
        self.names = list(population.params)
        self.stacked = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in population.params.values())
        self.register_buffer("images", images_u8, persistent=False)
        self.register_buffer("labels", labels, persistent=False)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.order_seeds = [int(s) for s in order_seeds]
        self.batch_size = batch_size
        self.optimizer_args = {"name": optimizer, "lr": lr, "eps": eps}
        # torch.compile of the loss (forward; Lightning runs backward and the optimizer step).
        self.loss_fn = population_loss if compile_mode is None else torch.compile(population_loss, mode=compile_mode)

    def population(self) -> Population:
        """The current members as a Population (views of this module's parameters)."""
        return Population(self.template, dict(zip(self.names, self.stacked)), self.layout)

    def train_dataloader(self) -> _EpochBatches:
        return _EpochBatches(self)

    def training_step(self, idx: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self.population(), self.images, self.labels, idx, self.mean, self.std)
        # Epoch-level only: a per-step value would synchronise with the host every step.
        self.log("train_loss", loss.detach() / len(self.order_seeds), on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(list(self.stacked), fused=self.device.type == "cuda", **self.optimizer_args)


def compact_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Labels as uint8 when they fit (K x N labels of a large population stay small on the GPU)."""
    labels = torch.as_tensor(labels)
    if labels.numel() and 0 <= int(labels.min()) and int(labels.max()) < 256:
        return labels.to(torch.uint8)
    return labels.to(torch.int64)


def fit_population(
    population: Population,
    images_u8: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    order_seeds: Sequence[int],
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    epochs: int,
    batch_size: int,
    optimizer: str = "adam",
    lr: float = 1e-3,
    eps: float = 1e-7,
    precision: str = "32-true",
    accelerator: str = "auto",
    log_dir: Path | None = None,
    progress: bool = True,
    compile_mode: str | None = None,
) -> Population:
    """Train ``population`` for ``epochs`` with a Lightning Trainer; return the trained members.

    ``labels`` is ``(K, N)``: each member's training labels. With ``log_dir`` the mean member
    loss of every epoch is written to ``log_dir/metrics.csv`` (Lightning's CSVLogger).
    The returned population holds detached CPU tensors. ``compile_mode`` (``"default"``,
    ``"reduce-overhead"`` for CUDA graphs, ...) compiles the loss with ``torch.compile``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    module = PopulationModule(
        population,
        torch.as_tensor(images_u8),
        compact_labels(labels),
        order_seeds,
        torch.as_tensor(mean, dtype=torch.float64),
        torch.as_tensor(std, dtype=torch.float64),
        batch_size,
        optimizer,
        lr,
        eps,
        compile_mode,
    )
    logger: pl.loggers.Logger | bool = False
    if log_dir is not None:
        logger = pl.loggers.CSVLogger(str(log_dir), name="", version="")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        precision=precision,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
    )
    trainer.fit(module)
    trained = module.population()
    return Population(
        trained.template,
        {name: p.detach().to("cpu") for name, p in trained.params.items()},
        trained.layout,
    )


def evaluate_population(
    population: Population,
    images_u8: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Per-member, per-class test metrics (:func:`~nnprobe.population.class_metrics`) on ``device``."""
    on_device = Population(
        population.template, {n: p.to(device) for n, p in population.params.items()}, population.layout
    )
    log_probs = predict_population(
        on_device,
        torch.as_tensor(images_u8).to(device),
        torch.as_tensor(mean, dtype=torch.float64, device=device),
        torch.as_tensor(std, dtype=torch.float64, device=device),
        batch_size,
    )
    return class_metrics(log_probs, torch.as_tensor(labels), num_classes)
