"""Figures of the studies (PDF + PNG), drawn with matplotlib's Agg backend.

Every figure function takes data and an output ``stem`` (a path without suffix),
writes ``stem.pdf`` and ``stem.png`` (150 dpi), closes the figure and returns the
written paths. This module imports only numpy, pandas, matplotlib and scipy.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402
from scipy.cluster import hierarchy as _hier  # noqa: E402

__all__ = [
    "save_figure",
    "t_heatmap",
    "information_heatmap",
    "accuracy_by_pair",
    "class_dendrogram",
    "error_matrix_heatmap",
    "distortion_distributions",
    "adversarial_example_grid",
    "error_by_regime",
    "top_image_rows",
]

DPI = 150
_GREY = "0.82"
_BASELINE_COLOR = "tab:orange"
_PAIR_COLOR = "tab:blue"

Span = tuple[str, int, int]


def save_figure(fig: matplotlib.figure.Figure, stem: Path) -> list[Path]:
    """Write ``fig`` to ``stem.pdf`` and ``stem.png`` (150 dpi) atomically and close it.

    Suffixes are appended to the full name, parent directories are created; each file
    is written to a temp name in the same directory and renamed into place.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for fmt in ("pdf", "png"):
            path = stem.with_name(f"{stem.name}.{fmt}")
            # same directory -> atomic os.replace; default permissions (not mkstemp's 0600)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            written.append(path)
    finally:
        plt.close(fig)
    return written


# --------------------------------------------------------------------------- heatmaps


def _matrix(df: pd.DataFrame, value: str) -> tuple[np.ndarray, list[str]]:
    """K x K matrix of ``df[value]`` (rows target, columns other) and class names."""
    for col in ("target", "other", value):
        if col not in df.columns:
            raise ValueError(f"heatmap needs column {col!r}; got {list(df.columns)}")
    if "comparison" in df.columns and df["comparison"].nunique() > 1:
        raise ValueError(
            f"heatmap needs a table of one comparison, got {sorted(df['comparison'].unique())}"
        )
    k = int(max(df["target"].max(), df["other"].max())) + 1
    m = np.full((k, k), np.nan)
    m[df["target"].to_numpy(int), df["other"].to_numpy(int)] = df[value].to_numpy(float)
    np.fill_diagonal(m, np.nan)
    names = [str(i) for i in range(k)]
    for idx_col, name_col in (("target", "target_name"), ("other", "other_name")):
        if name_col in df.columns:
            for i, n in df[[idx_col, name_col]].drop_duplicates(idx_col).itertuples(index=False):
                names[int(i)] = str(n)
    return m, names


def _check_order(order: Sequence[int] | None, k: int) -> list[int]:
    if order is None:
        return list(range(k))
    order = [int(i) for i in order]
    if sorted(order) != list(range(k)):
        raise ValueError(f"order must be a permutation of 0..{k - 1}, got {order}")
    return order


