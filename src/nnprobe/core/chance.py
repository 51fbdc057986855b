"""When a trained classifier counts as at chance: the flag every training job writes beside its
metrics, and the line the figures draw.

It lives in the ground floor, not in :mod:`nnprobe.stats`, because the training jobs use it: a
rule's code inputs are the modules its script imports (:mod:`nnprobe.core.provenance`), so a
statistics module imported by a training job would retrain every network whenever a test or its
docstring changed.
"""

from __future__ import annotations

__all__ = ["chance_threshold", "at_chance"]


def chance_threshold(num_classes: int) -> float:
    """The accuracy below which a classifier of ``num_classes`` classes counts as at chance.

    Chance is ``1/K``; the threshold is a tenth of the way from chance to perfect,
    ``1/K + 0.1 (1 - 1/K)`` (0.55 for 2 classes, 0.4 for 3, 0.19 for 10): a network below it has
    learnt next to nothing, whatever the size of the test set.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    chance = 1.0 / num_classes
    return chance + 0.1 * (1.0 - chance)


def at_chance(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` is at chance for ``num_classes`` classes (:func:`chance_threshold`)."""
    return bool(accuracy < chance_threshold(num_classes))
