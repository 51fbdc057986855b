"""The MNIST model zoo of Szegedy et al. (2013), Tables 1 and 2, and its layer-normalised weight decay.

:data:`ZOO` names every model as the paper does ("FC10(1e-4)", "FC100-100-10", "AE400-10", ...)
with its architecture (:mod:`nnprobe.models.szegedy`) and its per-layer weight decay lambda.

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from ...models.szegedy import (
    AutoencoderClassifier,
    SigmoidMLP,
    SoftmaxRegression,
    ae400_10,
    fc10,
    fc_sigmoid,
)

__all__ = ["ZooEntry", "ZOO", "build_zoo_model", "zoo_architecture", "Normalisation", "decayed_layers",
           "weight_decay_penalty"]


class ZooEntry(NamedTuple):
    """A model of the paper's zoo: ``(constructor, weight_decay, description)``.

    ``constructor(num_inputs=..., num_classes=..., generator=...)`` builds the network;
    ``weight_decay`` is the per-layer lambda of :func:`weight_decay_penalty` (one value per
    layer of :func:`decayed_layers`, or one value for all of them).
    """

    constructor: Callable[..., nn.Module]
    weight_decay: float | tuple[float, ...]
    description: str


ZOO: dict[str, ZooEntry] = {
    "FC10(1e-4)": ZooEntry(fc10, 1e-4, "Softmax with lambda = 1e-4"),
    "FC10(1e-2)": ZooEntry(fc10, 1e-2, "Softmax with lambda = 1e-2"),
    "FC10(1)": ZooEntry(fc10, 1.0, "Softmax with lambda = 1"),
    "FC100-100-10": ZooEntry(
        functools.partial(fc_sigmoid, (100, 100)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    "FC200-200-10": ZooEntry(
        functools.partial(fc_sigmoid, (200, 200)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    # Table 2 (cross-training-set generalisation) does not restate its decay: FC100-100-10's.
    "FC123-456-10": ZooEntry(
        functools.partial(fc_sigmoid, (123, 456)), (1e-5, 1e-5, 1e-6), "Sigmoid network lambda = 1e-5, 1e-5, 1e-6"
    ),
    "AE400-10": ZooEntry(ae400_10, 1e-6, "Autoencoder with Softmax lambda = 1e-6"),
}
"""The MNIST models of Szegedy et al. (2013), Tables 1 and 2, by the paper's names."""


def build_zoo_model(
    name: str,
    num_inputs: int = 784,
    num_classes: int = 10,
    generator: torch.Generator | None = None,
    dropout: tuple[float, float] | None = None,
) -> nn.Module:
    """Construct the zoo model ``name`` (a key of :data:`ZOO`) for inputs of ``num_inputs`` pixels.

    ``dropout = (input_p, hidden_p)`` adds dropout to a sigmoid network (FC...-10 only).
    """
    if name not in ZOO:
        raise ValueError(f"model must be one of {sorted(ZOO)}, got {name!r}")
    extra = {}
    if dropout is not None and any(dropout):
        constructor = ZOO[name].constructor
        if not (isinstance(constructor, functools.partial) and constructor.func is fc_sigmoid):
            raise ValueError(f"dropout applies to the sigmoid networks (FC...-...-10) only, not to {name!r}")
        extra = {"input_dropout": float(dropout[0]), "dropout": float(dropout[1])}
    return ZOO[name].constructor(num_inputs=num_inputs, num_classes=num_classes, generator=generator, **extra)


