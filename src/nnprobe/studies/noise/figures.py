"""Figures of the noise study: predicted classes, minimum spanning trees, distances to noise,
the two-class networks, AUROC and clutter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plotting import PAIR_COLOR, save_figure

__all__ = ["noise_predicted_classes", "noise_mst", "noise_distance_to_noise", "noise_binary", "noise_auroc",
           "noise_clutter"]


_SOURCE_LABELS = {"resnet18": "ResNet-18", "resnet18_binary": "ResNet-18 (2 classes)",
                  "keras_cnn": "mislabel baseline CNNs", "vgg_cnn": "mislabel baseline VGG CNNs"}


def _pred_columns(rows: pd.DataFrame) -> list[str]:
    """The ``pred_*`` columns that the networks in ``rows`` have (in table order)."""
    return [c for c in rows.columns if c.startswith("pred_") and rows[c].notna().all()]


def noise_predicted_classes(groups: pd.DataFrame, agreement: pd.DataFrame, source: str, stem: Path) -> list[Path]:
    """Share of every probe set predicted as each class, one panel per set, every network shown.

    Up to 10 networks: one bar per network and class; more (a population): a box per class
    over networks with the networks as dots. The title of a panel gives the most common
    dominant class, how many networks share it and the mean max-softmax confidence.
    """
    sub = groups[(groups["source"] == source) & (groups["kind"] == "noise")]
    if sub.empty:
        raise ValueError(f"no probe-set rows of source {source!r}; sources are {sorted(groups['source'].unique())}")
    sets = list(dict.fromkeys(sub["group"]))
    cols = _pred_columns(sub)
    names = [c.removeprefix("pred_") for c in cols]
    models = list(dict.fromkeys(sub["model"]))
    agree = agreement[agreement["source"] == source].set_index("noise_set")
    fig, axes = plt.subplots(len(sets), 1, figsize=(max(6.5, 0.75 * len(names) + 2.5), 1.55 * len(sets) + 1.0),
                             sharex=True, squeeze=False)
    x = np.arange(len(names))
    colors = plt.get_cmap("tab10")
    for ax, name in zip(axes[:, 0], sets):
        values = sub[sub["group"] == name].set_index("model").loc[models, cols].to_numpy()
        if len(models) <= 10:
            width = 0.8 / len(models)
            for m, row in enumerate(values):
                ax.bar(x - 0.4 + width * (m + 0.5), row, width, color=colors(m % 10), label=str(models[m]))
        else:
            ax.boxplot(list(values.T), positions=x, widths=0.6, showfliers=False, medianprops={"color": "black"})
            rng = np.random.default_rng(0)  # jitter only
            for c in range(len(names)):
                ax.scatter(c + rng.uniform(-0.2, 0.2, len(values)), values[:, c], s=6, color=PAIR_COLOR,
                           alpha=0.6, linewidths=0, zorder=3)
        a = agree.loc[name]
        ax.set_title(f"{name}: dominant class {a['mode_name']} in {round(a['mode_fraction'] * a['models'])} of "
                     f"{a['models']} networks; mean confidence {a['mean_confidence']:.2f}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    if len(models) <= 10:
        axes[0, 0].legend(fontsize=7, ncol=min(len(models), 5), loc="upper right", title="network", title_fontsize=7)
    axes[-1, 0].set_xticks(x, names, rotation=30 if max(map(len, names)) > 3 else 0)
    axes[-1, 0].set_xlabel("predicted class")
    fig.suptitle(f"Where noise lands: predicted classes of each probe set ({_SOURCE_LABELS.get(source, source)})")
    fig.tight_layout()
    return save_figure(fig, stem)


def _radial_tree_layout(edges: Sequence[tuple[str, str]], root: str) -> dict[str, np.ndarray]:
    """Positions of a tree's nodes: ``root`` in the centre, depth as radius, each subtree a wedge.

    Every child gets an angular wedge of its parent's wedge in proportion to its number of
    leaves, so edges never cross and labels do not overlap.
    """
    children: dict[str, list[str]] = {}
    adjacent: dict[str, list[str]] = {}
    for a, b in edges:
        adjacent.setdefault(a, []).append(b)
        adjacent.setdefault(b, []).append(a)
    order, seen = [root], {root}
    for node in order:  # breadth first from the root
        kids = sorted(n for n in adjacent.get(node, []) if n not in seen)
        children[node] = kids
        seen.update(kids)
        order.extend(kids)
    leaves: dict[str, int] = {}
    for node in reversed(order):
        leaves[node] = sum(leaves[c] for c in children[node]) or 1
    pos = {root: np.zeros(2)}

    def place(node: str, start: float, span: float, depth: int) -> None:
        for child in children[node]:
            width = span * leaves[child] / leaves[node]
            angle = start + width / 2
            pos[child] = (depth + 1) * np.array([np.cos(angle), np.sin(angle)])
            place(child, start, width, depth + 1)
            start += width

    place(root, np.pi / 2, 2 * np.pi, 0)
    return pos


def noise_mst(distances: pd.DataFrame, mst: pd.DataFrame, noise_set: str, stem: Path,
              source: str = "resnet18", max_models: int = 6) -> list[Path]:
    """The minimum spanning tree over the class means and ``noise_set``'s mean, one panel per network.

    The tree is drawn radially from the probe set's node (red, in the centre: rings are the
    number of edges from it); every edge is labelled with its cosine distance ``(1 - cos)/2``.
    """
    trees = mst[(mst["source"] == source) & (mst["noise_set"] == noise_set)]
    if trees.empty:
        raise ValueError(f"no spanning tree for source {source!r} and probe set {noise_set!r}")
    models = list(dict.fromkeys(trees["model"]))[:max_models]
    ncols = min(len(models), 3)
    nrows = -(-len(models) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.3 * nrows + 0.6), squeeze=False)
    for ax, model in zip(axes.flat, models):
        edges = trees[trees["model"] == model]
        pos = _radial_tree_layout(list(zip(edges["a"], edges["b"])), noise_set)
        for e in edges.itertuples():
            (x0, y0), (x1, y1) = pos[e.a], pos[e.b]
            noisy = noise_set in (e.a, e.b)
            ax.plot([x0, x1], [y0, y1], color="tab:red" if noisy else "0.45", linewidth=1.6 if noisy else 1.1, zorder=1)
            inner, outer = sorted((pos[e.a], pos[e.b]), key=lambda q: float(np.hypot(*q)))
            ax.annotate(f"{e.weight:.3f}", tuple(inner + 0.6 * (outer - inner)), fontsize=7, ha="center", va="center",
                        color="tab:red" if noisy else "0.25",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=2)
        for n, (x, y) in pos.items():
            is_noise = n == noise_set
            ax.scatter([x], [y], s=420 if is_noise else 300, color="tab:red" if is_noise else "tab:blue",
                       alpha=0.9 if is_noise else 0.25, edgecolors="black", linewidths=0.6, zorder=3)
            ax.annotate(n, (x, y), fontsize=8, ha="center", va="bottom" if is_noise else "center", zorder=4,
                        xytext=(0, 11) if is_noise else (0, 0), textcoords="offset points",
                        fontweight="bold" if is_noise else "normal")
        near = distances[(distances["source"] == source) & (distances["model"] == model)
                         & (distances["a"] == noise_set) & (distances["kind_b"] == "class")]
        near = near.loc[near["distance"].idxmin()]
        ax.set_title(f"{model}: nearest class {near['b']} (d = {near['distance']:.3f})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.margins(0.15)
        ax.set_aspect("equal", adjustable="datalim")
        ax.axis("off")
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    fig.suptitle(f"Minimum spanning tree of class-mean features and the {noise_set} probe set\n"
                 f"({_SOURCE_LABELS.get(source, source)}; edge labels: cosine distance (1 - cos)/2; "
                 f"rings: edges from the probe set)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def noise_distance_to_noise(distances: pd.DataFrame, stem: Path) -> list[Path]:
    """Cosine distance of each class mean to each probe set's mean, per network (dots) and averaged (line)."""
    sources = [s for s in ("resnet18", "keras_cnn", "vgg_cnn") if (distances["source"] == s).any()]
    if not sources:
        raise ValueError("no ResNet-18 or baseline-CNN rows in the distance table")
    ref = distances[distances["source"] == sources[0]]
    names = list(dict.fromkeys(ref["a"]))
    kinds = _group_kinds(distances)
    classes = [n for n in names if kinds.get(n) == "class"]
    noise_sets = [n for n in names if kinds.get(n) == "noise"]
    fig, axes = plt.subplots(len(noise_sets), len(sources), figsize=(4.8 * len(sources) + 0.8, 1.7 * len(noise_sets) + 1.0),
                             sharex=True, squeeze=False)
    x = np.arange(len(classes))
    rng = np.random.default_rng(0)  # jitter only
    for c, source in enumerate(sources):
        sub = distances[(distances["source"] == source) & distances["b"].isin(noise_sets) & distances["a"].isin(classes)]
        for r, name in enumerate(noise_sets):
            ax = axes[r, c]
            d = sub[sub["b"] == name].pivot(index="model", columns="a", values="distance").reindex(columns=classes)
            for row in d.to_numpy():
                ax.scatter(x + rng.uniform(-0.15, 0.15, len(x)), row, s=8, color=PAIR_COLOR, alpha=0.5, linewidths=0)
            ax.plot(x, d.mean().to_numpy(), color="black", marker="o", markersize=3, linewidth=1)
            ax.set_title(f"{_SOURCE_LABELS.get(source, source)}: to {name}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
            if c == 0:
                ax.set_ylabel("(1 - cos)/2", fontsize=8)
    for ax in axes[-1]:
        ax.set_xticks(x, classes, rotation=30 if max(map(len, classes)) > 3 else 0)
        ax.set_xlabel("class")
    fig.suptitle("Distance of each class's mean feature vector to the mean of each probe set\n"
                 "(dots: networks; line: mean; low = the noise looks like that class)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def _group_kinds(distances: pd.DataFrame) -> dict[str, str]:
    """Which groups of a distance table are classes and which probe sets."""
    if "kind_a" not in distances.columns:
        raise ValueError("the distance table has no kind_a column (class or noise); re-run rule noise_probe")
    return dict(zip(distances["a"], distances["kind_a"]))


def noise_binary(binary: pd.DataFrame, stem: Path) -> list[Path]:
    """Share of every other class and every probe set that the two-class networks call their first class."""
    first = str(binary["first_class"].iloc[0])
    table = binary.iloc[::-1]
    y = np.arange(len(table))
    colors = ["tab:red" if k == "noise" else PAIR_COLOR for k in table["kind"]]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(table) + 1.6))
    ax.barh(y, table["mean"], color=colors, alpha=0.75)
    ax.errorbar(table["mean"], y, xerr=[table["mean"] - table["min"], table["max"] - table["mean"]], fmt="none",
                ecolor="black", elinewidth=0.8, capsize=2)
    ax.axvline(0.5, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, [f"{g} (noise)" if k == "noise" else g for g, k in zip(table["group"], table["kind"])])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share assigned to {first} (bar: mean over {int(table['models'].max())} networks; whiskers: min-max)")
    ax.set_title(f"Networks trained on two classes only: what they call {first}")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, stem)


