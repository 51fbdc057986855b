"""The noise study's networks: a fast ResNet-18 recipe, on all classes or on two of them.

Recipe (:class:`ResNetTask`): SGD with Nesterov momentum, a one-cycle learning-rate schedule
(linear warm-up, linear decay to zero; Smith & Topin 2019), label smoothing (Szegedy et al.
2016), weight decay on convolution and linear weights only, a precision of the engine's
vocabulary (``bf16-mixed`` for the GPU recipe; it means the same on a CPU) and channels-last
memory, on whatever device the job has. The training images live on the device as uint8; augmentation (random crop of
the 4-pixel zero-padded image, horizontal flip) is drawn on the device from the epoch's own
generator, so there is no DataLoader in the hot loop and a run is determined by its seed. The
last incomplete batch of an epoch is dropped (fixed shapes for torch.compile, no BatchNorm
batch of one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...engines.classifier import ClassifierTask
from ...engines.evaluation import normalize_images
from ...engines.training import PRECISIONS, OptimizerSpec

__all__ = ["TrainConfig", "augment_batch", "ResNetTask", "binary_subset"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the ResNet recipe (the config's ``noise.train`` keys)."""

    epochs: int = 45
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.25
    crop_padding: int = 4
    flip: bool = True
    precision: str = "32-true"
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"config key noise.train.precision must be one of {PRECISIONS}, got {self.precision!r}")


def augment_batch(padded: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
    """Random crops and flips of ``padded[idx]`` on its device, by advanced indexing.

    ``padded`` is ``(N, C, H + 2p, W + 2p)``; ``offsets`` ``(B, 2)`` holds each image's top-left
    corner in ``[0, 2p]`` and ``flips`` ``(B,)`` whether to mirror it left-right. Equals
    ``torchvision.transforms.RandomCrop(size, padding=p)`` followed by ``RandomHorizontalFlip``
    given the same draws.
    """
    h, w = size
    rows = offsets[:, 0:1] + torch.arange(h, device=padded.device)  # (B, H)
    cols = offsets[:, 1:2] + torch.arange(w, device=padded.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = padded[idx]  # (B, C, H+2p, W+2p)
    b, c = batch.shape[:2]
    return batch[
        torch.arange(b, device=padded.device)[:, None, None, None],
        torch.arange(c, device=padded.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class ResNetTask(ClassifierTask):
    """The ResNet recipe as a training task (see the module docstring); ``seed`` orders the data
    and draws the augmentation of every epoch."""

    def __init__(self, network: nn.Module, images_u8: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                 mean: Sequence[float], std: Sequence[float], config: TrainConfig, seed: int,
                 channels_last: bool = False) -> None:
        images = torch.as_tensor(images_u8)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"the ResNet recipe needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        p = config.crop_padding
        optimizer = OptimizerSpec("sgd", lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                                  weight_decay=config.weight_decay, decay_weights_only=True)
        super().__init__(network, F.pad(images, (p, p, p, p)), labels, batch_size=config.batch_size,
                         order_seed=seed, optimizer=optimizer, schedule="one_cycle",
                         warmup_fraction=config.warmup_fraction, label_smoothing=config.label_smoothing,
                         drop_last=True, compile_mode="default" if config.compile else None)
        self.size = tuple(images.shape[-2:])
        self.padding = p
        self.flip = config.flip
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32), persistent=False)
        network.to(memory_format=self.memory_format)

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.images.device
        offsets = torch.randint(0, 2 * self.padding + 1, (len(idx), 2), generator=self.generator, device=device)
        flips = torch.rand(len(idx), generator=self.generator, device=device) < (0.5 if self.flip else 0.0)
        x = augment_batch(self.images, idx, offsets, flips, self.size)
        x = normalize_images(x, self.mean, self.std).to(self.dtype)  # float64 under 64-true
        return x.contiguous(memory_format=self.memory_format), self.labels[idx]


def binary_subset(images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                  names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The images of the classes ``names`` only, relabelled 0, 1, ... in the order of ``names``.

    The two-class networks of the noise study see only, e.g., cats and dogs; output 0 is the
    first named class. Raises when a name is not one of ``classes``, saying which are.
    """
    missing = [n for n in names if n not in classes]
    if missing:
        raise ValueError(
            f"config key noise.binary_classes names {missing}, which the prepared data does not have; "
            f"its classes are {list(classes)}: pick two of them"
        )
    keep = [list(classes).index(n) for n in names]
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    mask = np.isin(labels, keep)
    return images[mask], remap[labels[mask]]
