"""Tables of the adversarial study, built from the per-model records the training and attack
rules write: the zoo (Table 1's columns), adversarial training by regime, and the choice of
example images shown for every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["adversarial_rows", "adversarial_training_summary", "attack_counts", "examples_on_every_model",
           "load_examples", "nearest_distortions", "zoo_table"]


def load_examples(path: str) -> dict[str, np.ndarray]:
    """The arrays of an attack's examples file (rule attack_zoo_model): index, split, label,
    correct, target, success, distortion, c, adversarial, seconds, and the nearest-target
    attack's nearest_target, nearest_success, nearest_distortion, nearest_seconds when it ran."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def adversarial_rows(example: Mapping[str, np.ndarray]) -> np.ndarray:
    """The images whose adversarial example counts: the attack succeeded on an image the model
    classified correctly unperturbed (an already-misclassified image is wrong without any change)."""
    return np.asarray(example["success"], bool) & np.asarray(example["correct"], bool)


def attack_counts(example: Mapping[str, np.ndarray]) -> dict[str, int]:
    """``already_wrong``: the images the model misclassified unperturbed (left out of every mean);
    ``failed``: the images it classified right whose attack reached no target."""
    correct, success = np.asarray(example["correct"], bool), np.asarray(example["success"], bool)
    return {"already_wrong": int((~correct).sum()), "failed": int((correct & ~success).sum())}


def nearest_distortions(example: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The nearest-target attack's distortions over the images the model classified right and
    that attack moved (None when the attack did not run)."""
    if "nearest_distortion" not in example:
        return None
    kept = np.asarray(example["correct"], bool) & np.asarray(example["nearest_success"], bool)
    return np.asarray(example["nearest_distortion"])[kept]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def zoo_table(metrics: Sequence[Mapping], examples: Sequence[Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Szegedy et al. (2013), Table 1: one row per model, training and test error, minimal
    distortion, attack counts and times, and whether the network ended at chance.

    ``metrics[i]`` is model i's training record (model, train_error, test_error,
    train_seconds, at_chance); ``examples[i]`` its attack (:func:`~.attacks.attack_record`:
    correct, success, distortion, seconds, and the nearest_* arrays when that attack ran). The
    mean and median minimal distortion are over :func:`adversarial_rows`; images the model
    misclassified unperturbed are counted in ``already_wrong`` and left out, images it classified
    right whose attack reached no target in ``failed``. ``nearest_target_distortion`` is the mean
    of the nearest-target attack over the images classified right (NaN when it did not run).
    """
    rows = []
    for m, ex in zip(metrics, examples, strict=True):
        found = np.asarray(ex["distortion"])[adversarial_rows(ex)]
        near = nearest_distortions(ex)
        nearest_mean, nearest_seconds = (float("nan"), 0.0) if near is None else (_mean(near), float(ex["nearest_seconds"]))
        rows.append({
            "model": m["model"],
            "train_error": m["train_error"],
            "test_error": m["test_error"],
            "mean_min_distortion": _mean(found),
            "median_min_distortion": float(np.median(found)) if found.size else float("nan"),
            "nearest_target_distortion": nearest_mean,
            "attacked": int(np.asarray(ex["success"]).size),
            **attack_counts(ex),
            "train_seconds": m["train_seconds"],
            "attack_seconds": float(ex["seconds"]) + nearest_seconds,
            "at_chance": bool(m.get("at_chance", False)),
        })
    return pd.DataFrame(rows)


def adversarial_training_summary(networks: pd.DataFrame) -> pd.DataFrame:
    """Test and training error of every regime over its networks (mean, sd, range), in regime order.

    ``networks`` has one row per trained network with columns regime, test_error, train_error,
    train_seconds.
    """
    return (
        networks.groupby("regime", sort=False)
        .agg(
            networks=("test_error", "size"),
            mean_test_error=("test_error", "mean"),
            sd_test_error=("test_error", "std"),
            min_test_error=("test_error", "min"),
            max_test_error=("test_error", "max"),
            mean_train_error=("train_error", "mean"),
            mean_train_seconds=("train_seconds", "mean"),
        )
        .reset_index()
    )


def examples_on_every_model(examples: Sequence[Mapping[str, np.ndarray]], count: int) -> np.ndarray:
    """Positions (in the attacked subset) of up to ``count`` images that every model classified
    correctly and whose attack succeeded (:func:`adversarial_rows`), first ones first."""
    everywhere = np.logical_and.reduce([adversarial_rows(ex) for ex in examples])
    return np.flatnonzero(everywhere)[:count]