def zoo_architecture(model: nn.Module) -> dict[str, Any]:
    """The architecture record of a zoo network for its weights file (:func:`nnprobe.models.build_model`)."""
    if isinstance(model, SoftmaxRegression):
        return {"name": "softmax_regression", "num_inputs": model.fc.in_features, "num_classes": model.fc.out_features}
    if isinstance(model, SigmoidMLP):
        return {"name": "sigmoid_mlp", "hidden": [layer.out_features for layer in model.layers],
                "num_inputs": model.layers[0].in_features, "num_classes": model.out.out_features,
                "input_dropout": model.input_dropout.p, "dropout": model.dropout.p}
    if isinstance(model, AutoencoderClassifier):
        return {"name": "autoencoder_classifier", "code": model.encoder.out_features,
                "num_inputs": model.encoder.in_features, "num_classes": model.classifier.out_features}
    raise TypeError(f"{type(model).__name__} is not a network of the zoo")


# --------------------------------------------------------------------------- weight decay


Normalisation = Literal["weights", "units", "none"]


def decayed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose weights are decayed: every ``nn.Linear``/``nn.Conv2d``, in module order.

    For the zoo: FC10 ``[fc]``; FC-sigmoid ``[layers.0, layers.1, ..., out]``; AE400-10
    ``[encoder, decoder, classifier]``.
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def weight_decay_penalty(
    model: nn.Module,
    lambdas: float | Sequence[float],
    normalize: Normalisation = "units",
) -> torch.Tensor:
    """Layer-normalised L2 weight decay of Szegedy et al. (2013), Sec. 4.3 and Table 1.

    The paper gives each layer its own lambda and divides the layer's sum of squared weights
    by the size of the layer, "lambda * sum w^2 / k", without defining k further. We
    implement, by default (``normalize="units"``),

        penalty = sum over decayed layers l of  lambda_l * sum_i w_{l,i}^2 / k_l,

    with ``k_l`` the number of units of layer l, i.e. its outputs (``weight.shape[0]``: 10
    for FC10, 100, 100 and 10 for FC100-100-10). The penalty is added to the *mean*
    cross-entropy of a mini-batch. Biases are not decayed.

    ``normalize="weights"`` divides by the number of weights of the layer instead
    (``weight.numel()``: lambda_l times the *mean* squared weight, 7,840 for FC10);
    ``normalize="none"`` is plain ``lambda * sum(w^2)``. Why "units" is the default:
    trained on MNIST (4 epochs of Adam, lr 3e-3, batch 128), FC10 with lambda = 1e-4,
    1e-2, 1 reached training errors 7.4%, 8.8%, 17.7% with "units" and 7.3%, 7.3%, 7.7%
    with "weights", against the paper's 6.7%, 10%, 21.2%: only "units" reproduces the
    effect of lambda that Table 1 shows (with "weights" even lambda = 1 barely regularises).
    For the sigmoid networks (lambda 1e-5, 1e-6) both readings give a negligible decay.

    ``lambdas`` is one value per layer of :func:`decayed_layers` (FC100-100-10:
    ``(1e-5, 1e-5, 1e-6)``) or a single value for every layer. Returns a differentiable
    scalar on the model's device.
    """
    layers = decayed_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to decay")
    if isinstance(lambdas, (int, float)) and not isinstance(lambdas, bool):
        lambdas = [float(lambdas)] * len(layers)
    lambdas = [float(v) for v in lambdas]
    if len(lambdas) != len(layers):
        raise ValueError(
            f"lambdas has {len(lambdas)} values but {type(model).__name__} has {len(layers)} decayed layers "
            f"{[name for name, _ in layers]}; give one value per layer or a single value"
        )
    if any(not math.isfinite(v) or v < 0 for v in lambdas):
        raise ValueError(f"lambdas must be finite and >= 0, got {lambdas}")
    if normalize not in ("weights", "units", "none"):
        raise ValueError(f"normalize must be 'weights', 'units' or 'none', got {normalize!r}")
    total = torch.zeros((), dtype=layers[0][1].weight.dtype, device=layers[0][1].weight.device)
    for lam, (_, layer) in zip(lambdas, layers):
        w = layer.weight
        size = {"weights": w.numel(), "units": w.shape[0], "none": 1}[normalize]
        total = total + lam * w.pow(2).sum() / size
    return total
