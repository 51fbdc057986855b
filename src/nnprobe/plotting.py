"""Figure primitives: saving (PDF + PNG, atomically), a class-by-class heatmap, image grids.

Every figure function of the studies takes data and an output ``stem`` (a path without
suffix), writes ``stem.pdf`` and ``stem.png`` (150 dpi) through :func:`save_figure` and returns
the written paths. matplotlib runs on its Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .core.io import atomic_write  # noqa: E402

__all__ = ["DPI", "GREY", "PAIR_COLOR", "BASELINE_COLOR", "Span", "save_figure", "class_heatmap", "symmetric_norm", "display_image", "image_grid"]

DPI = 150
GREY = "0.82"
"""The colour of missing values (NaN) in heatmaps."""

PAIR_COLOR = "tab:blue"
"""The colour of the damaged networks (mislabelled pairs, attacked models) in every figure."""
BASELINE_COLOR = "tab:orange"
"""The colour of the reference networks (the clean baseline) in every figure."""

Span = tuple[str, int, int]
"""A named group of consecutive classes in a heatmap's order: (name, start, stop)."""


def save_figure(fig: matplotlib.figure.Figure, stem: Path) -> list[Path]:
    """Write ``fig`` to ``stem.pdf`` and ``stem.png`` (150 dpi) atomically and close it.

    Suffixes are appended to the full name; parent folders are created.
    """
    stem = Path(stem)
    try:
        return [
            atomic_write(stem.with_name(f"{stem.name}.{fmt}"),
                         lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight"))
            for fmt in ("pdf", "png")
        ]
    finally:
        plt.close(fig)


def _check_order(order: Sequence[int] | None, k: int) -> list[int]:
    if order is None:
        return list(range(k))
    order = [int(i) for i in order]
    if sorted(order) != list(range(k)):
        raise ValueError(f"order must be a permutation of 0..{k - 1}, got {order}")
    return order


def class_heatmap(
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
    cm = matplotlib.colormaps[cmap].with_extremes(bad=GREY)
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
    undefined = ~np.isfinite(m) & ~np.eye(k, dtype=bool)
    notes = [Patch(facecolor=GREY, edgecolor="0.5",
                   label="grey: T = C" + (", or not defined (a group without networks)" if undefined.any() else ""))]
    ax.set_title(title, pad=22 if spans else 8)
    # at the foot of the figure, where it covers no cell
    fig.legend(handles=notes, loc="lower center", frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def symmetric_norm(m: np.ndarray | Sequence[np.ndarray]) -> mcolors.Normalize:
    """A colour scale centred on 0 and symmetric about it, to the largest finite |value| of ``m``
    (of all the arrays of a sequence: one scale for several figures that a reader compares)."""
    values = np.concatenate([np.ravel(a) for a in m]) if isinstance(m, (list, tuple)) else np.ravel(m)
    finite = np.abs(values[np.isfinite(values)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return mcolors.TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def display_image(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A ``(C, H, W)`` or ``(H, W)`` image in [0, 1] as ``imshow`` takes it: ``(H, W)`` grey or ``(H, W, 3)``."""
    image = np.clip(np.asarray(image, dtype=float), 0, 1)
    if image.ndim == 2:
        return image, "gray"
    if image.shape[0] == 1:
        return image[0], "gray"
    return image.transpose(1, 2, 0), None


def image_grid(
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
            shown, cmap = display_image(images[r, c])
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
