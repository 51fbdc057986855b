"""Transfer of adversarial examples (Szegedy et al. 2013, Tables 2-4): the error of every
example set on every model, Gaussian-noise controls, and examples rescaled to a distortion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...core.seeds import derive_seed
from ...engines.evaluation import error_rate
from ...engines.lbfgs import check_images, check_labels, rms_distortion
from .design import unit_pixels
from .tables import adversarial_rows, attack_counts

__all__ = [
    "ErrorMatrix",
    "cross_model_error_matrix",
    "cross_model_table",
    "cross_training_set_tables",
    "gaussian_noise_control",
    "rescale_to_rms",
]


def gaussian_noise_control(x: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """``clip(x + N(0, std^2), 0, 1)``, the noise rows of Szegedy et al. (2013), Tables 1-3.

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (same values
    on every device), in x's dtype. Clipping makes the realised RMS distortion somewhat
    smaller than ``std``; measure it with :func:`rms_distortion`.
    """
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std}")
    check_images(x, "x")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype)
    return (x + std * noise.to(x.device)).clamp(0, 1)


def rescale_to_rms(x_adv: torch.Tensor, x: torch.Tensor, rms: float, steps: int = 50) -> torch.Tensor:
    """Rescale each perturbation ``x' - x`` so that the clipped result has RMS distortion ``rms``.

    Szegedy et al. (2013), Table 2, also feed the adversarial examples rescaled to RMS
    distortion 0.1 to every model. We return ``clip(x + s * (x' - x), 0, 1)`` with a per-example ``s > 0``
    found by bisection (``steps`` halvings): the RMS of the clipped image is non-decreasing in
    ``s``, so this hits ``rms`` exactly unless clipping saturates first (then the largest
    reachable RMS is returned). Examples with ``x' == x`` are returned unchanged.
    """
    if not rms > 0:
        raise ValueError(f"rms must be > 0, got {rms}")
    d = rms_distortion(x_adv, x)
    delta = x_adv.to(x.dtype) - x
    moving = d > 0
    scale_shape = (-1,) + (1,) * (x.ndim - 1)

    def at(s: torch.Tensor) -> torch.Tensor:
        return (x + s.view(scale_shape) * delta).clamp(0, 1)

    lo = torch.zeros_like(d)
    hi = torch.where(moving, rms / d.clamp_min(1e-30), torch.zeros_like(d))
    for _ in range(60):  # grow hi until the clipped RMS reaches the target (or saturates)
        short = moving & (rms_distortion(at(hi), x) < rms)
        if not short.any():
            break
        lo = torch.where(short, hi, lo)
        hi = torch.where(short, hi * 2, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = rms_distortion(at(mid), x) < rms
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return torch.where(moving.view(scale_shape), at(hi), x)


@dataclass(frozen=True)
class ErrorMatrix:
    """``error[i, j]``: error rate of example set ``rows[i]`` fed to model ``columns[j]``."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    error: np.ndarray  # (len(rows), len(columns)), float64 in [0, 1]

    def frame(self, distortion: Mapping[str, float], sizes: Mapping[str, int],
              already_wrong: Mapping[str, int] | None = None):
        """A pandas DataFrame: columns ``examples``, ``distortion``, ``n``, ``already_wrong`` (the
        images left out of a row because its model misclassified them unperturbed; 0 where not
        given), then one per model."""
        already_wrong = already_wrong or {}
        table = pd.DataFrame(
            {"examples": list(self.rows), "distortion": [distortion[r] for r in self.rows],
             "n": [sizes[r] for r in self.rows], "already_wrong": [int(already_wrong.get(r, 0)) for r in self.rows]}
        )
        return pd.concat([table, pd.DataFrame(self.error, columns=list(self.columns))], axis=1)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{row: {column: error}}``."""
        return {r: {c: float(self.error[i, j]) for j, c in enumerate(self.columns)} for i, r in enumerate(self.rows)}


@torch.no_grad()
def cross_model_error_matrix(
    models: Mapping[str, nn.Module],
    examples_by_model: Mapping[str, torch.Tensor],
    labels: torch.Tensor | Mapping[str, torch.Tensor],
    batch_size: int = 1000,
) -> ErrorMatrix:
    """Cross-model generalisation of adversarial examples (Szegedy et al. 2013, Tables 1-3).

    ``examples_by_model`` maps a row name to an example set: the adversarial examples made
    for a model (named like it), or any other set such as Gaussian-noise controls or
    rescaled examples. Entry ``(i, j)`` is the fraction of set i that model j does *not*
    classify as the true label, ``mean(argmax f_j(x) != y)``. ``labels`` are the true labels,
    one tensor for every set or a mapping from row name to labels. Rows and columns keep
    the mappings' order. Models are evaluated in eval mode, in chunks of ``batch_size``.
    """
    if not models or not examples_by_model:
        raise ValueError("models and examples_by_model must each hold at least one entry")
    error = np.zeros((len(examples_by_model), len(models)))
    for i, (row, xs) in enumerate(examples_by_model.items()):
        if isinstance(labels, Mapping) and row not in labels:
            raise ValueError(f"labels has no entry for example set {row!r}; it has {sorted(labels)}")
        y = labels[row] if isinstance(labels, Mapping) else labels
        y = check_labels(y, xs.shape[0], f"labels of {row!r}").to(xs.device)
        for j, model in enumerate(models.values()):
            error[i, j] = error_rate(model, xs, y, batch_size)
    return ErrorMatrix(tuple(examples_by_model), tuple(models), error)


def cross_model_table(models: Mapping[str, nn.Module], examples: Mapping[str, Mapping[str, np.ndarray]],
                      clean: torch.Tensor, labels: torch.Tensor, noise_std: Sequence[float], seed: int):
    """Szegedy et al. (2013), Table 2: every example set's error on every model.

    ``examples[name]`` is the attack of model ``name`` on the attacked images ``clean`` (true
    ``labels``): arrays ``success``, ``correct``, ``adversarial``, ``label``, ``distortion``.
    Rows: each model's adversarial examples (:func:`adversarial_rows`: images it misclassified
    unperturbed are left out and counted in ``already_wrong``), the clean images and Gaussian
    noise of every ``noise_std`` (seeded by ``(seed, std)``). Columns: examples, mean RMS
    distortion, n, already_wrong, one error rate per model.
    """
    device = clean.device
    sets, set_labels, distortion, wrong = {}, {}, {}, {}
    for name, ex in examples.items():
        ok = adversarial_rows(ex)
        row = f"{name} examples"
        sets[row] = torch.from_numpy(np.asarray(ex["adversarial"])[ok]).to(device)
        set_labels[row] = torch.from_numpy(np.asarray(ex["label"])[ok]).to(device)
        distortion[row] = float(np.mean(np.asarray(ex["distortion"])[ok])) if ok.any() else float("nan")
        wrong[row] = attack_counts(ex)["already_wrong"]
    sets["clean images"], set_labels["clean images"], distortion["clean images"] = clean, labels, 0.0
    for std in noise_std:
        row = f"Gaussian noise, stddev={std:g}"
        sets[row] = gaussian_noise_control(clean, std, derive_seed(seed, "cross_model_table", "noise", std))
        set_labels[row] = labels
        distortion[row] = float(rms_distortion(sets[row], clean).mean())
    matrix = cross_model_error_matrix(models, sets, set_labels)
    return matrix.frame(distortion, {r: len(set_labels[r]) for r in matrix.rows}, wrong)


def cross_training_set_tables(models: Mapping[str, nn.Module], metrics: Mapping[str, Mapping],
                              examples: Mapping[str, Mapping[str, np.ndarray]], test_images: np.ndarray,
                              test_labels: np.ndarray, noise_std: Sequence[float], rescale_rms: float, seed: int, device: torch.device | str):
    """Szegedy et al. (2013), Tables 3 and 4: models trained on the disjoint halves P1 and P2.

    ``models``, ``metrics`` and ``examples`` are keyed by the model's display name ("FC100-100-10
    (P1)"); ``metrics`` holds its training record (trainset, p1_error, p2_error, test_error),
    ``examples`` its attack on test images (``index`` into ``test_images`` and ``test_labels``; every
    model was attacked on the same images). Returns the models table (Table 3: errors, mean
    minimal distortion over :func:`adversarial_rows`, counts) and the error matrix (Table 4) of
    every model's examples, the same rescaled to RMS ``rescale_rms``, and Gaussian noise of every
    ``noise_std``, fed to every model.
    """
    rows, sets, set_labels, bases, wrong = [], {}, {}, {}, {}
    index = None
    for label, ex in examples.items():
        m = metrics[label]
        ok, index = adversarial_rows(ex), np.asarray(ex["index"])
        adv = torch.from_numpy(np.asarray(ex["adversarial"])[ok]).to(device)
        y = torch.from_numpy(np.asarray(ex["label"])[ok]).to(device)
        distortion = np.asarray(ex["distortion"])[ok]
        x = unit_pixels(test_images[index[ok]], device)
        rows.append({
            "model": label,
            "trained_on": m["trainset"].upper(),
            "p1_error": m["p1_error"],
            "p2_error": m["p2_error"],
            "test_error": m["test_error"],
            "mean_min_distortion": float(distortion.mean()) if ok.any() else float("nan"),
            "attacked": int(ok.size),
            **attack_counts(ex),
        })
        scaled = f"{label} examples at RMS {rescale_rms:g}"
        sets[f"{label} examples"], sets[scaled] = adv, rescale_to_rms(adv, x, rescale_rms)
        for row in (f"{label} examples", scaled):
            set_labels[row], bases[row], wrong[row] = y, x, attack_counts(ex)["already_wrong"]
    if index is None:
        raise ValueError("cross_training_set_tables needs the examples of at least one model")
    x = unit_pixels(test_images[index], device)
    y = torch.from_numpy(np.asarray(test_labels)[index]).to(device)
    for std in noise_std:
        row = f"Gaussian noise, stddev={std:g}"
        sets[row] = gaussian_noise_control(x, std, derive_seed(seed, "cross_training_set_tables", "noise", std))
        set_labels[row], bases[row] = y, x
    matrix = cross_model_error_matrix(models, sets, set_labels)
    distortion = {r: float(rms_distortion(sets[r], bases[r]).mean()) for r in matrix.rows}
    return pd.DataFrame(rows), matrix.frame(distortion, {r: len(set_labels[r]) for r in matrix.rows}, wrong)
