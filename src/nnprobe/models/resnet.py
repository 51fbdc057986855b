"""The CIFAR variant of ResNet-18 (the network of the noise study).

Architecture (He et al. 2016, "Deep Residual Learning for Image Recognition", with the CIFAR
stem used by most CIFAR-10 reproductions, e.g. kuangliu/pytorch-cifar): a 3x3 stride-1
convolution stem without max-pool, four stages of two BasicBlocks with ``width, 2w, 4w, 8w``
channels (strides 1, 2, 2, 2, projection shortcuts where the shape changes), global average
pooling and one linear layer. ``width=64`` is ResNet-18 (11,173,962 parameters for 3 input
channels and 10 classes); a smaller width makes the same network narrow for CPU demos.

Its training recipe is the noise study's (:mod:`nnprobe.studies.noise.training`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BasicBlock", "CifarResNet", "resnet18_cifar"]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU (He et al. 2016, Fig. 2)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stem and no max-pool; ``features`` is the pooled penultimate vector."""

    def __init__(self, blocks: Sequence[int] = (2, 2, 2, 2), width: int = 64, in_channels: int = 3,
                 num_classes: int = 10) -> None:
        super().__init__()
        if width < 1 or num_classes < 2 or in_channels < 1:
            raise ValueError(
                f"CifarResNet needs width >= 1, num_classes >= 2 and in_channels >= 1; got width={width}, "
                f"num_classes={num_classes}, in_channels={in_channels}"
            )
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, in_planes = [], width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            layers = []
            for j in range(n):
                layers.append(BasicBlock(in_planes, planes, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.feature_dim = in_planes
        self.fc = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``8 * width``-d vector after global average pooling (the input of ``fc``)."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layers(h)
        return F.adaptive_avg_pool2d(h, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, width: int = 64, seed: int | None = None) -> CifarResNet:
    """ResNet-18 for 32x32 inputs (He et al. 2016; CIFAR stem: 3x3 conv, stride 1, no max-pool).

    PyTorch's default initialisation (Kaiming-uniform convolutions, BN weight 1 bias 0),
    drawn from ``torch.manual_seed(seed)`` inside a forked RNG when ``seed`` is given, so the
    global RNG state is untouched and the same seed gives the same network.
    """
    if seed is None:
        return CifarResNet((2, 2, 2, 2), width, in_channels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CifarResNet((2, 2, 2, 2), width, in_channels, num_classes)
