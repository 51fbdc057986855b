"""Seeds derived from names, so that every random choice is reproducible from config + wildcards."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "seeded_subset"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (config seed, rule, wildcards, replicate, role).

    The parts are joined with a separator that cannot occur in their ``str`` and hashed with
    SHA-256, so that e.g. ``derive_seed(0, "mislabel", "3-5", 7, "init")`` is the same on every
    machine and in every packing of members into populations, and distinct roles of the same
    member (initialisation, data order, labels) get unrelated streams.
    """
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seeded_subset(n: int, count: int, seed: int) -> np.ndarray:
    """The sorted indices of ``min(count, n)`` items drawn without replacement from ``range(n)``.

    A random subset, not the first ones: datasets are often stored class by class (an image
    folder is), and the first ``count`` images would then be of the first classes only.
    """
    if n < 1 or count < 1:
        raise ValueError(f"n and count must be >= 1, got {n}, {count}")
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(int(n), size=min(int(count), int(n)), replace=False)).astype(np.int64)
