"""Seeds derived from names, so that every random choice is reproducible from config + wildcards."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


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
