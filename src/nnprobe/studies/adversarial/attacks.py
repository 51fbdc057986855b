"""The attacks of the adversarial study: the paper's protocol and the nearest-target extra.

Szegedy et al. (2013), Sec. 4.1, define the minimal adversarial example of an image x for *one*
target label l != label(x): the smallest r with f(x + r) = l and x + r in the box, approximated
by "minimize c|r| + loss_f(x + r, l) subject to x + r in [0, 1]^m" with box-constrained L-BFGS and
a line search over c. Their Table 1 reports the "minimum average pixel level distortion necessary
to reach 0% accuracy on the training set". :func:`paper_attack` follows that protocol:

* one target per image, a seeded random wrong label (:func:`random_wrong_labels`), the same for
  every model (every model is attacked on the same images);
* ``loss_f`` the model's own loss, the cross-entropy (temperature 1);
* the line search over c of :func:`~nnprobe.engines.lbfgs.minimal_adversarial_lbfgs` (a
  halving grid, then bisection), keeping the smallest successful distortion;
* the L-BFGS-B solution as found: no projection onto the decision boundary.

:func:`nearest_target_attack` is the stronger attack of earlier versions of this project, kept
as an extra column: every wrong label, the closest kept, a near-hinge loss (temperature 0.03)
and a final projection onto the decision boundary. Per image its distortion is at most the
paper attack's, since it searches a superset of targets and moves onto the boundary.

Images the model already misclassifies need no perturbation to be wrong: they are attacked
like the others but excluded from distortion means and transfer rates, and counted
(:func:`attack_record`'s ``correct``).

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ...engines.lbfgs import (
    AdversarialResult,
    check_labels,
    halving_c_grid,
    minimal_adversarial_any_target,
    minimal_adversarial_lbfgs,
    predicted,
)

__all__ = ["attack_record", "nearest_target_attack", "paper_attack", "random_wrong_labels"]


def random_wrong_labels(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """One uniformly random wrong label per image: ``(label + s) mod K``, ``s`` uniform on ``1..K-1``.

    Drawn from ``numpy.random.default_rng(seed)`` in the order of ``labels``: the same images and
    seed give the same targets on every machine and for every model.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-d integer array, got {labels.dtype} of shape {labels.shape}")
    if num_classes < 2 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"labels must lie in [0, {num_classes}) with num_classes >= 2, got values in "
                         f"[{labels.min() if labels.size else '-'}, {labels.max() if labels.size else '-'}]")
    shift = np.random.default_rng(int(seed)).integers(1, num_classes, size=labels.size)
    return ((labels.astype(np.int64) + shift) % num_classes).astype(np.int64)


def _search(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the c search shared by both attacks (config ``adversarial.attack``)."""
    return {"c_grid": halving_c_grid(settings["c_max"], settings["c_min"]), "max_iter": settings["max_iter"],
            "bisection_steps": settings["bisection_steps"], "batch_size": settings["batch_size"],
            "solver": settings["solver"]}


def paper_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, settings: Mapping[str, Any]) -> AdversarialResult:
    """Minimal adversarial examples for one given target per image, as Szegedy et al. (2013) measured them.

    Box-constrained L-BFGS on ``c |r|^2 + T * CE(z(x + r) / T, l)`` with ``T = settings["temperature"]``
    (1: the model's cross-entropy), the search over c of ``settings`` (``c_max``, ``c_min``,
    ``max_iter``, ``bisection_steps``, ``batch_size``, ``solver``) keeping the smallest successful distortion,
    and no projection onto the decision boundary (the solution as L-BFGS-B found it).
    """
    return minimal_adversarial_lbfgs(model, x, target, temperature=settings["temperature"], refine_steps=0,
                                     **_search(settings))


def nearest_target_attack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                          settings: Mapping[str, Any]) -> AdversarialResult:
    """The closest adversarial example over every wrong label, projected onto the decision boundary.

    ``settings`` as for :func:`paper_attack`, with ``settings["nearest_target"]`` giving its
    ``temperature`` (small: the loss tends to the hinge, whose minimiser is the closest point of
    the target region), ``refine_steps`` (bisections onto the boundary along the found
    perturbation) and ``boundary_margin`` (logit margin kept past the boundary).
    """
    extra = settings["nearest_target"]
    return minimal_adversarial_any_target(model, x, labels, temperature=extra["temperature"],
                                          refine_steps=extra["refine_steps"],
                                          boundary_margin=extra["boundary_margin"], **_search(settings))


def attack_record(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor,
                  settings: Mapping[str, Any], nearest_positions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Both attacks of one model on images ``x`` (true ``labels``, paper ``target``), as arrays.

    ``correct`` marks the images the model classifies right before any attack: only they enter
    distortion means and transfer rates. ``target``, ``success``, ``distortion``, ``c`` and
    ``adversarial`` are the paper attack's; ``nearest_*`` the nearest-target attack's (left out
    when ``settings["nearest_target"]["enabled"]`` is false), run on the images at
    ``nearest_positions`` only (default: all; it costs ``classes - 1`` paper attacks per image):
    ``nearest_attacked`` marks them, and the others have ``nearest_success`` False,
    ``nearest_distortion`` NaN and ``nearest_target`` -1. ``seconds`` and ``nearest_seconds``
    are the attacks' times.
    """
    labels = check_labels(labels, x.shape[0], "labels").to(x.device)
    target = check_labels(target, x.shape[0], "target").to(x.device)
    if bool((target == labels).any()):
        raise ValueError("every target must be a wrong label (target != label); draw them with random_wrong_labels")
    was_training = model.training
    model.eval()
    try:
        correct = predicted(model, x) == labels
    finally:
        model.train(was_training)
    started = time.perf_counter()
    paper = paper_attack(model, x, target, settings)
    record = {"correct": correct.cpu().numpy(), "target": paper.target.cpu().numpy(),
              "success": paper.success.cpu().numpy(), "distortion": paper.distortion.cpu().numpy(),
              "c": paper.c.cpu().numpy(), "adversarial": paper.adversarial.cpu().numpy().astype(np.float32),
              "seconds": np.float64(time.perf_counter() - started)}
    if settings["nearest_target"]["enabled"]:
        n = x.shape[0]
        where = np.arange(n) if nearest_positions is None else np.asarray(nearest_positions, dtype=np.int64)
        started = time.perf_counter()
        chosen = torch.from_numpy(where).to(x.device)
        nearest = nearest_target_attack(model, x[chosen], labels[chosen], settings)
        attacked = np.zeros(n, bool)
        attacked[where] = True
        success, distortion = np.zeros(n, bool), np.full(n, np.nan)
        chosen_target = np.full(n, -1, dtype=np.int64)
        success[where] = nearest.success.cpu().numpy()
        distortion[where] = nearest.distortion.cpu().numpy()
        chosen_target[where] = nearest.target.cpu().numpy()
        record.update({"nearest_attacked": attacked, "nearest_target": chosen_target, "nearest_success": success,
                       "nearest_distortion": distortion,
                       "nearest_seconds": np.float64(time.perf_counter() - started)})
    return record
