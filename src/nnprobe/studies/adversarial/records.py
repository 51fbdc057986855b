"""What an attack of the adversarial study wrote, read back: the attack file (rule attack_zoo_model),
the images whose adversarial example counts, and the counts left out. Torch-free: the network
jobs and the report jobs both read attacks through it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["adversarial_rows", "attack_counts", "load_examples", "nearest_distortions"]


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
    """The nearest-target attack's distortions over the images it attacked (``nearest_attacked``,
    all when absent) that the model classified right and that it moved (None when it did not run)."""
    if "nearest_distortion" not in example:
        return None
    kept = np.asarray(example["correct"], bool) & np.asarray(example["nearest_success"], bool)
    return np.asarray(example["nearest_distortion"])[kept]
