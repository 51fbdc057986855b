"""Model definitions: small image classifiers with Keras-compatible initialisation.

Each model is a plain ``nn.Module`` plus a constructor function whose docstring names
the architecture exactly. Initialisation takes an explicit ``torch.Generator`` so that a
member of a population is initialised the same way whether it is trained alone or with
others (see :mod:`nnprobe.population`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KerasCNN", "keras_cnn", "glorot_init_", "count_parameters"]


class KerasCNN(nn.Module):
    """Conv(32,3x3)-ReLU-MaxPool(2)-Conv(64,3x3)-ReLU-MaxPool(2)-Conv(64,3x3)-ReLU-
    Flatten-Dense(64)-ReLU-Dense(num_classes).

    ``padding=0`` is the Keras tutorial's 'valid' convolution (32x32 input: 30-15-13-6-4,
    so the flattened feature has 64*4*4 = 1024 values); ``padding=1`` is 'same', for inputs
    too small for three valid convolutions (8x8 digits: 8-4-4-2-2, 256 values).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int = 32,
        padding: int = 0,
    ) -> None:
        super().__init__()
        if padding not in (0, 1):
            raise ValueError(f"padding must be 0 ('valid') or 1 ('same'), got {padding}")
        size = input_size
        size = (size - 2 + 2 * padding) // 2
        size = (size - 2 + 2 * padding) // 2
        size = size - 2 + 2 * padding
        if size < 1:
            raise ValueError(
                f"input_size {input_size} is too small for three 3x3 'valid' convolutions; "
                "use padding=1 ('same') for inputs smaller than 18 pixels"
            )
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=padding)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=padding)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=padding)
        self.fc1 = nn.Linear(64 * size * size, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.penultimate(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d representation fed to the last dense layer."""
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x))
        return torch.relu(self.fc1(x.flatten(1)))


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


def keras_cnn(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int = 32,
    padding: int = 0,
    generator: torch.Generator | None = None,
) -> KerasCNN:
    """The CNN of the TensorFlow/Keras CIFAR-10 tutorial, Keras-initialised.

    On 32x32x3 input with 10 classes it has exactly 122,570 parameters.
    """
    model = KerasCNN(in_channels, num_classes, input_size, padding)
    return glorot_init_(model, generator)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
