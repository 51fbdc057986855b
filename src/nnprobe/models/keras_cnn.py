"""The CNN of the TensorFlow/Keras CIFAR-10 tutorial: the network of the mislabel study.

A plain ``nn.Module`` with two packed forwards for populations (``grouped_forward``,
``gemm_forward``: K stacked copies in one call, see :mod:`nnprobe.engines.population`) and a
builder, :func:`keras_cnn`, initialised as Keras does from an explicit generator.
"""

from __future__ import annotations

import torch
from torch import nn

from .init import glorot_init_

__all__ = ["KerasCNN", "keras_cnn", "keras_cnn_min_size", "max_pool_2x2"]


class KerasCNN(nn.Module):
    """Conv(32,3x3)-ReLU-MaxPool(2)-Conv(64,3x3)-ReLU-MaxPool(2)-Conv(64,3x3)-ReLU-
    Flatten-Dense(64)-ReLU-Dense(num_classes).

    ``padding=0`` is the Keras tutorial's 'valid' convolution (32x32 input: 30-15-13-6-4,
    so the flattened feature has 64*4*4 = 1024 values); ``padding=1`` is 'same', for inputs
    too small for three valid convolutions (8x8 digits: 8-4-4-2-2, 256 values).
    ``input_size`` is the side of square images or ``(height, width)``. ``LAYERS`` are the
    layers a visualisation probes.
    """

    LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "fc1")

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int | tuple[int, int] = 32,
        padding: int = 0,
    ) -> None:
        super().__init__()
        if padding not in (0, 1):
            raise ValueError(f"padding must be 0 ('valid') or 1 ('same'), got {padding}")
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        smallest = keras_cnn_min_size(padding)
        if min(height, width) < smallest:
            raise ValueError(
                f"images of {height}x{width} pixels are too small for the Keras CNN with "
                f"{'valid' if padding == 0 else 'same'} padding: it needs at least {smallest}x{smallest}"
                + (" (three 3x3 'valid' convolutions and two 2x2 poolings); use padding 'same' (config key "
                   "model.padding) for smaller images" if padding == 0 else " (two 2x2 poolings)")
            )
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=padding)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=padding)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=padding)
        self.fc1 = nn.Linear(64 * _feature_side(height, padding) * _feature_side(width, padding), 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.penultimate(x))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d representation fed to the last dense layer."""
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x))
        return torch.relu(self.fc1(x.flatten(1)))

    def gemm_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, B, classes)`` of K stacked copies, every layer a batched matrix product.

        Activations are kept channels-last per member, ``(K, B, H, W, C)``; each convolution is
        an explicit patch matrix times the member's weights (:func:`_conv3x3_bmm`), so the
        member axis is the batch axis of one cuBLAS/Triton GEMM instead of K small cuDNN
        calls. Same function as ``forward`` member by member.
        """
        pad = self.conv1.padding[0]
        h = x.permute(0, 1, 3, 4, 2)
        for i, name in enumerate(("conv1", "conv2", "conv3")):
            h = torch.relu(_conv3x3_bmm(h, params[f"{name}.weight"], params[f"{name}.bias"], pad))
            if i < 2:
                h = max_pool_2x2(h.movedim(-1, -3)).movedim(-3, -1)
        h = h.movedim(-1, 2).flatten(2)  # (K, B, C*H*W) in the module's flatten order
        h = torch.relu(torch.baddbmm(params["fc1.bias"].unsqueeze(1), h, params["fc1.weight"].transpose(1, 2)))
        return torch.baddbmm(params["fc2.bias"].unsqueeze(1), h, params["fc2.weight"].transpose(1, 2))

    def grouped_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, B, classes)`` of K stacked copies of this network, member k on ``x[k]``.

        The members are packed along the channel axis: ``(K, B, C, H, W)`` becomes
        ``(B, K*C, H, W)`` and every convolution is one grouped convolution with ``groups=K``
        (each group sees only its member's channels); the dense layers are batched matrix
        products. ``params`` maps this module's parameter names to tensors ``(K, *shape)``.
        Computes the same function as ``vmap(functional_call(self, ...))`` with a layout that
        needs no functorch transform, so ``torch.compile`` sees plain kernels.
        """
        k, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
        pad = self.conv1.padding
        for i, name in enumerate(("conv1", "conv2", "conv3")):
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            h = torch.relu(nn.functional.conv2d(h, weight.flatten(0, 1), bias.flatten(), padding=pad, groups=k))
            if i < 2:
                h = max_pool_2x2(h)
        h = h.reshape(b, k, -1).transpose(0, 1)  # (K, B, 64*s*s), each member's (C, H, W) flatten
        h = torch.relu(torch.baddbmm(params["fc1.bias"].unsqueeze(1), h, params["fc1.weight"].transpose(1, 2)))
        return torch.baddbmm(params["fc2.bias"].unsqueeze(1), h, params["fc2.weight"].transpose(1, 2))


def _conv3x3_bmm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """3x3 convolution of K members' channels-last maps ``(K, B, H, W, C)`` as one batched GEMM.

    The patch matrix is the 9 shifted views concatenated along channels, ``(K, B*H'*W', 9*C)``;
    ``weight`` ``(K, O, C, 3, 3)`` is rearranged to ``(K, 9*C, O)`` in the same (row, column,
    channel) order. Returns ``(K, B, H', W', O)``.
    """
    if padding:
        h = nn.functional.pad(h, (0, 0, padding, padding, padding, padding))
    k, b, height, width, c = h.shape
    ho, wo = height - 2, width - 2
    cols = torch.cat([h[:, :, i : i + ho, j : j + wo, :] for i in range(3) for j in range(3)], dim=-1)
    w = weight.permute(0, 3, 4, 2, 1).reshape(k, 9 * c, -1)
    out = torch.baddbmm(bias.unsqueeze(1), cols.reshape(k, b * ho * wo, 9 * c), w)
    return out.view(k, b, ho, wo, -1)


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(x, 2)`` as a reshape and a max over each 2x2 window (odd edges dropped).

    Same forward values; the backward is an element-wise mask instead of max-pool's
    index scatter, which on a GPU is the slowest kernel of this network's step. On an exact
    tie of positive values the gradient is split between them instead of going to the first.
    """
    *lead, h, w = x.shape
    x = x[..., : h - h % 2, : w - w % 2]
    return x.reshape(*lead, h // 2, 2, w // 2, 2).amax(dim=(-3, -1))


def _feature_side(size: int, padding: int) -> int:
    """The side of the last feature map for an input side ``size`` (conv, pool, conv, pool, conv)."""
    size = (size - 2 + 2 * padding) // 2
    size = (size - 2 + 2 * padding) // 2
    return size - 2 + 2 * padding


def keras_cnn_min_size(padding: int) -> int:
    """The smallest image side the Keras CNN takes: 18 with 'valid' padding (0), 4 with 'same' (1)."""
    return next(s for s in range(1, 64) if _feature_side(s, padding) >= 1)


def keras_cnn(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: int | tuple[int, int] = 32,
    padding: int = 0,
    generator: torch.Generator | None = None,
) -> KerasCNN:
    """The CNN of the TensorFlow/Keras CIFAR-10 tutorial, Keras-initialised.

    On 32x32x3 input with 10 classes it has exactly 122,570 parameters.
    """
    model = KerasCNN(in_channels, num_classes, input_size, padding)
    return glorot_init_(model, generator)
