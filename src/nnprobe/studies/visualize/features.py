"""What a class, a unit or a layer of a network responds to: the visualize study's feature
visualisations of one network, and the networks it visualises besides its own.

:func:`visualize_features` runs the three input-space optimisations of
:mod:`nnprobe.engines.features` on one network: activation maximisation of every class,
caricatures of test images per layer, and inversions of each layer's representation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.naming import BASELINE
from ...engines.evaluation import predict
from ...engines.features import (
    Regularizers,
    activation_maximization,
    caricature,
    colour_matrix,
    invert,
)
from ...models import load_model
from ...models import keras_cnn as _keras_cnn  # noqa: F401  (the architectures of the mislabel networks it loads)
from ...models import vgg_cnn as _vgg_cnn  # noqa: F401
from ...models.init import Normalized

__all__ = ["pick_images", "mislabel_baseline", "visualize_features"]

log = logging.getLogger("nnprobe.visualize")


def pick_images(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first correctly classified test image of classes 0, 1, ... (cycling), at most
    ``count``; a class with no correct image left is skipped. A network that gets no image right
    (one at chance) is shown on the first image of each class instead, with a warning."""

    def first_of_each_class(allowed: torch.Tensor) -> list[int]:
        num_classes = int(labels.max()) + 1
        picks: list[int] = []
        used: set[int] = set()
        for i in range(count):
            c = i % num_classes
            candidates = [j for j in torch.nonzero((labels == c) & allowed).flatten().tolist() if j not in used]
            if candidates:
                picks.append(candidates[0])
                used.add(candidates[0])
        return picks

    picks = first_of_each_class(predict(model, images) == labels)
    if not picks and count > 0:
        log.warning("the network classifies no test image correctly (it is at chance): caricatures and inversions "
                    "start from the first test image of each class")
        picks = first_of_each_class(torch.ones_like(labels, dtype=torch.bool))
    return torch.tensor(picks, dtype=torch.long, device=images.device)


def mislabel_baseline(weights: str, mean: np.ndarray, std: np.ndarray) -> Normalized:
    """The mislabel study's first baseline network ("none", replicate 0), taking pixels in [0, 1]
    standardised as it was trained (the training data's channel mean and std); its probed layers
    are those its architecture names (``LAYERS``)."""
    network, saved = load_model(weights)
    if saved.extra.get("pair") != BASELINE:
        raise ValueError(f"{weights} holds network {saved.extra.get('network')!r}, expected one of the mislabel "
                         f"study's baseline {BASELINE!r}")
    return Normalized(network, mean, std, layers=type(network).LAYERS).eval()


def visualize_features(model: nn.Module, train_images: np.ndarray, test_images: torch.Tensor,
                       test_labels: torch.Tensor, classes: list[str], *, features: Mapping[str, Any],
                       regularizers: Mapping[str, Any], seeds: Mapping[str, int], progress: bool,
                       name: str) -> dict[str, np.ndarray]:
    """Activation maximisation, caricatures and inversions of ``model`` (taking pixels in [0, 1]).

    ``features`` are the config's ``visualize.features`` keys, ``regularizers`` its
    ``visualize.regularizers``; ``seeds`` has one seed per method (``am``, ``caricature``,
    ``inversion``). Colours are decorrelated with the training images' colour covariance.
    Returns the arrays the figures are drawn from.
    """
    layers = list(model.layers)
    device = test_images.device
    num_classes = len(classes)
    reg = Regularizers(**regularizers)
    colour = colour_matrix(train_images)
    feat = features
    log.info("%s: layers %s, regularizers %s", name, layers, reg)

    started = time.perf_counter()
    am, am_logits, am_history = activation_maximization(
        model, num_classes, train_images.shape[1:], seeds=feat["seeds"], steps=feat["steps"], lr=feat["lr"], reg=reg,
        seed=seeds["am"], colour=colour, l2=feat["l2"], device=device, progress=progress)
    am_probs = torch.softmax(am_logits, -1)
    log.info("activation maximization: %.1f s, objective %.2f -> %.2f, mean softmax of the target class %.3f",
             time.perf_counter() - started, am_history[0], am_history[-1],
             am_probs[torch.arange(num_classes), :, torch.arange(num_classes)].mean())

    picks = pick_images(model, test_images, test_labels, feat["images"])
    originals = test_images[picks].float() / 255

    started = time.perf_counter()
    car, car_objective = caricature(
        model, originals, layers, target=feat["caricature_target"], channel=feat["caricature_channel"],
        steps=feat["caricature_steps"], lr=feat["lr"], reg=reg, seed=seeds["caricature"], colour=colour,
        progress=progress)
    log.info("caricatures: %.1f s, objective per layer before %s after %s", time.perf_counter() - started,
             car_objective[0].mean(1).cpu().numpy().round(3), car_objective[1].mean(1).cpu().numpy().round(3))

    started = time.perf_counter()
    inv, inv_error = invert(
        model, originals, layers, steps=feat["inversion_steps"], lr=feat["lr"], reg=reg, seed=seeds["inversion"],
        alpha=feat["alpha"], alpha_weight=feat["alpha_weight"], tv_weight=feat["tv_weight"], colour=colour,
        progress=progress)
    log.info("inversions: %.1f s, relative representation error per layer %s", time.perf_counter() - started,
             inv_error.mean(1).cpu().numpy().round(4))

    arrays = {
        "am_images": am, "am_logits": am_logits, "am_history": torch.tensor(am_history),
        "originals": originals, "original_labels": test_labels[picks], "original_index": picks,
        "caricatures": car, "caricature_objective": car_objective,
        "inversions": inv, "inversion_error": inv_error,
    }
    arrays = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    target = feat["caricature_target"]
    arrays.update({
        "layers": np.array([layer.removeprefix("net.") for layer in layers]),
        "classes": np.array(classes),
        "model": np.array(name),
        "caricature_target": np.array(target + ("" if target == "layer" else f" {feat['caricature_channel']}")),
    })
    return arrays
