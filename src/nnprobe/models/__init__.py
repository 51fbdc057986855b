"""Every architecture of the studies, and building one from its description.

An architecture is described by its constructor and arguments, ``{"name": ..., **arguments}``,
as a weights file records it (:mod:`nnprobe.core.weights`); :func:`build_model` builds it and
:func:`load_model` builds it with the weights of a file. ``"input": {"mean": [...], "std": [...]}``
wraps the network in :class:`~nnprobe.models.topdown.Normalized` (it then takes pixels in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..core.weights import Weights, WeightsError, read_weights
from .init import count_parameters
from .keras_cnn import KerasCNN
from .resnet import CifarResNet
from .szegedy import AutoencoderClassifier, SigmoidMLP, SoftmaxRegression
from .topdown import Normalized, StandardCNN, TopDownNet

__all__ = ["ARCHITECTURES", "build_model", "load_model", "count_parameters"]

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "keras_cnn": KerasCNN,
    "softmax_regression": SoftmaxRegression,
    "sigmoid_mlp": SigmoidMLP,
    "autoencoder_classifier": AutoencoderClassifier,
    "cifar_resnet": CifarResNet,
    "standard_cnn": StandardCNN,
    "topdown_net": TopDownNet,
}
"""Constructor of every architecture by the name a weights file records."""


def build_model(architecture: Mapping[str, Any]) -> nn.Module:
    """The (untrained, default-initialised) network that ``architecture`` describes."""
    arguments = dict(architecture)
    name = arguments.pop("name", None)
    if name not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    normalization = arguments.pop("input", None)
    layers = arguments.pop("layers", None)
    network = ARCHITECTURES[name](**arguments)
    if normalization is not None:
        network = Normalized(network, normalization["mean"], normalization["std"], layers)
    return network


def load_model(path: str | Path, device: Any = "cpu") -> tuple[nn.Module, Weights]:
    """The network of a weights file (one network, not a population), in eval mode, and the file's content."""
    weights = read_weights(path)
    if "members" in weights.extra:
        raise WeightsError(f"{path} holds a population of {len(weights.extra['members'])} networks; "
                           "load it with nnprobe.engines.population.load_population")
    model = build_model(weights.architecture)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.tensors.items()}
    if expected != found:
        raise WeightsError(f"{path}: its tensors {found} do not fit the architecture it names "
                           f"{weights.architecture} ({expected}); rerun the rule that makes it")
    model.load_state_dict(weights.tensors)
    return model.to(device).eval(), weights
