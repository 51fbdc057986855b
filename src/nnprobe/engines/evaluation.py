"""Evaluating trained networks: predictions in batches, accuracy, error rate, penultimate features.

Every function evaluates the network in eval mode (its mode is restored after) without
gradients and never changes it. Images are uint8 ``(N, C, H, W)`` or float pixels in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .training import autocast_dtype

__all__ = ["to_unit", "normalize_images", "network_logits", "predict", "accuracy", "error_rate", "logit_accuracy", "embed"]


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to float32 in ``[0, 1]``."""
    return images_u8.float() / 255.0


def normalize_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel in float32; uint8 images are scaled by 1/255 first.

    Float images are taken to be on the same [0, 1] scale (that is how the noise probe sets
    are generated, unclipped).
    """
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    return (x - mean.float().view(1, -1, 1, 1)) / std.float().view(1, -1, 1, 1)


@torch.no_grad()
def network_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1024,
                   transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The logits of every image in eval mode (uint8 images scaled to [0, 1], then ``transform``)."""
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            if x.dtype == torch.uint8:
                x = to_unit(x)
            if transform is not None:
                x = transform(x)
            out.append(model(x))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0, device=images.device)


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1024,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The predicted class of every image (see :func:`network_logits`)."""
    if images.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=images.device)
    return network_logits(model, images, batch_size, transform).argmax(1)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024,
             transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Fraction of ``images`` classified as ``labels`` (optionally after ``transform`` of the [0, 1] batch);
    NaN for no images (an empty example set has no accuracy, not 0)."""
    if len(labels) == 0:
        return float("nan")
    return float((predict(model, images, batch_size, transform) == labels.to(images.device)).double().mean())


def error_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096) -> float:
    """Fraction of ``images`` that ``model`` does not classify as ``labels`` (NaN for no images)."""
    return 1.0 - accuracy(model, images, labels, batch_size)


def logit_accuracy(logits: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
    """Fraction of rows whose argmax is the label."""
    return float((logits.argmax(1) == torch.as_tensor(labels)).float().mean())


@torch.no_grad()
def embed(
    features: Callable[[torch.Tensor], torch.Tensor],
    head: nn.Linear,
    images: torch.Tensor | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
    precision: str = "32-true",
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``phi(x)`` and logits ``W phi(x) + b`` of every image, float32 on the CPU.

    ``features`` maps a normalised batch to the penultimate vectors (``CifarResNet.features``,
    ``KerasCNN.penultimate``) and ``head`` is the last linear layer. The head is applied in
    float32 to the float32 features, so ``logits == features @ W.T + b`` holds to rounding
    (the bias split of the noise study relies on it). ``images`` are uint8 or float on the
    [0, 1] scale. The modules must already be on ``device`` and in eval mode. ``precision``
    (the engine's names) is what the features are computed in, on any device: the autocast
    of a mixed precision, or the dtype of ``head`` (float64 after ``64-true`` training);
    ``channels_last`` feeds the network channels-last batches.
    """
    device = torch.device(device)
    autocast = autocast_dtype(precision)
    images = torch.as_tensor(images)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    feats, logits = [], []
    for start in range(0, images.shape[0], batch_size):
        x = normalize_images(images[start : start + batch_size].to(device), mean_t, std_t)
        x = x.to(head.weight.dtype).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            phi = features(x)
        phi = phi.float()
        feats.append(phi.cpu())
        logits.append(F.linear(phi, head.weight.float(), head.bias.float()).cpu())
    return torch.cat(logits), torch.cat(feats)
