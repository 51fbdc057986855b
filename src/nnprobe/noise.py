"""Noise probes: where do images without content land, and why?

Pure numpy/scipy functions of the noise study (issue 5): the probe sets (Gaussian noise with
the data's per-channel mean and std, uniform noise, per-image pixel-shuffled test images,
band-limited low-frequency noise, the constant mean image), the cosine distance between
class-mean feature vectors and the minimum spanning tree over them, the split of logits into
``W phi(x)`` and the bias ``b``, the AUROC of the maximum softmax probability as an
out-of-distribution score (Hendrycks & Gimpel 2017), and the "clutter" of a class (mean
distance to its centroid and the participation-ratio dimension of its PCA spectrum; Gao et
al. 2017, Recanatesi et al. 2019), with Spearman's rank correlation between clutter and the
share of noise a class attracts.

Probe images are float32 arrays ``(N, C, H, W)`` on the [0, 1] pixel scale, *not* clipped or
quantised, so that the Gaussian set has exactly the requested moments; the networks
normalise them like uint8 images divided by 255. This module imports numpy, scipy and pandas
only (no torch), so the analysis rules can use it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _stats

__all__ = [
    "PROBE_SETS",
    "gaussian_noise",
    "uniform_noise",
    "shuffled_pixels",
    "lowfreq_noise",
    "constant_image",
    "probe_sets",
    "cosine_distance",
    "cosine_distance_matrix",
    "minimum_spanning_tree",
    "group_means",
    "softmax",
    "max_softmax",
    "predicted_fractions",
    "bias_split",
    "bias_check",
    "auroc",
    "pca_spectrum",
    "participation_ratio",
    "mean_distance_to_centroid",
    "clutter",
    "spearman",
    "dominant_agreement",
    "probe_tables",
    "agreement_table",
    "binary_table",
    "clutter_table",
    "clutter_correlations",
]

#: The probe sets, in the order of the figures.
PROBE_SETS: tuple[str, ...] = ("gaussian", "uniform", "shuffled", "lowfreq", "constant")


def _check_stats(mean: Sequence[float], std: Sequence[float], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if len(shape) != 3:
        raise ValueError(f"image shape must be (C, H, W), got {tuple(shape)}")
    if mean.shape != (shape[0],) or std.shape != (shape[0],):
        raise ValueError(
            f"mean and std need one value per channel ({shape[0]} for shape {tuple(shape)}), got "
            f"{mean.shape} and {std.shape}; compute them with nnprobe.data.channel_stats"
        )
    if (std <= 0).any():
        raise ValueError(f"std must be positive per channel, got {std}")
    return mean, std


def gaussian_noise(n: int, mean: Sequence[float], std: Sequence[float], shape: Sequence[int],
                   rng: np.random.Generator) -> np.ndarray:
    """``n`` images of i.i.d. Gaussian pixels, ``x_c ~ N(mean_c, std_c^2)`` per channel (not clipped).

    After normalisation by the same mean and std (as every network here does) this is white
    standard-normal noise: the "noise with the training set's statistics" of the anecdote.
    """
    mean, std = _check_stats(mean, std, shape)
    z = rng.standard_normal((n, *shape))
    return (z * std[None, :, None, None] + mean[None, :, None, None]).astype(np.float32)


def uniform_noise(n: int, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """``n`` images of i.i.d. pixels uniform on the full pixel range [0, 1]."""
    return rng.random((n, *shape)).astype(np.float32)


def shuffled_pixels(images_u8: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` test images (drawn without replacement) with their pixel positions permuted.

    Each image gets its own permutation of its ``H*W`` positions; a pixel keeps its colour
    (channels move together). Colour histogram kept, spatial structure destroyed.
    """
    images_u8 = np.asarray(images_u8)
    if n > len(images_u8):
        raise ValueError(f"cannot draw {n} shuffled images from {len(images_u8)} test images; lower noise.probe_size")
    chosen = rng.choice(len(images_u8), size=n, replace=False)
    flat = images_u8[chosen].reshape(n, images_u8.shape[1], -1)
    perms = np.argsort(rng.random((n, flat.shape[2])), axis=1)
    shuffled = np.take_along_axis(flat, perms[:, None, :], axis=2)
    return (shuffled.reshape(n, *images_u8.shape[1:]) / 255.0).astype(np.float32)


