"""Tables of the adversarial study, built from the per-model records the training and attack
rules write: the zoo (Table 1's columns), adversarial training by regime, and the choice of
example images shown for every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ...stats import mean_interval, wilson_interval
from .records import adversarial_rows, attack_counts, nearest_distortions

__all__ = ["adversarial_training_summary", "examples_on_every_model", "zoo_table"]


def _error_interval(error: float, n: int | None, confidence: float) -> tuple[float, float]:
    if not n:
        return float("nan"), float("nan")
    low, high = wilson_interval(round(error * n), n, confidence)
    return float(low), float(high)


def zoo_table(metrics: Sequence[Mapping], examples: Sequence[Mapping[str, np.ndarray]],
              confidence: float = 0.95) -> pd.DataFrame:
    """Szegedy et al. (2013), Table 1: one row per model, training and test error, minimal
    distortion, attack counts and times, and whether the network ended at chance, with intervals.

    ``metrics[i]`` is model i's training record (model, train_error, test_error, train_images,
    test_images, train_seconds, at_chance); ``examples[i]`` its attack
    (:func:`~.attacks.attack_record`: correct, success, distortion, seconds, and the nearest_*
    arrays when that attack ran). The errors get Wilson intervals over the images they were
    measured on (NaN where the record has no count); the mean minimal distortion, over
    :func:`adversarial_rows`, a Student-t interval (:func:`~nnprobe.stats.mean_interval`), and
    the median beside it. Images the model misclassified unperturbed are counted in
    ``already_wrong`` and left out, images it classified right whose attack reached no target
    in ``failed``. ``nearest_target_distortion`` is the mean (with interval) of the
    nearest-target attack over the ``nearest_target_n`` images it attacked that the model
    classified right (NaN when it did not run).
    """
    rows = []
    for m, ex in zip(metrics, examples, strict=True):
        found = np.asarray(ex["distortion"])[adversarial_rows(ex)]
        mean, low, high = mean_interval(found, confidence)
        near = nearest_distortions(ex)
        near_mean, near_low, near_high = (float("nan"),) * 3 if near is None else mean_interval(near, confidence)
        train_low, train_high = _error_interval(m["train_error"], m.get("train_images"), confidence)
        test_low, test_high = _error_interval(m["test_error"], m.get("test_images"), confidence)
        rows.append({
            "model": m["model"],
            "train_error": m["train_error"], "train_error_low": train_low, "train_error_high": train_high,
            "test_error": m["test_error"], "test_error_low": test_low, "test_error_high": test_high,
            "mean_min_distortion": mean, "distortion_low": low, "distortion_high": high,
            "median_min_distortion": float(np.median(found)) if found.size else float("nan"),
            "nearest_target_distortion": near_mean, "nearest_target_low": near_low, "nearest_target_high": near_high,
            "nearest_target_n": 0 if near is None else int(near.size),
            "attacked": int(np.asarray(ex["success"]).size),
            **attack_counts(ex),
            "train_seconds": m["train_seconds"],
            "attack_seconds": float(ex["seconds"]) + (0.0 if near is None else float(ex["nearest_seconds"])),
            "at_chance": bool(m.get("at_chance", False)),
        })
    return pd.DataFrame(rows)


def adversarial_training_summary(networks: pd.DataFrame, baseline: str = "weight_decay",
                                 confidence: float = 0.95) -> pd.DataFrame:
    """Test and training error of every regime over its networks, in regime order, against ``baseline``.

    ``networks`` has one row per trained network with columns regime, replicate, test_error,
    train_error, train_seconds. Per regime: the number of networks, the mean test error with its
    Student-t interval (:func:`~nnprobe.stats.mean_interval`), sd, min and max, the mean
    training error and time; then, against the ``baseline`` regime (weight decay alone, the
    paper's 1.6%), the mean difference of test error over the replicates both have (a replicate
    gives every regime the same initial weights and data order, so the difference is paired)
    with its t interval, and ``below_baseline_beyond_spread``: whether the regime's mean is
    below the baseline's by more than the larger of the two seed-to-seed standard deviations
    (NaN columns without a baseline).
    """
    rows = []
    base = networks[networks["regime"] == baseline].set_index("replicate")["test_error"]
    for regime, group in networks.groupby("regime", sort=False):
        errors = group["test_error"].to_numpy(dtype=float)
        mean, low, high = mean_interval(errors, confidence)
        sd = float(errors.std(ddof=1)) if errors.size > 1 else float("nan")
        row = {"regime": regime, "networks": int(errors.size), "mean_test_error": mean, "test_error_low": low,
               "test_error_high": high, "sd_test_error": sd, "min_test_error": float(errors.min()),
               "max_test_error": float(errors.max()), "mean_train_error": float(group["train_error"].mean()),
               "mean_train_seconds": float(group["train_seconds"].mean())}
        paired = (group.set_index("replicate")["test_error"] - base).dropna()
        diff, diff_low, diff_high = mean_interval(paired.to_numpy(), confidence) if len(base) else (float("nan"),) * 3
        spread = max(sd, float(base.std(ddof=1))) if len(base) > 1 and errors.size > 1 else float("nan")
        row.update({f"vs_{baseline}": diff, f"vs_{baseline}_low": diff_low, f"vs_{baseline}_high": diff_high,
                    "below_baseline_beyond_spread": bool(len(base) and base.mean() - mean > spread)
                    if np.isfinite(spread) else False})
        rows.append(row)
    return pd.DataFrame(rows)


def examples_on_every_model(examples: Sequence[Mapping[str, np.ndarray]], count: int) -> np.ndarray:
    """Positions (in the attacked subset) of up to ``count`` images that every model classified
    correctly and whose attack succeeded (:func:`adversarial_rows`), first ones first."""
    everywhere = np.logical_and.reduce([adversarial_rows(ex) for ex in examples])
    return np.flatnonzero(everywhere)[:count]
