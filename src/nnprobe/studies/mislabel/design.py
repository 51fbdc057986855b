"""The design of the mislabel study: which labels are swapped, and the members of a population.

For every unordered pair {a, b} of classes, R replicate networks are trained with a random
half of a labelled b and half of b labelled a; the baseline "none" has clean labels. A
member's initialisation, data order and labels depend only on (config seed, pair,
replicate), never on how pairs are packed or replicates blocked into training jobs.

Two designs (config key ``mislabel.design``, :data:`~nnprobe.studies.mislabel.plan.DESIGNS`):

* ``independent``: initialisation, data order and labels are all seeded from (seed, pair,
  replicate): every network is an independent draw, and networks are compared across pairs
  by Welch's t.
* ``paired``: initialisation and data order are seeded from (seed, replicate) alone, the
  same for replicate r of every pair and of the baseline; labels still from (seed, pair,
  replicate). Replicate r of every pair is then one "block" of common random numbers (Law &
  Kelton, Simulation Modeling and Analysis, ch. 11): what the networks of a replicate share
  cancels from within-replicate contrasts (:mod:`nnprobe.studies.mislabel.paired`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...core.naming import parse_pair
from ...core.seeds import derive_seed
from ...engines.population import Member
from .plan import DESIGNS

__all__ = ["mislabel_labels", "mislabel_members", "member_seeds"]


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


def member_seeds(seed: int, pair: str, replicate: int, design: str = "independent") -> dict[str, int]:
    """The seeds of member (``pair``, ``replicate``): ``init``, ``order`` and ``labels``.

    Independent design: each from ``(seed, "mislabel", pair, replicate, role)``. Paired design:
    ``init`` and ``order`` from ``(seed, "mislabel", "paired", replicate, role)``, shared by
    replicate ``replicate`` of every pair and of the baseline; ``labels`` as in the independent
    design. The independent seeds are those of the study before the paired design existed, so
    its networks are unchanged.
    """
    if design not in DESIGNS:
        raise ValueError(f"config key mislabel.design must be one of {list(DESIGNS)}, got {design!r}")
    shared = ("paired",) if design == "paired" else (pair,)
    return {
        "init": derive_seed(seed, "mislabel", *shared, replicate, "init"),
        "order": derive_seed(seed, "mislabel", *shared, replicate, "order"),
        "labels": derive_seed(seed, "mislabel", pair, replicate, "labels"),
    }


def mislabel_members(
    pairs: Sequence[str],
    labels: np.ndarray,
    num_classes: int,
    seed: int,
    replicates: int | Sequence[int],
    fraction: float = 0.5,
    design: str = "independent",
) -> list[Member]:
    """The members of every pair in ``pairs``, pair by pair: replicates ``0 .. replicates - 1``,
    or the given replicate indices (a block).

    Member (pair, r) takes its seeds from :func:`member_seeds` (config seed, pair, replicate
    and the ``design``) alone, so it is the same network whichever pack of pairs and whichever
    block of replicates it is trained in.
    """
    indices = range(replicates) if isinstance(replicates, int) else [int(r) for r in replicates]
    members = []
    for pair in pairs:
        parsed = parse_pair(pair, num_classes)
        for r in indices:
            seeds = member_seeds(seed, pair, r, design)
            members.append(
                Member(
                    name=f"{pair}/r{r:03d}",
                    init_seed=seeds["init"],
                    order_seed=seeds["order"],
                    labels=mislabel_labels(labels, parsed, seeds["labels"], fraction),
                )
            )
    return members