def lowfreq_noise(n: int, mean: Sequence[float], std: Sequence[float], shape: Sequence[int],
                  cutoff: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited Gaussian noise: white noise with every spatial frequency above ``cutoff`` removed.

    ``cutoff`` is a fraction of the Nyquist frequency (0.5 cycles per pixel): the 2-D FFT of
    white noise is zeroed where ``sqrt(fy^2 + fx^2) > cutoff * 0.5`` (frequencies in cycles
    per pixel), transformed back, and every channel of the set is then scaled to the data's
    mean and std (over all images and pixels of the set).
    """
    mean, std = _check_stats(mean, std, shape)
    if not 0 < cutoff <= 1:
        raise ValueError(f"noise.lowfreq_cutoff must be in (0, 1] (a fraction of Nyquist), got {cutoff}")
    _, h, w = shape
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.rfftfreq(w), indexing="ij"))
    keep = radius <= cutoff * 0.5
    keep[0, 0] = True
    spectrum = np.fft.rfft2(rng.standard_normal((n, *shape)), axes=(-2, -1)) * keep
    x = np.fft.irfft2(spectrum, s=(h, w), axes=(-2, -1))
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    return (x * std[None, :, None, None] + mean[None, :, None, None]).astype(np.float32)


def constant_image(mean: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """The one image whose every pixel is the data's mean colour, shape ``(1, C, H, W)``."""
    mean, _ = _check_stats(mean, np.ones(len(mean)), shape)
    return np.broadcast_to(mean[None, :, None, None], (1, *shape)).astype(np.float32)


def probe_sets(names: Sequence[str], n: int, mean: Sequence[float], std: Sequence[float],
               test_images_u8: np.ndarray, seed: int, lowfreq_cutoff: float = 0.25) -> dict[str, np.ndarray]:
    """The named probe sets (``PROBE_SETS``), ``n`` images each (the constant set: one image).

    Every set is drawn from its own generator ``default_rng([seed, index of the set in
    PROBE_SETS])``, so a set does not change when others are added or removed and every
    network of the study sees the same images.
    """
    unknown = sorted(set(names) - set(PROBE_SETS))
    if unknown:
        raise ValueError(f"unknown probe sets {unknown}; allowed are {list(PROBE_SETS)}")
    shape = test_images_u8.shape[1:]
    out = {}
    for name in names:
        rng = np.random.default_rng([int(seed), PROBE_SETS.index(name)])
        if name == "gaussian":
            out[name] = gaussian_noise(n, mean, std, shape, rng)
        elif name == "uniform":
            out[name] = uniform_noise(n, shape, rng)
        elif name == "shuffled":
            out[name] = shuffled_pixels(test_images_u8, min(n, len(test_images_u8)), rng)
        elif name == "lowfreq":
            out[name] = lowfreq_noise(n, mean, std, shape, lowfreq_cutoff, rng)
        else:
            out[name] = constant_image(mean, shape)
    return out


# --------------------------------------------------------------------------- geometry of features


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


# --------------------------------------------------------------------------- outputs


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


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of a score separating ``positive`` from ``negative`` samples.

    Equals ``P(s+ > s-) + P(s+ = s-)/2`` (the Mann-Whitney U statistic divided by
    ``n+ n-``; Hanley & McNeil 1982), computed from mid-ranks so that ties count half.
    For the OOD score, positives are test images and the score is the max softmax probability.
    """
    pos, neg = np.asarray(positive, dtype=np.float64).ravel(), np.asarray(negative, dtype=np.float64).ravel()
    if not len(pos) or not len(neg):
        raise ValueError(f"AUROC needs at least one sample per side, got {len(pos)} positive and {len(neg)} negative")
    ranks = _stats.rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


# --------------------------------------------------------------------------- clutter


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


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation and its two-sided p-value (scipy's t approximation)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"Spearman's rho needs two equally long samples of at least 3, got {len(x)} and {len(y)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = _stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def dominant_agreement(dominants: Sequence[int]) -> dict[str, float | int | bool]:
    """Across models: the most common dominant class, the share of models that have it, all the same?"""
    dominants = [int(d) for d in dominants]
    if not dominants:
        raise ValueError("no models given")
    (mode, count), = Counter(dominants).most_common(1)
    return {"models": len(dominants), "mode": mode, "mode_fraction": count / len(dominants),
            "distinct": len(set(dominants)), "all_same": len(set(dominants)) == 1}


# --------------------------------------------------------------------------- one network's tables


def probe_tables(
    test_logits: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    output_names: Sequence[str],
    probes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    weight: np.ndarray,
    bias: np.ndarray,
    in_distribution: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every probe of one network, as three tidy tables.

    Groups are the test images of each true class (``kind="class"``) and each probe set
    (``kind="noise"``; ``probes`` maps its name to ``(logits, features)``). Returns

    ``groups``: one row per group: ``n``, ``mean_confidence`` (mean max softmax),
    ``pred_{name}`` (share predicted as each output), ``dominant``/``dominant_name``/
    ``dominant_fraction``, the :func:`bias_check` columns, ``auroc`` (max softmax of the
    in-distribution test images against the group; noise groups only) and the feature-space
    clutter (:func:`clutter`; NaN for a group of one image).
    ``distances``: ``(1 - cos)/2`` between every pair of group mean features (both orders).
    ``mst``: for each probe set, the minimum spanning tree over the class means and that set's
    mean (``noise_set``, ``a``, ``b``, ``weight``).

    ``in_distribution`` lists the true classes the network was trained on (all by default):
    their test images are the positives of the AUROC.
    """
    test_labels = np.asarray(test_labels)
    k = len(output_names)
    if np.asarray(weight).shape[0] != k or np.asarray(test_logits).shape[1] != k:
        raise ValueError(f"{k} output names but weight {np.shape(weight)} and logits {np.shape(test_logits)}")
    classes = list(range(len(class_names)))
    in_distribution = classes if in_distribution is None else list(in_distribution)
    positive = max_softmax(test_logits[np.isin(test_labels, in_distribution)])
    groups: list[tuple[str, str, np.ndarray, np.ndarray]] = [
        (str(class_names[c]), "class", test_logits[test_labels == c], test_features[test_labels == c]) for c in classes
    ]
    groups += [(name, "noise", np.asarray(lg), np.asarray(ft)) for name, (lg, ft) in probes.items()]
    rows = []
    for name, kind, logits, features in groups:
        if not len(logits):
            raise ValueError(f"group {name!r} has no images")
        row: dict = {"group": name, "kind": kind, "n": len(logits),
                     "mean_confidence": float(max_softmax(logits).mean())}
        row.update({f"pred_{o}": f for o, f in zip(output_names, predicted_fractions(logits, k))})
        check = bias_check(features, weight, bias)
        row["dominant"] = check.pop("dominant")
        row["dominant_name"] = str(output_names[row["dominant"]])
        row.update(check)
        row["auroc"] = auroc(positive, max_softmax(logits)) if kind == "noise" else np.nan
        spread = clutter(features) if len(features) > 1 else {"mean_distance": np.nan, "participation_ratio": np.nan}
        row["feature_mean_distance"] = spread["mean_distance"]
        row["feature_participation_ratio"] = spread["participation_ratio"]
        rows.append(row)
    table = pd.DataFrame(rows)
    names = [g[0] for g in groups]
    means = np.stack([np.asarray(g[3], dtype=np.float64).mean(axis=0) for g in groups])
    d = cosine_distance_matrix(means)
    distances = pd.DataFrame(
        [{"a": names[i], "b": names[j], "kind_a": groups[i][1], "kind_b": groups[j][1], "distance": d[i, j]}
         for i in range(len(names)) for j in range(len(names)) if i != j]
    )
    mst_rows = []
    for s, name in enumerate(probes):
        nodes = classes + [len(classes) + s]
        for i, j, w in minimum_spanning_tree(d[np.ix_(nodes, nodes)]):
            mst_rows.append({"noise_set": name, "a": names[nodes[i]], "b": names[nodes[j]], "weight": w})
    mst = pd.DataFrame(mst_rows, columns=["noise_set", "a", "b", "weight"])
    return table, distances, mst


# --------------------------------------------------------------------------- across networks


def agreement_table(groups: pd.DataFrame) -> pd.DataFrame:
    """Per source and probe set, across its networks: is the dominant class the same?

    Columns: ``models``, ``mode`` (most common dominant class, and ``mode_name``),
    ``mode_fraction`` (share of networks whose dominant class it is), ``distinct``,
    ``all_same``, and means over networks of ``dominant_fraction``, ``mean_confidence``,
    ``auroc`` and ``bias_predicts_dominant`` (the share of networks where the bias alone
    predicts the dominant class).
    """
    rows = []
    noise = groups[groups["kind"] == "noise"]
    for (source, group), sub in noise.groupby(["source", "group"], sort=False):
        agree = dominant_agreement(sub["dominant"].tolist())
        names = dict(zip(sub["dominant"], sub["dominant_name"]))
        rows.append({"source": source, "noise_set": group, **agree, "mode_name": names[agree["mode"]],
                     "mean_dominant_fraction": sub["dominant_fraction"].mean(),
                     "mean_confidence": sub["mean_confidence"].mean(), "mean_auroc": sub["auroc"].mean(),
                     "bias_predicts_dominant": sub["bias_predicts_dominant"].mean()})
    return pd.DataFrame(rows)


def binary_table(groups: pd.DataFrame, first_class: str, source: str = "resnet18_binary") -> pd.DataFrame:
    """Share of every test class and probe set that the binary networks assign to ``first_class``.

    Output 0 of a binary network is the first of ``noise.binary_classes`` (e.g. cat); one row
    per group with the mean, standard deviation, minimum and maximum over networks.
    """
    sub = groups[groups["source"] == source]
    column = f"pred_{first_class}"
    if sub.empty or column not in sub.columns or sub[column].isna().any():
        raise ValueError(
            f"no share of {first_class!r} for source {source!r} in the probe table (sources "
            f"{sorted(groups['source'].unique())}); is {first_class!r} the first of noise.binary_classes?"
        )
    table = (sub.groupby(["group", "kind"], sort=False)[column]
             .agg(models="count", mean="mean", sd="std", min="min", max="max").reset_index())
    table.insert(2, "first_class", first_class)
    return table


def clutter_table(groups: pd.DataFrame, input_clutter: pd.DataFrame) -> pd.DataFrame:
    """Per source and class: clutter in pixel space and feature space, and the noise each class attracts.

    Feature-space clutter (``feature_mean_distance``, ``feature_participation_ratio``) and
    ``attraction_{set}`` (share of the probe set predicted as the class) are means over the
    source's networks; pixel-space clutter comes from ``input_clutter`` (rule
    noise_input_clutter). Sources whose outputs are not the classes (binary networks) are left out.
    """
    rows = []
    classes = input_clutter["group"].tolist()
    for source, sub in groups.groupby("source", sort=False):
        if not all(f"pred_{c}" in sub.columns and sub[f"pred_{c}"].notna().all() for c in classes):
            continue
        per_class = sub[sub["kind"] == "class"].groupby("group")[["feature_mean_distance",
                                                                  "feature_participation_ratio"]].mean()
        noise = sub[sub["kind"] == "noise"]
        for c, name in enumerate(classes):
            row = {"source": source, "class": c, "group": name,
                   **input_clutter.set_index("group").loc[name, ["input_mean_distance",
                                                                  "input_participation_ratio"]].to_dict(),
                   **per_class.loc[name].to_dict()}
            for set_name, s in noise.groupby("group", sort=False):
                row[f"attraction_{set_name}"] = s[f"pred_{name}"].mean()
            rows.append(row)
    return pd.DataFrame(rows)


def clutter_correlations(clutter_rows: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between each clutter measure and each probe set's attraction, per source.

    Also names the most cluttered class and the most attracting class, and whether they are
    the same ("does the most cluttered class attract the noise?").
    """
    measures = ["input_mean_distance", "input_participation_ratio", "feature_mean_distance",
                "feature_participation_ratio"]
    rows = []
    for source, sub in clutter_rows.groupby("source", sort=False):
        for attraction in [c for c in sub.columns if c.startswith("attraction_")]:
            for measure in measures:
                rho, p = spearman(sub[measure], sub[attraction])
                rows.append({"source": source, "noise_set": attraction.removeprefix("attraction_"),
                             "measure": measure, "classes": len(sub), "rho": rho, "p": p,
                             "most_cluttered": sub.loc[sub[measure].idxmax(), "group"],
                             "most_attracting": sub.loc[sub[attraction].idxmax(), "group"],
                             "most_cluttered_attracts": bool(sub[measure].idxmax() == sub[attraction].idxmax())})
    return pd.DataFrame(rows)
