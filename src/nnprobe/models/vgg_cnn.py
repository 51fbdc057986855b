"""A deeper CNN for the mislabel study: three VGG blocks instead of the Keras tutorial's three convolutions.

Richoux's mislabel experiments use the small Keras tutorial CNN and name deeper networks as the
next step; this is the smallest step in that direction that keeps the population engine's
promise (no batch normalisation, so K networks train as one, each with exactly its own
gradient): the VGG design (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for
Large-Scale Image Recognition") of stacked 3x3 'same' convolutions, here two per block, three
blocks of ``w``, ``2w``, ``4w`` channels, each ending in 2x2 max pooling, then a dense layer of
``4w`` units. Initialised as the Keras CNN (Glorot-uniform, zero biases) from an explicit
generator, so a member is the same network in every population.
"""

from __future__ import annotations

import torch
from torch import nn

from .init import glorot_init_

__all__ = ["VGGCNN", "vgg_cnn", "VGG_CNN_MIN_SIDE"]

#: The smallest image side: three 2x2 poolings of 'same' convolutions.
VGG_CNN_MIN_SIDE = 8


class VGGCNN(nn.Module):
    """[Conv(w)-ReLU-Conv(w)-ReLU-MaxPool(2)] x 3 with w, 2w, 4w channels, Flatten, Dense(4w)-ReLU-Dense(classes).

    With ``width=32`` on 32x32x3 images and 10 classes: 550,570 parameters (4.5 times the Keras CNN).
    ``LAYERS`` are the layers a visualisation probes: each block's last ReLU, and the dense layer.
    """

    LAYERS: tuple[str, ...] = ("features.3", "features.8", "features.13", "fc1")

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int | tuple[int, int] = 32,
                 width: int = 32) -> None:
        super().__init__()
        height, side = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if min(height, side) < VGG_CNN_MIN_SIDE:
            raise ValueError(f"images of {height}x{side} pixels are too small for the VGG CNN: its three 2x2 "
                             f"poolings need at least {VGG_CNN_MIN_SIDE}x{VGG_CNN_MIN_SIDE}")
        channels = [in_channels, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for block in range(3):
            layers += [nn.Conv2d(channels[block], channels[block + 1], 3, padding=1), nn.ReLU(),
                       nn.Conv2d(channels[block + 1], channels[block + 1], 3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(4 * width * (height // 8) * (side // 8), 4 * width)
        self.fc2 = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.penultimate(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The ``4w``-d representation fed to the last dense layer."""
        return torch.relu(self.fc1(self.features(x).flatten(1)))


def vgg_cnn(in_channels: int = 3, num_classes: int = 10, input_size: int | tuple[int, int] = 32, width: int = 32,
            generator: torch.Generator | None = None) -> VGGCNN:
    """The VGG-style CNN, Keras-initialised (Glorot-uniform weights, zero biases) from ``generator``."""
    return glorot_init_(VGGCNN(in_channels, num_classes, input_size, width), generator)
