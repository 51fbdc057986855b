"""Networks of the visualize study: a bottom-up CNN, the coarse-to-fine "top-down" network, and a
wrapper that takes images in ``[0, 1]``.

Every model here maps raw pixels ``x`` in ``[0, 1]``, shape ``(N, C, H, W)``, to logits once
wrapped in :class:`Normalized` (which standardises by the training data's channel mean and
std), so attacks (PGD's box ``[0, 1]``), backdoor triggers and input-space optimisation all
work in pixel units. Each network names the stages whose outputs the study probes in
``LAYERS`` (the output of a stage is after its last ReLU).

The two classifiers have the same widths in reverse order and about the same number of
parameters (``31 * 9 * width**2`` in their 3x3 convolutions, plus the input and head):

* :class:`StandardCNN`: three stages at ``H``, ``H/2``, ``H/4`` with ``w``, ``2w``, ``4w``
  channels (fine to coarse, the usual bottom-up pyramid).
* :class:`TopDownNet` (Lelekas, Tomen, Pintea & van Gemert 2020, "Top-Down Networks: A
  coarse-to-fine reimagination of CNNs", CVPR Workshops): the first stage sees the image
  downscaled by 4 and has ``4w`` channels; each later stage upsamples the features by 2,
  concatenates the image at that resolution, and has half the channels; the last stage works
  at full resolution with ``w`` channels and is global-average-pooled into the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .init import Normalized, he_init_

__all__ = ["StandardCNN", "TopDownNet", "Normalized", "standard_cnn", "topdown_net", "conv_block"]


def conv_block(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 'same' convolutions, each followed by a ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(mid_channels, out_channels, 3, padding=1),
        nn.ReLU(),
    )


class StandardCNN(nn.Module):
    """Bottom-up CNN: [conv3-conv3](w) @H, pool, [conv3-conv3](2w) @H/2, pool, [conv3-conv3](4w)
    @H/4, global average pool, linear.

    Max pools are 2x2 with ``ceil_mode`` so odd sizes work (8x8 digits: 8-4-2).
    """

    LAYERS: tuple[str, ...] = ("stage1", "stage2", "stage3")

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stage1 = conv_block(in_channels, w, w)
        self.stage2 = conv_block(w, 2 * w, 2 * w)
        self.stage3 = conv_block(2 * w, 4 * w, 4 * w)
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stage1(x)
        h = self.stage2(F.max_pool2d(h, 2, ceil_mode=True))
        h = self.stage3(F.max_pool2d(h, 2, ceil_mode=True))
        return self.head(h.mean(dim=(2, 3)))


class TopDownNet(nn.Module):
    """Coarse-to-fine CNN (Lelekas et al. 2020): the image at 1/4 resolution first, the image
    at 1/2 and full resolution concatenated to the upsampled features of later stages.

    ``x4 = area-downscale(x, H/4)`` -> [conv3-conv3](4w) -> upsample x2 (bilinear), concat
    ``x2 = area-downscale(x, H/2)`` -> [conv3-conv3](2w) -> upsample to H, concat ``x`` ->
    [conv3-conv3](w) -> global average pool -> linear. Sizes are computed from the input, so
    any ``H, W >= 4`` works (8x8 digits: 2-4-8; CIFAR-10: 8-16-32).
    """

    LAYERS: tuple[str, ...] = ("stage1", "stage2", "stage3")

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stage1 = conv_block(in_channels, 4 * w, 4 * w)
        self.stage2 = conv_block(4 * w + in_channels, 2 * w, 2 * w)
        self.stage3 = conv_block(2 * w + in_channels, w, w)
        self.head = nn.Linear(w, num_classes)

    @staticmethod
    def scales(height: int, width: int) -> list[tuple[int, int]]:
        """Input sizes of the three stages, coarse to fine."""
        if min(height, width) < 4:
            raise ValueError(f"TopDownNet needs images of at least 4x4 pixels, got {height}x{width}")
        return [(max(1, height // 4), max(1, width // 4)), (max(1, height // 2), max(1, width // 2)), (height, width)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = self.scales(x.shape[-2], x.shape[-1])
        h = self.stage1(F.interpolate(x, size=sizes[0], mode="area"))
        h = F.interpolate(h, size=sizes[1], mode="bilinear", align_corners=False)
        h = self.stage2(torch.cat([h, F.interpolate(x, size=sizes[1], mode="area")], dim=1))
        h = F.interpolate(h, size=sizes[2], mode="bilinear", align_corners=False)
        h = self.stage3(torch.cat([h, x], dim=1))
        return self.head(h.mean(dim=(2, 3)))


def standard_cnn(in_channels: int, num_classes: int, width: int, generator: torch.Generator | None = None) -> StandardCNN:
    """The bottom-up CNN (He-initialised). 288,298 parameters for 3 channels, 10 classes, width 32."""
    return he_init_(StandardCNN(in_channels, num_classes, width), generator)


def topdown_net(in_channels: int, num_classes: int, width: int, generator: torch.Generator | None = None) -> TopDownNet:
    """The top-down network (He-initialised), same widths reversed as :func:`standard_cnn`."""
    return he_init_(TopDownNet(in_channels, num_classes, width), generator)
