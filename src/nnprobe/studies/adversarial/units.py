"""Units of a hidden layer against random directions (Szegedy et al. 2013, Sec. 3): the test
images that maximise a natural-basis unit look as related as those of a random direction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...core.seeds import derive_seed

__all__ = ["random_directions", "top_activating_images", "unit_image_rows"]


def random_directions(dim: int, count: int, seed: int) -> np.ndarray:
    """``count`` random unit vectors in R^dim (normalised Gaussians), ``(count, dim)`` float64."""
    if dim < 1 or count < 1:
        raise ValueError(f"dim and count must be >= 1, got {dim}, {count}")
    v = np.random.default_rng(int(seed)).standard_normal((count, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def top_activating_images(
    activations: torch.Tensor | np.ndarray, direction: int | Sequence[float] | np.ndarray, k: int = 8
) -> np.ndarray:
    """Indices of the k images maximising ``<phi(x), v>`` (Szegedy et al. 2013, Sec. 3).

    ``activations`` is ``phi(x)`` of a hidden layer for N images, ``(N, D)``. ``direction``
    is a unit index i (the natural basis vector e_i: the paper's "unit" inspection) or a
    vector v of length D (a random direction; its scale does not change the ranking).
    Returns k int64 indices, the highest projection first (ties: lower index first).
    """
    a = (
        activations.detach().cpu().double().numpy()
        if isinstance(activations, torch.Tensor)
        else np.asarray(activations, dtype=np.float64)
    )
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"activations must have shape (N, D) with N >= 1, got {a.shape}")
    if isinstance(direction, (int, np.integer)) and not isinstance(direction, bool):
        if not 0 <= direction < a.shape[1]:
            raise ValueError(f"unit index must be in [0, {a.shape[1]}), got {direction}")
        scores = a[:, int(direction)]
    else:
        v = np.asarray(direction, dtype=np.float64)
        if v.shape != (a.shape[1],) or not np.all(np.isfinite(v)) or not np.any(v):
            raise ValueError(
                f"direction must be a unit index or a finite non-zero vector of length {a.shape[1]}, got shape {v.shape}"
            )
        scores = a @ v
    if not 1 <= k <= a.shape[0]:
        raise ValueError(f"k must be in [1, {a.shape[0]}] (the number of images), got {k}")
    return np.argsort(-scores, kind="stable")[:k].astype(np.int64)


def unit_image_rows(activations: torch.Tensor, images: np.ndarray, *, units: int, directions: int, top_k: int,
                    seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The top ``top_k`` images of ``units`` random units and of ``directions`` random directions.

    ``activations`` ``(N, D)`` is a hidden layer's response to ``images`` ``(N, ...)`` in [0, 1].
    Units are drawn without replacement and directions as normalised Gaussians, each from its
    own stream of ``seed``. Returns ``{"unit i": images, "random direction j": images}`` in that
    order, and the chosen unit indices.
    """
    width = activations.shape[1]
    rng = np.random.default_rng(derive_seed(seed, "units"))
    chosen = np.sort(rng.choice(width, size=min(units, width), replace=False))
    rows = {f"unit {unit}": images[top_activating_images(activations, int(unit), top_k)] for unit in chosen}
    for i, v in enumerate(random_directions(width, directions, derive_seed(seed, "directions"))):
        rows[f"random direction {i + 1}"] = images[top_activating_images(activations, v, top_k)]
    return rows, chosen
