"""Initialisations shared by the architectures, each from an explicit generator, and the input wrapper.

A network built from ``torch.Generator().manual_seed(seed)`` is the same on every machine and
in every population it is a member of (see :mod:`nnprobe.engines.population`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["glorot_init_", "he_init_", "count_parameters", "Normalized"]


def glorot_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise as Keras does: Glorot-uniform weights, zero biases (Glorot & Bengio 2010).

    For a convolution, Keras's fan-in/fan-out are ``in*k*k`` and ``out*k*k``, which is what
    :func:`torch.nn.init.xavier_uniform_` computes from the weight's shape.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def he_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """He-uniform (Kaiming) weights for ReLU layers, zero biases (He et al. 2015)."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(layer.bias)
    return model


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Normalized(nn.Module):
    """``net((x - mean) / std)`` for images ``x`` in ``[0, 1]``; mean and std are per-channel buffers.

    ``layers`` are the probed stage names as paths from this wrapper (``"net.stage1"``).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], layers: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        names = layers if layers is not None else getattr(net, "LAYERS", ())
        self.layers = tuple(f"net.{name}" for name in names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
