"""Figure primitives (nnprobe.plotting): PDF + PNG written atomically, the class heatmap, image grids."""

from __future__ import annotations

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from nnprobe.plotting import class_heatmap, image_grid, save_figure, symmetric_norm


def check_written(paths, stem):
    assert sorted(p.name for p in paths) == sorted([f"{stem.name}.pdf", f"{stem.name}.png"])
    for p in paths:
        assert p.exists() and p.stat().st_size > 1024, p
    pdf = stem.with_name(stem.name + ".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    img = mpimg.imread(stem.with_name(stem.name + ".png"))
    assert img.ndim == 3 and img.shape[2] in (3, 4) and min(img.shape[:2]) > 100
    # no temp files left behind
    assert not [q for q in stem.parent.iterdir() if q.name.endswith(".tmp")]


def test_save_figure_writes_pdf_and_png_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    stem = tmp_path / "new" / "figure.v1"  # suffixes are appended to the full name
    check_written(save_figure(fig, stem), stem)
    assert not plt.fignum_exists(fig.number)


def test_class_heatmap_orders_and_checks_the_order(tmp_path):
    m = np.arange(16, dtype=float).reshape(4, 4) - 8
    m[np.diag_indices(4)] = np.nan
    norm = symmetric_norm(m)
    assert norm.vmin == -7 and norm.vmax == 7 and norm.vcenter == 0  # the largest finite |value|: m[0, 1]
    fig = class_heatmap(m, list("abcd"), [3, 2, 1, 0], [("x", 0, 2), ("y", 2, 4)], cmap="RdBu_r", norm=norm,
                        cbar_label="value", title="grouped", annotate_fmt=".1f", marks=m > 4)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["d", "c", "b", "a"]
    stem = tmp_path / "heatmap"
    check_written(save_figure(fig, stem), stem)
    with pytest.raises(ValueError, match="permutation"):
        class_heatmap(m, list("abcd"), [0, 0, 1, 2], None, cmap="RdBu_r", norm=norm, cbar_label="", title="")


def test_image_grid(tmp_path):
    rng = np.random.default_rng(0)
    stem = tmp_path / "grid"
    notes = np.array([["a", ""], ["b", "c"]])
    check_written(image_grid(rng.random((2, 2, 3, 8, 8)), stem, ["row 0", "row 1"], ["x", "y"], "colour", notes), stem)
    stem = tmp_path / "grey"
    check_written(image_grid(rng.random((1, 3, 1, 8, 8)), stem, ["row"], None, "grey"), stem)