def noise_auroc(groups: pd.DataFrame, stem: Path) -> list[Path]:
    """AUROC of the max softmax probability separating test images from each probe set, every network a dot."""
    noise = groups[groups["kind"] == "noise"]
    sources = list(dict.fromkeys(noise["source"]))
    sets = list(dict.fromkeys(noise["group"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(sets) + 2.0), 4.0))
    width = 0.8 / len(sources)
    rng = np.random.default_rng(0)  # jitter only
    colors = plt.get_cmap("tab10")
    for s, source in enumerate(sources):
        sub = noise[noise["source"] == source]
        for i, name in enumerate(sets):
            vals = sub.loc[sub["group"] == name, "auroc"].to_numpy()
            xpos = i - 0.4 + width * (s + 0.5)
            ax.scatter(xpos + rng.uniform(-width / 4, width / 4, len(vals)), vals, s=14, color=colors(s), alpha=0.7,
                       linewidths=0, label=_SOURCE_LABELS.get(source, source) if i == 0 else None)
            ax.hlines(np.mean(vals), xpos - width / 2.5, xpos + width / 2.5, color=colors(s), linewidth=2)
    ax.axhline(0.5, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("AUROC (max softmax: test vs probe set)")
    ax.set_title("Can the confidence tell test images from noise?\n(1: every test image more confident; "
                 "0.5: chance; below: noise more confident)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, stem)


def noise_clutter(clutter: pd.DataFrame, correlations: pd.DataFrame, stem: Path, noise_set: str = "gaussian") -> list[Path]:
    """Each class's clutter (4 measures) against the share of ``noise_set`` it attracts, per source, with Spearman's rho."""
    attraction = f"attraction_{noise_set}"
    if attraction not in clutter.columns:
        attraction = next(c for c in clutter.columns if c.startswith("attraction_"))
        noise_set = attraction.removeprefix("attraction_")
    measures = {"input_mean_distance": "pixels: mean distance to centroid",
                "input_participation_ratio": "pixels: participation ratio",
                "feature_mean_distance": "features: mean distance to centroid",
                "feature_participation_ratio": "features: participation ratio"}
    sources = list(dict.fromkeys(clutter["source"]))
    fig, axes = plt.subplots(len(sources), len(measures), figsize=(3.4 * len(measures), 3.0 * len(sources) + 0.8),
                             squeeze=False)
    for r, source in enumerate(sources):
        sub = clutter[clutter["source"] == source]
        corr = correlations[(correlations["source"] == source) & (correlations["noise_set"] == noise_set)]
        corr = corr.set_index("measure")
        for c, (measure, label) in enumerate(measures.items()):
            ax = axes[r, c]
            ax.scatter(sub[measure], sub[attraction], s=20, color=PAIR_COLOR)
            for g, xv, yv in zip(sub["group"], sub[measure], sub[attraction]):
                ax.annotate(str(g), (xv, yv), fontsize=7, xytext=(3, 2), textcoords="offset points")
            rho, p = corr.loc[measure, "rho"], corr.loc[measure, "p"]
            ax.set_title(f"{label}\nSpearman rho {rho:.2f} (p {p:.2g})", fontsize=8)
            ax.set_xlabel(measure, fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel(f"{_SOURCE_LABELS.get(source, source)}\nshare of {noise_set} noise", fontsize=8)
    fig.suptitle("Does the most cluttered class attract the noise? (attraction and feature clutter: "
                 "mean over networks)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)