def _class_heatmap(
    m: np.ndarray,
    names: list[str],
    order: Sequence[int] | None,
    spans: Sequence[Span] | None,
    *,
    cmap: str,
    norm: mcolors.Normalize,
    cbar_label: str,
    title: str,
    marks: np.ndarray | None = None,
    mark_label: str | None = None,
    annotate_fmt: str | None = None,
    ylabel: str = "target class T",
    xlabel: str = "other class C",
) -> matplotlib.figure.Figure:
    """Shared layout: rows target T, columns other C, NaN grey, optional group separators."""
    k = m.shape[0]
    order = _check_order(order, k)
    m = m[np.ix_(order, order)]
    labels = [names[i] for i in order]
    side = max(5.5, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.4, side))
    cm = matplotlib.colormaps[cmap].with_extremes(bad=_GREY)
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cm, norm=norm, aspect="equal", interpolation="nearest")
    ax.set_xticks(range(k), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    fs = 7 if k <= 10 else 6
    if annotate_fmt is not None and k <= 12:
        for i in range(k):
            for j in range(k):
                v = m[i, j]
                if np.isinf(v) and i != j:  # e.g. infinite KL: masked (grey), say so
                    ax.text(j, i, "∞" if v > 0 else "−∞", ha="center", va="center", fontsize=fs)
                elif np.isfinite(v):
                    r, g, b, _ = cm(norm(v))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(j, i, format(v, annotate_fmt), ha="center", va="center",
                            fontsize=fs, color="white" if dark else "black")
    if marks is not None:
        mk = marks[np.ix_(order, order)]
        ii, jj = np.nonzero(mk)
        # Off-centre when values are annotated, so the star does not cover the number.
        dy = -0.3 if annotate_fmt is not None and k <= 12 else 0.0
        ax.scatter(jj, ii + dy, marker="*", s=60 if dy == 0 else 30, c="black",
                   edgecolors="white", linewidths=0.5, zorder=3)
        if mark_label:
            title = f"{title}\n★ = {mark_label}"
    if spans:
        for _, start, stop in spans:
            for pos in (start, stop):
                if 0 < pos < k:
                    ax.axhline(pos - 0.5, color="black", linewidth=1.5)
                    ax.axvline(pos - 0.5, color="black", linewidth=1.5)
        top = ax.secondary_xaxis("top")
        top.set_xticks([(a + b - 1) / 2 for _, a, b in spans], [n for n, _, _ in spans])
        top.tick_params(length=0, labelsize=9)
        right = ax.secondary_yaxis("right")
        right.set_yticks([(a + b - 1) / 2 for _, a, b in spans], [n for n, _, _ in spans],
                         rotation=90, va="center")
        right.tick_params(length=0, labelsize=9)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.08 if spans else 0.04)
    cb.set_label(cbar_label)
    ax.set_title(title, pad=22 if spans else 8)
    fig.tight_layout()
    return fig


def _comparison(df: pd.DataFrame) -> tuple[str, str]:
    """Group names (X, Y) of the table's comparison, e.g. ("confused", "clean")."""
    comp = str(df["comparison"].iloc[0]) if "comparison" in df.columns and len(df) else ""
    x, _, y = comp.partition("_vs_")
    return (x, y) if y else ("confused", "clean")


_GROUP_TEXT = {"confused": "pair holds C, not T", "clean": "pair holds neither T nor C",
               "baseline": "no mislabelling"}


def _other_label(gx: str, gy: str) -> str:
    return f"other class C ({gx}: {_GROUP_TEXT.get(gx, gx)}; {gy}: {_GROUP_TEXT.get(gy, gy)})"


