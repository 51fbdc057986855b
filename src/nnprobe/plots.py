"""Figures of the mislabel study (PDF + PNG), drawn with matplotlib's Agg backend.

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
