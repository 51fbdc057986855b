"""The design of the adversarial study: the disjoint halves P1/P2 of the training set and pixels in [0, 1].

Randomness comes from explicit seeds, so every rule that uses a split or a subset gets the
same one.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["p1_p2_split", "unit_pixels"]


def p1_p2_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves P1 and P2 of ``range(n)`` (Szegedy et al. 2013, Table 2).

    The paper splits the 60,000 MNIST training images into P1 and P2 of 30,000 each. Here a
    permutation from ``numpy.random.default_rng(seed)`` is cut in two; each half has
    ``n // 2`` indices (for odd ``n`` the last index of the permutation is in neither) and is
    returned sorted, as int64. Same ``(n, seed)``, same halves, on every machine.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the number of training images), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    half = int(n) // 2
    return np.sort(perm[:half]).astype(np.int64), np.sort(perm[half : 2 * half]).astype(np.int64)


def unit_pixels(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` (a prepared split's) as float32 pixels in [0, 1] on ``device``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (a prepared split's), got {images.dtype}")
    # torch.tensor copies: prepared splits may be read-only arrays, which from_numpy warns about.
    return torch.tensor(images).to(device=device, dtype=torch.float32).div_(255.0)
