"""Tables of the adversarial study, built from the per-model records the training and attack
rules write: the zoo (Table 1's columns), adversarial training by regime, and the choice of
example images shown for every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["load_examples", "zoo_table", "adversarial_training_summary", "examples_on_every_model"]


def load_examples(path: str) -> dict[str, np.ndarray]:
    """The arrays of an attack's examples file (rule attack_zoo_model): index, label, target,
    success, distortion, c, adversarial, seconds."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def zoo_table(metrics: Sequence[Mapping], examples: Sequence[Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """One row per model: training and test error, minimal distortion, attack counts and times, and
    whether the network ended at chance (the flag of its training record).

    ``metrics[i]`` is model i's training record (model, train_error, test_error,
    train_seconds); ``examples[i]`` its attack (success, distortion, seconds). The mean and
    median minimal distortion are over the images whose attack succeeded; images the model
    already gets wrong count with distortion 0 (0% accuracy needs no change) and are also
    counted in ``already_wrong``.
    """
    rows = []
    for m, ex in zip(metrics, examples, strict=True):
        success, distortion = np.asarray(ex["success"]), np.asarray(ex["distortion"])
        found = distortion[success]
        rows.append({
            "model": m["model"],
            "train_error": m["train_error"],
            "test_error": m["test_error"],
            "mean_min_distortion": float(found.mean()) if found.size else float("nan"),
            "median_min_distortion": float(np.median(found)) if found.size else float("nan"),
            "attacked": int(success.size),
            "already_wrong": int((distortion == 0).sum()),
            "failed": int((~success).sum()),
            "train_seconds": m["train_seconds"],
            "attack_seconds": float(ex["seconds"]),
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
    correctly and every attack moved (success with distortion > 0), first ones first."""
    everywhere = np.logical_and.reduce([np.asarray(ex["success"]) & (np.asarray(ex["distortion"]) > 0)
                                        for ex in examples])
    return np.flatnonzero(everywhere)[:count]
