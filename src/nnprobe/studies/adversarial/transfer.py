"""Transfer of adversarial examples (Szegedy et al. 2013, Tables 2-4): the error of every
example set on every model, with Wilson intervals, Gaussian-noise controls, and examples
magnified to a distortion.

How the controls meet the box [0, 1]. The paper lists a noise row's distortion as its stddev
(Table 2: "Gaussian noise, stddev=0.1 ... 0.1") and names the magnified rows of Table 4
"amplified to stddev=0.1", which only unclipped perturbations are (clipping makes the realised
RMS smaller on MNIST's mostly black images: 0.074 for stddev 0.1 and 0.216 for 0.3 in
docs/runs/2026-12-02-adversarial-mnist-cpu; and clipped noise is no longer zero-mean: on a black
pixel it adds sigma / sqrt(2 pi), +0.04 at stddev 0.1 and +0.12 at 0.3). The paper does not say
whether it clipped. ``clipping`` (config key
``adversarial.control_clipping``) chooses: ``"unclipped"`` (the perturbation as stated; pixels
may leave [0, 1], which the networks accept), ``"clipped"`` (``clip(., 0, 1)``, realised RMS
reported), or ``"both"`` (a row of each; the unclipped row is the one compared with the paper).
Adversarial examples themselves are in the box: the attack's L-BFGS-B keeps them there.
"""

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
from ...stats import mean_interval, wilson_interval
from .design import unit_pixels
from .records import adversarial_rows, attack_counts

__all__ = [
    "CLIPPING",
    "ErrorMatrix",
    "cross_model_error_matrix",
    "cross_model_table",
    "cross_training_set_tables",
    "gaussian_noise_control",
    "magnification_curve",
    "magnify_to_rms",
    "rates_with_intervals",
]

CLIPPING = ("unclipped", "clipped", "both")
"""How noise rows and magnified examples meet the box (config key ``adversarial.control_clipping``)."""


def _clip_variants(clipping: str) -> list[bool]:
    if clipping not in CLIPPING:
        raise ValueError(f"clipping (config key adversarial.control_clipping) must be one of {CLIPPING}, "
                         f"got {clipping!r}")
    return {"unclipped": [False], "clipped": [True], "both": [False, True]}[clipping]


def gaussian_noise_control(x: torch.Tensor, std: float, seed: int, clip: bool = False) -> torch.Tensor:
    """``x + N(0, std^2)`` per pixel, clipped to [0, 1] if ``clip``: the noise rows of Szegedy et al. (2013).

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (same values
    on every device, and the same with and without clipping), in x's dtype. Unclipped, its RMS
    distortion is ``std`` up to sampling, as the paper's tables list it; clipped, it is smaller
    (measure it with :func:`rms_distortion`).
    """
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std}")
    check_images(x, "x")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype)
    noisy = x + std * noise.to(x.device)
    return noisy.clamp(0, 1) if clip else noisy


def magnify_to_rms(x_adv: torch.Tensor, x: torch.Tensor, rms: float, clip: bool = False) -> torch.Tensor:
    """``x + rms * (x' - x) / ||x' - x||`` per example, clipped to [0, 1] if ``clip`` (Table 4's magnification).

    Szegedy et al. (2013), Sec. 4.2, on Table 4: "In the last experiment, we magnify the effect
    of our distortion by using the examples x + 0.1 (x' - x) / ||x' - x|| rather than x'. This
    magnifies the distortion on average by 40%, from stddev 0.06 to 0.1." We read ``||.||`` as
    the paper's own distortion measure, ``sqrt(sum r^2 / n)`` (its "stddev", here
    :func:`rms_distortion`): then every example's perturbation keeps its direction and gets RMS
    exactly ``rms``, which is what "from stddev 0.06 to 0.1" and the table's rows "amplified to
    stddev=0.1" say. With ``||.||`` the Euclidean norm the formula would *shrink* an MNIST
    perturbation 28-fold (RMS 0.1 / sqrt(784) = 0.0036); "on average by 40%" fits neither
    reading (0.06 to 0.1 is +67%). Unclipped, the result may leave [0, 1] where the perturbation
    pushes a grey pixel past the box (black pixels only ever get lighter and white ones
    darker, so the box binds rarely); ``clip`` clips it, and its realised RMS is then at most
    ``rms``. Examples with ``x' == x`` are returned unchanged.
    """
    if not rms > 0:
        raise ValueError(f"rms must be > 0, got {rms}")
    delta = x_adv.to(x.dtype) - x
    d = rms_distortion(x_adv, x)
    scale = torch.where(d > 0, rms / d.clamp_min(1e-30), torch.zeros_like(d)).view((-1,) + (1,) * (x.ndim - 1))
    out = x + scale * delta
    return out.clamp(0, 1) if clip else out


