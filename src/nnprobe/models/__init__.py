"""Every architecture of the studies, and building one from its description.

An architecture is described by its constructor and arguments, ``{"name": ..., **arguments}``,
as a weights file records it (:mod:`nnprobe.core.weights`); :func:`build_model` builds it and
:func:`load_model` builds it with the weights of a file. ``"input": {"mean": [...], "std": [...]}``
wraps the network in :class:`~nnprobe.models.init.Normalized` (it then takes pixels in [0, 1]).

The registry names each architecture's module instead of importing it: importing this package
loads no architecture, so a job that runs one architecture depends on that module alone (the
workflow reruns a job when the code it runs changes, :mod:`nnprobe.core.provenance`). A job
that loads a weights file imports the module of the architecture it expects, which is how its
code inputs come to list it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..core.weights import Weights, WeightsError, read_weights
from .init import Normalized, count_parameters

__all__ = ["ARCHITECTURES", "architecture_class", "build_model", "load_model", "count_parameters"]

ARCHITECTURES: dict[str, str] = {
    "keras_cnn": "keras_cnn:KerasCNN",
    "vgg_cnn": "vgg_cnn:VGGCNN",
    "softmax_regression": "szegedy:SoftmaxRegression",
    "sigmoid_mlp": "szegedy:SigmoidMLP",
    "autoencoder_classifier": "szegedy:AutoencoderClassifier",
    "cifar_resnet": "resnet:CifarResNet",
    "standard_cnn": "topdown:StandardCNN",
    "topdown_net": "topdown:TopDownNet",
}
"""``module:Class`` of every architecture (modules of this package) by the name a weights file records."""


def architecture_class(name: str) -> type[nn.Module]:
    """The class of the architecture a weights file calls ``name`` (its module imported now)."""
    if name not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    module, attribute = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


def build_model(architecture: Mapping[str, Any]) -> nn.Module:
    """The (untrained, default-initialised) network that ``architecture`` describes."""
    arguments = dict(architecture)
    name = arguments.pop("name", None)
    constructor = architecture_class(name)
    normalization = arguments.pop("input", None)
    layers = arguments.pop("layers", None)
    network = constructor(**arguments)
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
