"""The mislabel study's figures (nnprobe.studies.mislabel.figures): every figure writes a readable PDF + PNG."""

from __future__ import annotations

import itertools

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from nnprobe.studies.mislabel.figures import accuracy_by_pair, class_dendrogram, information_heatmap, t_heatmap
from nnprobe.studies.mislabel.statistics import class_linkage, class_order, information_table, welch_table


def make_table(k: int = 4, r: int = 3, seed: int = 0) -> pd.DataFrame:
    """Small per_model_class table (all pairs + "none"); class 0 suffers when 1 is confused."""
    rng = np.random.default_rng(seed)
    rows = []
    for (a, b), rep in itertools.product(
        [*itertools.combinations(range(k), 2), (-1, -1)], range(r)
    ):
        for c in range(k):
            acc = 0.8 + rng.normal(0, 0.02) - 0.3 * (c in (a, b))
            acc -= 0.2 * (c == 0 and 1 in (a, b) and 0 not in (a, b))
            prob = np.full(k, (1 - acc) / (k - 1))
            prob[c] = acc
            pred = np.round(prob * 100).astype(int)
            rows.append(
                {"pair": "none" if a < 0 else f"{a}-{b}", "pair_a": a, "pair_b": b,
                 "replicate": rep, "seed": rep, "class": c, "class_name": f"class{c}",
                 "n_images": 100, "accuracy": acc, "logloss_bits": -np.log2(acc),
                 **{f"pred_{j}": int(pred[j]) for j in range(k)},
                 **{f"prob_{j}": float(prob[j]) for j in range(k)}}
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables():
    tab = make_table()
    return tab, welch_table(tab), information_table(tab)


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


def test_t_heatmap(tables, tmp_path):
    _, w, _ = tables
    stem = tmp_path / "figs" / "t_heatmap.confused_vs_clean"
    check_written(t_heatmap(w, stem), stem)
    order, spans = class_order([f"class{i}" for i in range(4)],
                                  {"a": ["class2", "class0"], "b": ["class1"]})
    stem2 = tmp_path / "t_grouped"
    check_written(t_heatmap(w, stem2, order=order, spans=spans, title="grouped"), stem2)
    with pytest.raises(ValueError, match="permutation"):
        t_heatmap(w, tmp_path / "bad", order=[0, 0, 1, 2])


@pytest.mark.parametrize("value", ["delta_logloss_bits", "kl_bits", "kl_counts_bits"])
def test_information_heatmap(tables, tmp_path, value):
    _, _, info = tables
    stem = tmp_path / f"info_{value}"
    check_written(information_heatmap(info, stem, order=[3, 2, 1, 0],
                                            spans=[("x", 0, 2), ("y", 2, 4)], value=value), stem)


def test_accuracy_by_pair(tables, tmp_path):
    tab, _, _ = tables
    stem = tmp_path / "accuracy_by_pair"
    check_written(accuracy_by_pair(tab, stem), stem)
    stem2 = tmp_path / "accuracy_no_names"
    check_written(accuracy_by_pair(tab.drop(columns="class_name"), stem2), stem2)


def test_class_dendrogram(tables, tmp_path):
    _, w, _ = tables
    z = class_linkage(w)
    stem = tmp_path / "dendrogram"
    check_written(class_dendrogram(z, [f"class{i}" for i in range(4)], stem), stem)
    with pytest.raises(ValueError, match="4 leaves"):
        class_dendrogram(z, ["a", "b"], tmp_path / "bad")


def figure_texts(monkeypatch) -> list[list[str]]:
    """Every figure's title and colorbar label as it is saved (the figure module's save_figure, spied on)."""
    from nnprobe.studies.mislabel import figures

    seen: list[list[str]] = []
    save = figures.save_figure

    def spy(fig, stem):
        seen.append([ax.get_title() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes])
        return save(fig, stem)

    monkeypatch.setattr(figures, "save_figure", spy)
    return seen


def test_the_heatmaps_name_their_test(tables, tmp_path, monkeypatch):
    """The Welch and the paired heatmaps draw the same cells; each names its test (the table's test
    column), and the paired ones say over how many replicates."""
    from nnprobe.studies.mislabel.paired import paired_information_table, paired_table

    tab, w, _ = tables
    seen = figure_texts(monkeypatch)
    check_written(t_heatmap(w, tmp_path / "welch"), tmp_path / "welch")
    paired = paired_table(tab)
    check_written(t_heatmap(paired, tmp_path / "paired"), tmp_path / "paired")
    info = paired_information_table(tab)
    for value in ("delta_logloss_bits", "kl_bits"):
        check_written(information_heatmap(info, tmp_path / value, value=value), tmp_path / value)
    welch_text, paired_text, delta_text, kl_text = (" ".join(texts) for texts in seen)
    assert "Welch t (T accuracy higher with C confused >0)" in welch_text and "paired" not in welch_text
    assert "paired t (T accuracy higher with C confused >0)" in paired_text
    assert "paired t over 3 replicates of the paired design" in paired_text and "Welch" not in paired_text
    assert "paired t over 3 replicates" in delta_text and "★ = paired t: BH q < 0.05" in delta_text
    assert "paired t over 3 replicates" in kl_text and "★" not in kl_text


def test_t_heatmaps_of_a_run_share_one_colour_scale_and_name_grey_cells(tables, tmp_path, monkeypatch):
    from nnprobe.studies.mislabel import figures

    drawn = []

    def keep(fig, stem):
        fig.canvas.draw()
        ax = fig.axes[0]
        drawn.append({"norm": ax.images[0].norm, "legend": fig.legends[0], "axes": ax.get_window_extent(),
                      "colorbar": fig.axes[-1].get_ylabel()})
        return []

    monkeypatch.setattr(figures, "save_figure", keep)
    _, w, _ = tables
    strong = w.assign(t=w["t"] * 3)  # another comparison with larger t
    t_heatmap(w, tmp_path / "alone")
    t_heatmap(w, tmp_path / "shared", shared=[strong])
    t_heatmap(strong, tmp_path / "strong", shared=[w])
    alone, shared, other = drawn
    limit = float(np.nanmax(np.abs(strong["t"])))
    assert alone["norm"].vmax == pytest.approx(limit / 3)  # its own scale
    assert shared["norm"].vmax == pytest.approx(limit) == other["norm"].vmax  # one scale for both
    assert "one scale for the run's 2 Welch t heatmaps" in shared["colorbar"]
    # the grey cells are named, below the heatmap, not over it
    assert shared["legend"].get_texts()[0].get_text().startswith("grey: T = C")
    assert not shared["legend"].get_window_extent().overlaps(shared["axes"])


@pytest.mark.parametrize("replicates, boxes", [(3, False), (10, True)])
def test_accuracy_by_pair_draws_boxes_only_over_enough_networks(tmp_path, monkeypatch, replicates, boxes):
    from matplotlib.patches import PathPatch

    from nnprobe.studies.mislabel import figures

    drawn = {}

    def keep(fig, stem):
        fig.canvas.draw()
        ax = fig.axes[0]
        drawn.update(boxes=sum(isinstance(p, PathPatch) for p in ax.patches), legend=fig.legends[0],
                     axes=ax.get_window_extent(), title=ax.get_title())
        return []

    monkeypatch.setattr(figures, "save_figure", keep)
    accuracy_by_pair(make_table(k=4, r=replicates), tmp_path / "acc")
    assert (drawn["boxes"] == 7) is boxes  # 6 pairs + the baseline
    assert ("sorted by median" in drawn["title"]) is boxes
    labels = [t.get_text() for t in drawn["legend"].get_texts()]
    assert ("mean, 95% t interval" in labels) is (not boxes)
    assert not drawn["legend"].get_window_extent().overlaps(drawn["axes"])
