"""The class-pair mislabel design: which pairs are confused and how labels are swapped."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["BASELINE", "mislabel_pairs", "pair_name", "parse_pair", "mislabel_labels", "per_model_class_table"]

BASELINE = "none"
"""Name of the population trained without mislabelling."""


def mislabel_pairs(num_classes: int) -> list[tuple[int, int]]:
    """All unordered pairs ``(a, b)``, ``a < b``, of ``num_classes`` classes (45 for 10)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return list(itertools.combinations(range(num_classes), 2))


def pair_name(pair: tuple[int, int] | None) -> str:
    """Wildcard value of a pair: ``"3-5"``, or ``"none"`` for the baseline."""
    if pair is None:
        return BASELINE
    a, b = sorted(pair)
    return f"{a}-{b}"


def parse_pair(name: str, num_classes: int | None = None) -> tuple[int, int] | None:
    """Inverse of :func:`pair_name`; ``None`` for the baseline.

    Raises ``ValueError`` for anything that is not ``"a-b"`` with distinct class indices
    ``0 <= a < b < num_classes``, or ``"none"``.
    """
    if name == BASELINE:
        return None
    try:
        a, b = (int(x) for x in name.split("-"))
    except ValueError:
        raise ValueError(f"pair must be 'A-B' with class indices A < B, or 'none'; got {name!r}") from None
    if name != f"{a}-{b}":
        raise ValueError(f"pair {name!r} is not in canonical form {a}-{b} (no padding, signs or spaces)")
    if not 0 <= a < b or (num_classes is not None and b >= num_classes):
        raise ValueError(
            f"pair {name!r} is not two distinct class indices A < B in [0, {num_classes})"
        )
    return a, b


def mislabel_labels(
    labels: np.ndarray, pair: tuple[int, int] | None, seed: int, fraction: float = 0.5
) -> np.ndarray:
    """Training labels with a random ``fraction`` of class a labelled b and of b labelled a.

    Exactly ``floor(fraction * n_a)`` images of a (chosen uniformly without replacement) get
    label b, and likewise for b; every other label is unchanged. The choice depends only on
    ``seed`` (one seed per replicate gives independent replicates). ``pair=None`` returns a
    copy of ``labels``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mislabel fraction must be in (0, 1], got {fraction}")
    out = np.array(labels, dtype=np.int64, copy=True)
    if pair is None:
        return out
    a, b = pair
    rng = np.random.default_rng(seed)
    for source, target in ((a, b), (b, a)):
        members = np.flatnonzero(labels == source)
        if members.size == 0:
            raise ValueError(f"class {source} of pair {pair} has no training images")
        chosen = rng.choice(members, size=int(fraction * members.size), replace=False)
        out[chosen] = target
    return out


def per_model_class_table(
    pairs: Sequence[str],
    replicates: Sequence[int],
    seeds: Sequence[int],
    classes: Sequence[str],
    metrics: Mapping[str, np.ndarray],
) -> pd.DataFrame:
    """The tidy table of a population: one row per (model, true class).

    Member k was trained for pair ``pairs[k]`` as replicate ``replicates[k]`` from init seed
    ``seeds[k]``. ``metrics`` holds per-member arrays as returned by
    :func:`nnprobe.population.class_metrics`: ``accuracy``/``logloss_bits`` ``(K, C)``,
    ``confusion``/``mean_probs`` ``(K, C, C)`` and ``n_images`` ``(C,)``. Columns: pair,
    pair_a, pair_b (-1 for the baseline), replicate, seed, class, class_name, n_images,
    accuracy, logloss_bits, pred_0..pred_{C-1} (prediction counts: the confusion row),
    prob_0..prob_{C-1} (mean softmax over the class's test images).
    """
    num_classes = len(classes)
    rows = []
    for k, (pair, replicate, seed) in enumerate(zip(pairs, replicates, seeds, strict=True)):
        parsed = parse_pair(pair, num_classes)
        a, b = parsed if parsed is not None else (-1, -1)
        for c in range(num_classes):
            row = {
                "pair": pair,
                "pair_a": a,
                "pair_b": b,
                "replicate": int(replicate),
                "seed": int(seed),
                "class": c,
                "class_name": str(classes[c]),
                "n_images": int(metrics["n_images"][c]),
                "accuracy": float(metrics["accuracy"][k, c]),
                "logloss_bits": float(metrics["logloss_bits"][k, c]),
            }
            row.update({f"pred_{j}": int(metrics["confusion"][k, c, j]) for j in range(num_classes)})
            row.update({f"prob_{j}": float(metrics["mean_probs"][k, c, j]) for j in range(num_classes)})
            rows.append(row)
    return pd.DataFrame(rows)
