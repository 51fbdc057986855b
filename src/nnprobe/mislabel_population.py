"""Members of the mislabel study's populations: one pair's replicates, or a pack of pairs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .mislabel import mislabel_labels, parse_pair
from .population import Member
from .seeds import derive_seed

__all__ = ["mislabel_members"]


def mislabel_members(
    pairs: Sequence[str],
    labels: np.ndarray,
    num_classes: int,
    seed: int,
    replicates: int,
    fraction: float = 0.5,
) -> list[Member]:
    """The ``replicates`` members of every pair in ``pairs``, pair by pair.

    Member (pair, r) is seeded from ``(seed, "mislabel", pair, r, role)`` for its
    initialisation, its data order and its labels alone, so it is the same network whichever
    pack of pairs it is trained in.
    """
    members = []
    for pair in pairs:
        parsed = parse_pair(pair, num_classes)
        for r in range(replicates):
            members.append(
                Member(
                    name=f"{pair}/r{r:03d}",
                    init_seed=derive_seed(seed, "mislabel", pair, r, "init"),
                    order_seed=derive_seed(seed, "mislabel", pair, r, "order"),
                    labels=mislabel_labels(labels, parsed, derive_seed(seed, "mislabel", pair, r, "labels"), fraction),
                )
            )
    return members