@dataclass(frozen=True)
class ErrorMatrix:
    """``error[i, j]``: error rate of example set ``rows[i]`` fed to model ``columns[j]``."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    error: np.ndarray  # (len(rows), len(columns)), float64 in [0, 1]

    def frame(self, distortions: Mapping[str, np.ndarray], sizes: Mapping[str, int],
              already_wrong: Mapping[str, int] | None = None, confidence: float = 0.95) -> pd.DataFrame:
        """A pandas DataFrame: ``examples``; ``distortion`` (the mean of ``distortions[row]``, every
        example's RMS distortion) with its t interval ``distortion_low`` / ``distortion_high``;
        ``n``; ``already_wrong`` (the images left out of a row because its model misclassified
        them unperturbed; 0 where not given); one error rate per model; then each model's Wilson
        interval, columns ``"<model> low"`` and ``"<model> high"``
        (:func:`~nnprobe.stats.wilson_interval` of ``round(error * n)`` errors in ``n``)."""
        already_wrong = already_wrong or {}
        means = {r: mean_interval(distortions[r], confidence) for r in self.rows}
        n = np.array([sizes[r] for r in self.rows])
        table = pd.DataFrame(
            {"examples": list(self.rows), "distortion": [means[r][0] for r in self.rows],
             "distortion_low": [means[r][1] for r in self.rows], "distortion_high": [means[r][2] for r in self.rows],
             "n": n, "already_wrong": [int(already_wrong.get(r, 0)) for r in self.rows]}
        )
        low, high = wilson_interval(np.rint(self.error * n[:, None]), n[:, None], confidence)
        bounds = {}
        for j, c in enumerate(self.columns):
            bounds[f"{c} low"], bounds[f"{c} high"] = low[:, j], high[:, j]
        return pd.concat([table, pd.DataFrame(self.error, columns=list(self.columns)), pd.DataFrame(bounds)], axis=1)

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


def _noise_rows(clean: torch.Tensor, labels: torch.Tensor, noise_std: Sequence[float], clipping: str, seed: int,
                rule: str) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The Gaussian-noise rows of a table: ``{row: (images, labels, base images)}``, the noise seeded
    by ``(seed, rule, std)`` and the same for a std's unclipped and clipped rows."""
    rows = {}
    for std in noise_std:
        for clip in _clip_variants(clipping):
            row = f"Gaussian noise, stddev={std:g}" + (", clipped" if clip else "")
            rows[row] = (gaussian_noise_control(clean, std, derive_seed(seed, rule, "noise", std), clip), labels, clean)
    return rows


def cross_model_table(models: Mapping[str, nn.Module], examples: Mapping[str, Mapping[str, np.ndarray]],
                      clean: torch.Tensor, labels: torch.Tensor, noise_std: Sequence[float], seed: int,
                      clipping: str = "unclipped"):
    """Szegedy et al. (2013), Table 2: every example set's error on every model, with intervals.

    ``examples[name]`` is the attack of model ``name`` on the attacked images ``clean`` (true
    ``labels``): arrays ``success``, ``correct``, ``adversarial``, ``label``, ``distortion``.
    Rows: each model's adversarial examples (:func:`adversarial_rows`: images it misclassified
    unperturbed are left out and counted in ``already_wrong``), the clean images and Gaussian
    noise of every ``noise_std`` (seeded by ``(seed, std)``; unclipped, clipped or both, see
    ``clipping`` in the module's docstring). Columns: :meth:`ErrorMatrix.frame`'s.
    """
    sets, set_labels, distortions, wrong = {}, {}, {}, {}
    for name, ex in examples.items():
        ok = adversarial_rows(ex)
        row = f"{name} examples"
        sets[row] = torch.from_numpy(np.asarray(ex["adversarial"])[ok]).to(clean.device)
        set_labels[row] = torch.from_numpy(np.asarray(ex["label"])[ok]).to(clean.device)
        distortions[row] = np.asarray(ex["distortion"])[ok]
        wrong[row] = attack_counts(ex)["already_wrong"]
    sets["clean images"], set_labels["clean images"] = clean, labels
    distortions["clean images"] = np.zeros(len(labels))
    for row, (images, y, base) in _noise_rows(clean, labels, noise_std, clipping, seed, "cross_model_table").items():
        sets[row], set_labels[row] = images, y
        distortions[row] = rms_distortion(images, base).double().cpu().numpy()
    matrix = cross_model_error_matrix(models, sets, set_labels)
    return matrix.frame(distortions, {r: len(set_labels[r]) for r in matrix.rows}, wrong)


def _model_sets(examples: Mapping[str, Mapping[str, np.ndarray]], test_images: np.ndarray, device):
    """Per model: its adversarial examples, their true labels and clean images (test images it had right)."""
    sets = {}
    for label, ex in examples.items():
        ok = adversarial_rows(ex)
        adv = torch.from_numpy(np.asarray(ex["adversarial"])[ok]).to(device)
        y = torch.from_numpy(np.asarray(ex["label"])[ok]).to(device)
        sets[label] = (adv, y, unit_pixels(test_images[np.asarray(ex["index"])[ok]], device))
    return sets


def cross_training_set_tables(models: Mapping[str, nn.Module], metrics: Mapping[str, Mapping],
                              examples: Mapping[str, Mapping[str, np.ndarray]], test_images: np.ndarray,
                              test_labels: np.ndarray, noise_std: Sequence[float], magnify_rms: float, seed: int,
                              device: torch.device | str, clipping: str = "unclipped", confidence: float = 0.95):
    """Szegedy et al. (2013), Tables 3 and 4: models trained on the disjoint halves P1 and P2.

    ``models``, ``metrics`` and ``examples`` are keyed by the model's display name ("FC100-100-10
    (P1)"); ``metrics`` holds its training record (trainset, p1_error, p2_error, test_error,
    test_images), ``examples`` its attack on test images (``index`` into ``test_images`` and
    ``test_labels``; every model was attacked on the same images). Returns the models table
    (Table 3: errors with Wilson intervals over the test images, mean minimal distortion over
    :func:`adversarial_rows` with its t interval, counts) and the error matrix (Table 4) of every
    model's examples, the same magnified to RMS ``magnify_rms`` (:func:`magnify_to_rms`;
    unclipped, clipped or both by ``clipping``), and Gaussian noise of every ``noise_std``, fed
    to every model.
    """
    rows, sets, set_labels, bases, wrong, distortions = [], {}, {}, {}, {}, {}
    made = _model_sets(examples, test_images, device)
    index = None
    for label, ex in examples.items():
        m, index = metrics[label], np.asarray(ex["index"])
        adv, y, x = made[label]
        found = np.asarray(ex["distortion"])[adversarial_rows(ex)]
        mean, low, high = mean_interval(found, confidence)
        tested = int(m.get("test_images", 0))
        err_low, err_high = wilson_interval(round(m["test_error"] * tested), tested, confidence)
        rows.append({
            "model": label, "trained_on": m["trainset"].upper(), "p1_error": m["p1_error"], "p2_error": m["p2_error"],
            "test_error": m["test_error"], "test_error_low": float(err_low), "test_error_high": float(err_high),
            "mean_min_distortion": mean, "distortion_low": low, "distortion_high": high,
            "attacked": int(np.asarray(ex["success"]).size), **attack_counts(ex),
        })
        variants = {f"{label} examples": adv}
        for clip in _clip_variants(clipping):
            name = f"{label} examples magnified to RMS {magnify_rms:g}" + (", clipped" if clip else "")
            variants[name] = magnify_to_rms(adv, x, magnify_rms, clip)
        for row, images in variants.items():
            sets[row], set_labels[row], bases[row] = images, y, x
            wrong[row] = attack_counts(ex)["already_wrong"]
    if index is None:
        raise ValueError("cross_training_set_tables needs the examples of at least one model")
    clean = unit_pixels(test_images[index], device)
    y = torch.from_numpy(np.asarray(test_labels)[index]).to(device)
    for row, (images, labels, base) in _noise_rows(clean, y, noise_std, clipping, seed,
                                                   "cross_training_set_tables").items():
        sets[row], set_labels[row], bases[row] = images, labels, base
    matrix = cross_model_error_matrix(models, sets, set_labels)
    for r in matrix.rows:
        distortions[r] = rms_distortion(sets[r], bases[r]).double().cpu().numpy()
    frame = matrix.frame(distortions, {r: len(set_labels[r]) for r in matrix.rows}, wrong, confidence)
    return pd.DataFrame(rows), frame


@torch.no_grad()
def magnification_curve(models: Mapping[str, nn.Module], examples: Mapping[str, Mapping[str, np.ndarray]],
                        test_images: np.ndarray, rms_values: Sequence[float], device: torch.device | str,
                        clip: bool = False, confidence: float = 0.95) -> pd.DataFrame:
    """How transfer grows with magnification: every model's examples magnified to every RMS, on every model.

    One row per (source model, RMS, model fed): ``source``, ``rms`` (the target of
    :func:`magnify_to_rms`; NaN for the examples as made), ``realised_rms`` (their mean),
    ``model``, ``n``, ``error`` and its Wilson interval. It says whether Table 4's pattern (a
    model's examples, magnified, fool the other model trained on the same half far more often
    than the one trained on the other half) holds at some magnification, not only at 0.1.
    """
    out = []
    for source, (adv, y, x) in _model_sets(examples, test_images, device).items():
        variants = [(float("nan"), adv)] + [(float(r), magnify_to_rms(adv, x, r, clip)) for r in rms_values]
        for rms, images in variants:
            realised = float(rms_distortion(images, x).mean()) if len(y) else float("nan")
            for model_name, model in models.items():
                error = error_rate(model, images, y) if len(y) else float("nan")
                low, high = wilson_interval(round(error * len(y)) if len(y) else 0, len(y), confidence)
                out.append({"source": source, "rms": rms, "realised_rms": realised, "model": model_name, "n": len(y),
                            "error": error, "error_low": float(low), "error_high": float(high)})
    return pd.DataFrame(out)


def rates_with_intervals(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """An error-matrix table laid out for people: every rate and the mean distortion with its interval.

    ``table`` is :meth:`ErrorMatrix.frame`'s (columns ``"<model> low"`` and ``"<model>
    high"`` beside each model's rate). Rates become ``"12.3 [10.4, 14.5]"`` in percent, the
    distortion ``"0.0612 [0.0598, 0.0626]"``; the interval columns go.
    """
    models = [c for c in table.columns if f"{c} low" in table.columns]
    out = table[["examples", "n", "already_wrong"]].copy()
    out.insert(1, "RMS distortion", [f"{d:.4f} [{lo:.4f}, {hi:.4f}]" for d, lo, hi in
                                     zip(table["distortion"], table["distortion_low"], table["distortion_high"])])
    for m in models:
        out[f"{m} (%)"] = [f"{100 * e:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
                           for e, lo, hi in zip(table[m], table[f"{m} low"], table[f"{m} high"])]
    return out
