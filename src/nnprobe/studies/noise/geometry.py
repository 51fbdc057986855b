"""Where noise lands in a network's feature space, and why: the analyses of the noise study.

The cosine distance between class-mean feature vectors and the minimum spanning tree over
them, the split of logits into ``W phi(x)`` and the bias ``b``, the maximum softmax
probability (an out-of-distribution score: Hendrycks & Gimpel 2017), and the "clutter" of a
class (mean distance to its centroid and the participation-ratio dimension of its PCA
spectrum; Gao et al. 2017, Recanatesi et al. 2019). Pure numpy/scipy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["cosine_distance", "cosine_distance_matrix", "minimum_spanning_tree", "group_means", "softmax",
           "max_softmax", "predicted_fractions", "bias_split", "bias_check", "pca_spectrum", "participation_ratio",
           "mean_distance_to_centroid", "clutter", "dominant_agreement"]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``d = (1 - cos(a, b)) / 2`` in [0, 1]: 0 same direction, 1/2 orthogonal, 1 opposite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("cosine distance is undefined for a zero vector")
    return float(np.clip((1.0 - a @ b / (na * nb)) / 2.0, 0.0, 1.0))


def cosine_distance_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise ``(1 - cos)/2`` between the rows of ``vectors`` ``(n, d)``; zero diagonal."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    if (norms == 0).any():
        raise ValueError(f"rows {np.flatnonzero(norms == 0).tolist()} are zero vectors; cosine distance is undefined")
    u = v / norms[:, None]
    d = np.clip((1.0 - u @ u.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(d, 0.0)
    return d


def minimum_spanning_tree(distances: np.ndarray) -> list[tuple[int, int, float]]:
    """Edges ``(i, j, weight)`` with ``i < j`` of a minimum spanning tree of a complete graph (Prim 1957).

    ``distances`` is a symmetric ``(n, n)`` matrix; every off-diagonal entry is an edge (zero
    weights included). O(n^2); ties go to the lowest index. Edges are returned in the order
    Prim adds them, starting from node 0.
    """
    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    if d.ndim != 2 or d.shape != (n, n) or not np.allclose(d, d.T) or not np.isfinite(d).all():
        raise ValueError(f"distances must be a finite symmetric square matrix, got shape {d.shape}")
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = d[0].copy()
    parent = np.zeros(n, dtype=int)
    edges = []
    for _ in range(n - 1):
        candidates = np.where(in_tree, np.inf, best)
        j = int(np.argmin(candidates))
        i = int(parent[j])
        edges.append((min(i, j), max(i, j), float(d[i, j])))
        in_tree[j] = True
        closer = ~in_tree & (d[j] < best)
        best[closer] = d[j][closer]
        parent[closer] = j
    return edges


def group_means(features: np.ndarray, groups: np.ndarray, order: Sequence) -> np.ndarray:
    """Mean feature vector of each group in ``order`` (rows of ``features`` labelled by ``groups``)."""
    features, groups = np.asarray(features, dtype=np.float64), np.asarray(groups)
    means = []
    for g in order:
        mask = groups == g
        if not mask.any():
            raise ValueError(f"group {g!r} has no rows")
        means.append(features[mask].mean(axis=0))
    return np.stack(means)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """Maximum softmax probability of every row (Hendrycks & Gimpel 2017's baseline OOD score)."""
    return softmax(logits).max(axis=1)


def predicted_fractions(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of rows whose argmax is each class, shape ``(num_classes,)``."""
    pred = np.asarray(logits).argmax(axis=1)
    return np.bincount(pred, minlength=num_classes)[:num_classes] / max(len(pred), 1)


def bias_split(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the logits of the last layer, ``z = W phi(x) + b``, into ``(W phi(x), b)``.

    ``features`` ``(N, d)``, ``weight`` ``(K, d)``, ``bias`` ``(K,)``; returns the weight term
    ``(N, K)`` and the bias ``(K,)``.
    """
    features, weight, bias = (np.asarray(a, dtype=np.float64) for a in (features, weight, bias))
    if weight.ndim != 2 or features.shape[1] != weight.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(
            f"shapes do not fit z = W phi + b: phi {features.shape}, W {weight.shape}, b {bias.shape}; "
            "expected phi (N, d), W (K, d), b (K,)"
        )
    return features @ weight.T, bias


def bias_check(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> dict[str, float | int | bool]:
    """Does the bias alone predict where a probe set lands?

    With ``z = W phi + b``: the dominant class (most frequent argmax of ``z``), its share, the
    argmax of ``b`` alone, whether that is the dominant class, the share of images whose
    ``W phi`` alone has the dominant argmax, and the dominant class's mean weight term and
    bias relative to the mean over classes (which of the two makes it win on average).
    """
    term, b = bias_split(features, weight, bias)
    logits = term + b
    k = weight.shape[0]
    fractions = np.bincount(logits.argmax(axis=1), minlength=k) / len(logits)
    dominant = int(fractions.argmax())
    mean_term = term.mean(axis=0)
    return {
        "dominant": dominant,
        "dominant_fraction": float(fractions[dominant]),
        "bias_argmax": int(b.argmax()),
        "bias_predicts_dominant": bool(b.argmax() == dominant),
        "weight_term_dominant_fraction": float((term.argmax(axis=1) == dominant).mean()),
        "dominant_weight_term_excess": float(mean_term[dominant] - mean_term.mean()),
        "dominant_bias_excess": float(b[dominant] - b.mean()),
    }


def pca_spectrum(x: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending) of the sample covariance of the rows of ``x`` ``(n, d)``, via the SVD."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise ValueError(f"a PCA spectrum needs at least 2 samples, got {len(x)}")
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return s**2 / (len(x) - 1)


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``PR = (sum lambda)^2 / sum lambda^2``: an effective number of dimensions (Gao et al. 2017).

    1 when one direction holds all the variance, ``d`` when ``d`` directions share it equally.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if (lam < -1e-12 * max(1.0, float(np.abs(lam).max(initial=0)))).any():
        raise ValueError("eigenvalues of a covariance must be non-negative")
    total = (lam**2).sum()
    if total == 0:
        raise ValueError("participation ratio of an all-zero spectrum is undefined")
    return float(lam.sum() ** 2 / total)


def mean_distance_to_centroid(x: np.ndarray) -> float:
    """Mean Euclidean distance of the rows of ``x`` to their mean."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return float(np.linalg.norm(x - x.mean(axis=0), axis=1).mean())


def clutter(x: np.ndarray) -> dict[str, float]:
    """How spread out a set of points is: ``mean_distance`` to its centroid and PCA ``participation_ratio``."""
    return {"mean_distance": mean_distance_to_centroid(x), "participation_ratio": participation_ratio(pca_spectrum(x))}


def dominant_agreement(dominants: Sequence[int]) -> dict[str, float | int | bool]:
    """Across models: the most common dominant class, the share of models that have it, all the same?"""
    dominants = [int(d) for d in dominants]
    if not dominants:
        raise ValueError("no models given")
    (mode, count), = Counter(dominants).most_common(1)
    return {"models": len(dominants), "mode": mode, "mode_fraction": count / len(dominants),
            "distinct": len(set(dominants)), "all_same": len(set(dominants)) == 1}
