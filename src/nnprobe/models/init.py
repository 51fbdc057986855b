"""Initialisations shared by the architectures, each from an explicit generator.

A network built from ``torch.Generator().manual_seed(seed)`` is the same on every machine and
in every population it is a member of (see :mod:`nnprobe.engines.population`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["glorot_init_", "he_init_", "count_parameters"]


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