def _symmetric_norm(m: np.ndarray) -> mcolors.Normalize:
    finite = np.abs(m[np.isfinite(m)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return mcolors.TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def t_heatmap(
    welch: pd.DataFrame,
    stem: Path,
    order: list[int] | None = None,
    spans: Sequence[Span] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Heatmap of Welch t (rows target T, columns other C) from a ``welch_table``.

    Diverging colormap centred at 0 with symmetric limits (red: T more accurate with
    C confused, blue: less); a star marks cells with ``q_bh < 0.05``; the diagonal is
    grey. ``order`` permutes rows and columns alike; ``spans`` ``(name, start, stop)``
    (positions after ordering) draw group separators and labels. Titles and the
    colorbar label follow the table's comparison: for the ``clean_vs_baseline``
    control, >0 reads "higher in clean than baseline models".
    """
    m, names = _matrix(welch, "t")
    marks = None
    if "q_bh" in welch.columns:
        q, _ = _matrix(welch, "q_bh")
        marks = np.nan_to_num(q, nan=1.0) < 0.05
    gx, gy = _comparison(welch)
    if gx == "confused":
        cbar = "Welch t (T accuracy higher with C confused >0)"
        default_title = f"Effect of confusing C on T's accuracy ({gx} vs {gy} models)"
    else:  # clean_vs_baseline: a control, C is not confused in either group
        cbar = f"Welch t (T accuracy higher in {gx} than {gy} models >0)"
        default_title = f"T's accuracy, {gx} vs {gy} models (control)"
    fig = _class_heatmap(
        m, names, order, spans, cmap="RdBu_r", norm=_symmetric_norm(m), cbar_label=cbar,
        title=default_title if title is None else title, marks=marks, mark_label="BH q < 0.05",
        ylabel="target class T (accuracy on T's test images)", xlabel=_other_label(gx, gy),
    )
    return save_figure(fig, stem)


def information_heatmap(
    info: pd.DataFrame,
    stem: Path,
    order: list[int] | None = None,
    spans: Sequence[Span] | None = None,
    value: str = "delta_logloss_bits",
) -> list[Path]:
    """Heatmap of an ``information_table`` column in bits (rows target T, columns other C).

    ``delta_logloss_bits`` (signed) uses a diverging colormap centred at 0; the KL
    columns (non-negative) a sequential one from 0. Cell values are printed when
    K <= 12.
    """
    m, names = _matrix(info, value)
    gx, gy = _comparison(info)
    if value == "delta_logloss_bits":
        norm = _symmetric_norm(m)
        cmap = "PuOr_r"
        label = "Δ log2-loss (bits)"
        title = (f"Δ log2-loss on T's images, {gx} − {gy} models\n"
                 f"(>0: {gx} models need more bits per image of T)")
    else:
        finite = m[np.isfinite(m)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        norm = mcolors.Normalize(vmin=0.0, vmax=vmax)
        cmap = "viridis"
        what = {"kl_bits": "mean softmax", "kl_counts_bits": "pooled predictions, add-one smoothed"}
        label = f"KL({gx} ‖ {gy}) (bits)"
        title = (f"KL divergence of the predicted distribution on T's images\n"
                 f"({what.get(value, value)}), {gx} ‖ {gy} models")
    amax = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
    fmt = ".2f" if amax >= 0.1 else ".3f"
    fig = _class_heatmap(m, names, order, spans, cmap=cmap, norm=norm, cbar_label=label,
                         title=title, annotate_fmt=fmt,
                         ylabel="target class T (measured on T's test images)",
                         xlabel=_other_label(gx, gy))
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- accuracy


def _model_accuracy(pmc: pd.DataFrame) -> pd.DataFrame:
    """Overall accuracy per model: sum(accuracy * n_images) / sum(n_images) over classes."""
    for col in ("pair", "replicate", "class", "accuracy", "n_images"):
        if col not in pmc.columns:
            raise ValueError(f"accuracy_by_pair needs column {col!r}; got {list(pmc.columns)}")
    keys = ["pair", "replicate"] + (["seed"] if "seed" in pmc.columns else [])
    d = pmc.assign(_correct=pmc["accuracy"] * pmc["n_images"])
    g = d.groupby(keys, sort=False)[["_correct", "n_images"]].sum().reset_index()
    g["model_accuracy"] = g["_correct"] / g["n_images"]
    return g[["pair", "model_accuracy"]]


def _pair_label(pair: str, names: dict[int, str]) -> str:
    if pair == "none":
        return "none (baseline)"
    try:
        a, b = (int(x) for x in str(pair).split("-"))
    except ValueError:
        return str(pair)
    return f"{names.get(a, a)}–{names.get(b, b)}"


def accuracy_by_pair(per_model_class: pd.DataFrame, stem: Path) -> list[Path]:
    """Overall test accuracy of each model, grouped by mislabelled pair.

    One box (quartiles, whiskers 1.5 IQR) plus one point per replicate for each pair,
    pairs sorted by median accuracy; the baseline ("none") is drawn in orange with a
    dashed line at its median. Overall accuracy weights classes by ``n_images``.
    """
    acc = _model_accuracy(per_model_class)
    names: dict[int, str] = {}
    if "class_name" in per_model_class.columns:
        for c, n in per_model_class[["class", "class_name"]].drop_duplicates("class").itertuples(index=False):
            names[int(c)] = str(n)
    med = acc.groupby("pair")["model_accuracy"].median().sort_values(kind="stable")
    pairs = list(med.index)
    data = [acc.loc[acc["pair"] == p, "model_accuracy"].to_numpy() for p in pairs]
    labels = [_pair_label(p, names) for p in pairs]
    n = len(pairs)
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 0.24 * n + 1.4)))
    bp = ax.boxplot(data, orientation="horizontal", tick_labels=labels, widths=0.6,
                    showfliers=False, patch_artist=True, medianprops={"color": "black"})
    rng = np.random.default_rng(0)  # jitter only
    for i, (p, vals) in enumerate(zip(pairs, data)):
        color = _BASELINE_COLOR if p == "none" else _PAIR_COLOR
        bp["boxes"][i].set(facecolor=mcolors.to_rgba(color, 0.25), edgecolor=color)
        ax.scatter(vals, i + 1 + rng.uniform(-0.15, 0.15, len(vals)), s=10, color=color,
                   alpha=0.8, zorder=3, linewidths=0)
    if "none" in pairs:
        i = pairs.index("none")
        ax.get_yticklabels()[i].set(color=_BASELINE_COLOR, fontweight="bold")
        ax.axvline(med["none"], color=_BASELINE_COLOR, linestyle="--", linewidth=1,
                   label="baseline median", zorder=1)
        ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=8 if n > 20 else 9)
    ax.set_xlabel("overall test accuracy of a model (classes weighted by test images)")
    ax.set_ylabel("mislabelled pair (half of each class labelled as the other)")
    reps = acc.groupby("pair").size()
    rep_txt = f"{reps.min()}" if reps.min() == reps.max() else f"{reps.min()}–{reps.max()}"
    ax.set_title(f"Model accuracy by mislabelled pair\n({rep_txt} replicates each, sorted by median)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(0.4, n + 0.6)
    fig.tight_layout()
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- dendrogram


def class_dendrogram(linkage: np.ndarray, class_names: Sequence[str], stem: Path) -> list[Path]:
    """Dendrogram of a class linkage (``stats.class_linkage``), leaves labelled by class name."""
    linkage = np.asarray(linkage, dtype=float)
    k = linkage.shape[0] + 1
    if len(class_names) != k:
        raise ValueError(f"linkage has {k} leaves but {len(class_names)} class names were given")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * k + 2.0), 4.5))
    _hier.dendrogram(linkage, labels=[str(c) for c in class_names], ax=ax,
                     leaf_rotation=45, leaf_font_size=10, color_threshold=0,
                     above_threshold_color="0.2")
    for lab in ax.get_xticklabels():
        lab.set(ha="right", rotation_mode="anchor")
    ax.set_ylabel("distance d = (t_ab + t_ba)/2 − min\n"
                  "(Welch t, average linkage;\nlow: confusing one hurts the other)",
                  fontsize=9)
    top = float(np.nanmax(linkage[:, 2])) if len(linkage) else 1.0
    ax.set_ylim(-0.03 * top, 1.05 * top)  # the first merge is at d ~ 0: keep it visible
    ax.set_xlabel("class")
    ax.set_title("Classes clustered by the mutual effect of confusing them")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- adversarial study


def _gray(img: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] -> something imshow draws: (H, W) or (H, W, 3)."""
    img = np.asarray(img, dtype=float)
    if img.ndim == 3:
        return img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)).clip(0, 1)
    return img


def error_matrix_heatmap(table: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Heatmap of an error-rate table (Szegedy et al. 2013, Tables 1-3) with every cell's percentage.

    ``table`` has a column ``examples`` (the row's example set), a column ``distortion`` (its
    mean RMS distortion), optionally ``n`` (its size) and one column per model with the error
    rate in [0, 1].
    """
    for col in ("examples", "distortion"):
        if col not in table.columns:
            raise ValueError(f"table needs columns 'examples' and 'distortion'; it has {list(table.columns)}")
    models = [c for c in table.columns if c not in ("examples", "distortion", "n")]
    err = table[models].to_numpy(dtype=float) * 100
    rows = [f"{e}  (RMS {d:.3f})" for e, d in zip(table["examples"], table["distortion"])]
    fig, ax = plt.subplots(figsize=(1.1 * len(models) + 3.5, 0.45 * len(rows) + 1.6))
    im = ax.imshow(err, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for i in range(err.shape[0]):
        for j in range(err.shape[1]):
            ax.text(j, i, f"{err[i, j]:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if err[i, j] > 60 else "black")
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("model the examples are fed to")
    ax.set_ylabel("example set (mean RMS distortion)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="error rate (%)", fraction=0.04)
    fig.tight_layout()
    return save_figure(fig, stem)


def distortion_distributions(distortions: dict[str, np.ndarray], failures: dict[str, int], stem: Path) -> list[Path]:
    """Minimal RMS distortion per attacked image, one box + points per model, means marked.

    ``distortions[model]`` holds the distortions of the successful examples (0 for images the
    model already misclassified); ``failures[model]`` counts attacked images whose attack found
    no adversarial example. Both counts are shown in the model's label.
    """
    names = list(distortions)
    labels = [
        f"{n}\n(already wrong: {int((np.asarray(distortions[n]) == 0).sum())}, failed: {failures.get(n, 0)})"
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(7.0, 0.55 * len(names) + 1.6))
    data = [np.asarray(distortions[n], dtype=float) for n in names]
    ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False,
               medianprops={"color": "black"}, tick_labels=labels)
    ax.invert_yaxis()  # the first model on top
    rng = np.random.default_rng(0)  # jitter only
    for i, vals in enumerate(data):
        ax.scatter(vals, i + 1 + rng.uniform(-0.18, 0.18, len(vals)), s=8, alpha=0.6, color=_PAIR_COLOR, linewidths=0)
        if len(vals):
            ax.scatter([vals.mean()], [i + 1], marker="D", color=_BASELINE_COLOR, zorder=4,
                       label="mean" if i == 0 else None)
    ax.set_xlabel("minimal RMS distortion sqrt(sum (x' - x)^2 / n), pixels in [0, 1]")
    ax.set_title("Distortion needed to change each image's class (closest wrong label)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, stem)


def adversarial_example_grid(
    originals: np.ndarray,
    adversarial: dict[str, np.ndarray],
    captions: dict[str, list[str]],
    stem: Path,
    magnify: float = 10.0,
) -> list[Path]:
    """Original, adversarial and magnified difference, for every model (rows) and example.

    ``originals`` (k, C, H, W) and ``adversarial[model]`` (k, C, H, W) are in [0, 1]; the
    difference is drawn as ``0.5 + magnify * (x' - x)``, clipped (grey = unchanged).
    ``captions[model][i]`` titles example i (e.g. "7→3, 0.061").
    """
    names = list(adversarial)
    k = originals.shape[0]
    fig, axes = plt.subplots(len(names), 3 * k, figsize=(0.85 * 3 * k + 1.2, 1.05 * len(names) + 0.6), squeeze=False)
    for r, name in enumerate(names):
        for i in range(k):
            x, xa = originals[i], adversarial[name][i]
            panels = (x, xa, (0.5 + magnify * (xa - x)).clip(0, 1))
            for p, img in enumerate(panels):
                ax = axes[r, 3 * i + p]
                ax.imshow(_gray(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if p == 1:
                    ax.set_title(captions[name][i], fontsize=6, pad=2)
                if r == 0:
                    ax.set_xlabel(("original", "adversarial", f"diff ×{magnify:g}")[p], fontsize=6, labelpad=1)
                    ax.xaxis.set_label_position("top")
            if i == 0:
                axes[r, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Minimal adversarial examples (title: true→target label, RMS distortion)", fontsize=9)
    fig.tight_layout(pad=0.3, w_pad=0.1, h_pad=0.4)
    return save_figure(fig, stem)


def error_by_regime(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Test error of every replicate per training regime (points), with mean ± sd.

    ``table`` has columns ``regime`` and ``test_error`` (fraction), one row per network.
    """
    regimes = list(dict.fromkeys(table["regime"]))
    fig, ax = plt.subplots(figsize=(6.0, 0.7 * len(regimes) + 1.6))
    for i, regime in enumerate(regimes):
        vals = table.loc[table["regime"] == regime, "test_error"].to_numpy(dtype=float) * 100
        ax.scatter(vals, np.full(len(vals), i), color=_PAIR_COLOR, s=25, zorder=3, label="network" if i == 0 else None)
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        ax.errorbar([vals.mean()], [i], xerr=[sd], fmt="D", color=_BASELINE_COLOR, capsize=4, zorder=4,
                    label="mean ± sd" if i == 0 else None)
    ax.set_yticks(range(len(regimes)), [r.replace("_", " ") for r in regimes])
    ax.set_ylim(len(regimes) - 0.4, -0.6)  # the first regime on top
    ax.set_xlabel("test error (%)")
    ax.set_title("FC100-100-10: weight decay, dropout, or a pool of adversarial examples")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, stem)


def top_image_rows(rows: dict[str, np.ndarray], stem: Path, title: str) -> list[Path]:
    """One row of images per direction (``rows[label]``: (k, C, H, W) in [0, 1]), labels on the left."""
    labels = list(rows)
    k = max(v.shape[0] for v in rows.values())
    fig, axes = plt.subplots(len(labels), k, figsize=(0.8 * k + 1.6, 0.85 * len(labels) + 0.6), squeeze=False)
    for r, label in enumerate(labels):
        for i in range(k):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if i < rows[label].shape[0]:
                ax.imshow(_gray(rows[label][i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- visualize study

__all__ += ["visualize_image_grid", "robustness_curves", "class_pattern_grid"]


def _as_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A ``(C, H, W)`` image in [0, 1] as what ``imshow`` takes: ``(H, W)`` grey or ``(H, W, 3)``."""
    image = np.clip(np.asarray(image, dtype=float), 0, 1)
    if image.shape[0] == 1:
        return image[0], "gray"
    return image.transpose(1, 2, 0), None


def visualize_image_grid(
    images: np.ndarray,
    stem: Path,
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None,
    title: str,
    notes: np.ndarray | None = None,
    cell: float = 0.9,
) -> list[Path]:
    """A grid of images ``(rows, cols, C, H, W)`` in [0, 1], shown as they are (no rescaling:
    grey for one channel, RGB for three, nearest-neighbour pixels), one label per row and column
    and an optional small note in the corner of each image (``notes`` ``(rows, cols)`` of strings)."""
    images = np.asarray(images)
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + 1.4, cell * rows + 0.8), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            shown, cmap = _as_display(images[r, c])
            ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if notes is not None and str(notes[r, c]):
                ax.text(0.03, 0.03, str(notes[r, c]), transform=ax.transAxes, ha="left", va="bottom", fontsize=6,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
            if r == 0 and col_labels is not None:
                ax.set_title(str(col_labels[c]), fontsize=7, pad=2)
        axes[r, 0].set_ylabel(str(row_labels[r]), fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return save_figure(fig, stem)


def robustness_curves(metrics: pd.DataFrame, stem: Path, highlight: Sequence[str] = ("natural", "topdown")) -> list[Path]:
    """Test accuracy under PGD against the L-inf radius, one line per model (clean accuracy at 0).

    ``metrics`` has columns model, metric (``clean_accuracy`` / ``robust_accuracy``), epsilon
    (1/255 units), value, parameters. The models in ``highlight`` (the standard CNN and the
    top-down net of similar size) are drawn solid, the others dashed.
    """
    for col in ("model", "metric", "epsilon", "value", "parameters"):
        if col not in metrics.columns:
            raise ValueError(f"robustness_curves needs column {col!r}; got {list(metrics.columns)}")
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    models = list(dict.fromkeys(metrics["model"]))
    for i, model in enumerate(models):
        m = metrics[(metrics["model"] == model) & metrics["metric"].isin(["clean_accuracy", "robust_accuracy"])]
        m = m.sort_values("epsilon")
        params = int(m["parameters"].iloc[0])
        ax.plot(m["epsilon"], m["value"], marker="o", color=f"C{i}",
                linestyle="-" if model in highlight else "--", linewidth=2 if model in highlight else 1.2,
                label=f"{model} ({params:,} parameters)")
    eps = sorted(metrics.loc[metrics["metric"] == "robust_accuracy", "epsilon"].unique())
    ax.set_xticks([0, *eps], ["clean", *[f"{e:g}" for e in eps]])
    ax.set_xlabel("PGD L∞ radius ε (in 1/255; step 2.5ε/steps, random start)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Accuracy under PGD: top-down vs standard CNN of similar size\n(solid); backdoored and PGD-trained CNNs for reference (dashed)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


_OUTSIDE_PATTERN = (0.72, 0.84, 0.96)  # light blue: pixels outside a pattern, unlike any grey


def class_pattern_grid(
    settings: Sequence[str],
    canvases: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    patterns: Sequence[np.ndarray],
    power: Sequence[np.ndarray],
    classes: Sequence[str],
    trigger: tuple[int, int, int, int],
    target: int,
    stem: Path,
) -> list[Path]:
    """Class-wise patterns (Zhao et al. 2021) of several models: per model one row of the
    patterns (canvas pixels under the top-k mask, the rest light blue, with the predictive power)
    and one row of the continuous masks (0 black to 1 white). A red box marks the BadNets trigger
    region in every panel; the backdoor target class's column title is red."""
    n, k = len(settings), len(classes)
    r0, r1, c0, c1 = trigger
    fig, axes = plt.subplots(2 * n, k, figsize=(0.95 * k + 1.6, 2.1 * n + 0.9), squeeze=False)
    for s, name in enumerate(settings):
        for c in range(k):
            canvas = np.clip(np.asarray(canvases[s][c], dtype=float), 0, 1)
            keep = np.asarray(patterns[s][c], dtype=float)[0][..., None]  # (H, W, 1)
            rgb = np.repeat(canvas, 3, axis=0) if canvas.shape[0] == 1 else canvas
            shown = rgb.transpose(1, 2, 0) * keep + np.array(_OUTSIDE_PATTERN) * (1 - keep)
            for row, (img, cmap) in enumerate([(shown, None), (np.asarray(masks[s][c])[0], "gray")]):
                ax = axes[2 * s + row, c]
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                ax.add_patch(matplotlib.patches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                                          edgecolor="red", linewidth=0.8, linestyle=":"))
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.text(0.03, 0.97, f"{100 * power[s][c]:.0f}%", transform=ax.transAxes, ha="left", va="top",
                            fontsize=7, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
                if s == 0 and row == 0:
                    ax.set_title(str(classes[c]), fontsize=8, color="red" if c == target else "black")
            axes[2 * s, 0].set_ylabel(f"{name}\npattern", fontsize=8, rotation=0, ha="right", va="center")
            axes[2 * s + 1, 0].set_ylabel(f"{name}\nmask", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Class-wise patterns: canvas pixels under the top-k mask (light blue: not in the pattern);\n"
                 "% = held-out images of the other classes turned into the class; red box: BadNets trigger region",
                 fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- noise study (issue 5)

_SOURCE_LABELS = {"resnet18": "ResNet-18", "resnet18_binary": "ResNet-18 (2 classes)",
                  "keras_cnn": "mislabel baseline CNNs"}


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
                ax.scatter(c + rng.uniform(-0.2, 0.2, len(values)), values[:, c], s=6, color=_PAIR_COLOR,
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
    sources = [s for s in ("resnet18", "keras_cnn") if (distances["source"] == s).any()]
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
                ax.scatter(x + rng.uniform(-0.15, 0.15, len(x)), row, s=8, color=_PAIR_COLOR, alpha=0.5, linewidths=0)
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
    colors = ["tab:red" if k == "noise" else _PAIR_COLOR for k in table["kind"]]
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
            ax.scatter(sub[measure], sub[attraction], s=20, color=_PAIR_COLOR)
            for g, xv, yv in zip(sub["group"], sub[measure], sub[attraction]):
                ax.annotate(str(g), (xv, yv), fontsize=7, xytext=(3, 2), textcoords="offset points")
            rho, p = corr.loc[measure, "rho"], corr.loc[measure, "p"]
            ax.set_title(f"{label}\nSpearman rho {rho:.2f} (p {p:.2g})", fontsize=8)
            ax.set_xlabel(measure, fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel(f"{_SOURCE_LABELS.get(source, source)}\nshare of {noise_set} noise", fontsize=8)
    fig.suptitle(f"Does the most cluttered class attract the noise? (attraction and feature clutter: "
                 f"mean over networks)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)
