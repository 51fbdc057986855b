"""Tables of the visualize study: the networks (accuracy, trigger success, robust accuracy) and
the class-wise patterns of every network."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["models_table", "class_pattern_table"]


def models_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per network from the long per-network metrics (model, architecture, parameters,
    train_seconds, at_chance when known, metric, epsilon, value): clean accuracy, trigger success and one
    ``robust_accuracy_eps{e}`` column per PGD radius, networks in their first-seen order."""
    index = ["model", "architecture", "parameters", "train_seconds"] + (["at_chance"] if "at_chance" in metrics else [])
    wide = metrics.pivot_table(index=index, columns=["metric", "epsilon"], values="value").reset_index()
    wide.columns = [c[0] if c[1] == "" else (c[0] if c[0] != "robust_accuracy" else f"robust_accuracy_eps{c[1]:g}")
                    for c in wide.columns]
    order = {name: i for i, name in enumerate(dict.fromkeys(metrics["model"]))}
    return wide.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


def class_pattern_table(name: str, classes: Sequence[str], *, masks: np.ndarray, patterns: np.ndarray,
                        power: np.ndarray, in_region: np.ndarray, region_covered: np.ndarray,
                        canvas_index: np.ndarray, canvas_poisoned: np.ndarray, target: int, search_images: int,
                        eval_images: Sequence[int], seconds: float) -> pd.DataFrame:
    """One row per class of network ``name``: its pattern's predictive power and size, how much of
    it lies in the trigger region (and covers of it), its canvas, and whether it is the backdoor's
    target class. Arrays are per class (``masks`` and ``patterns`` ``(classes, 1, H, W)``)."""
    k = len(classes)
    return pd.DataFrame({
        "model": name,
        "class": np.arange(k),
        "class_name": list(classes),
        "predictive_power": np.asarray(power),
        "pattern_pixels": np.asarray(patterns).reshape(k, -1).sum(1).astype(int),
        "mask_mean": np.asarray(masks).reshape(k, -1).mean(1),
        "in_trigger_region": np.asarray(in_region),
        "trigger_region_covered": np.asarray(region_covered),
        "canvas_index": np.asarray(canvas_index),
        "canvas_poisoned": np.asarray(canvas_poisoned),
        "backdoor_target": np.arange(k) == target,
        "search_images": search_images,
        "eval_images_per_class": list(eval_images),
        "seconds": seconds,
    })
