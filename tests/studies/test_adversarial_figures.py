"""Figures of the adversarial study (nnprobe.studies.adversarial.figures) that a reader compares."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from nnprobe.studies.adversarial import figures
from nnprobe.studies.adversarial.figures import adversarial_example_grid, distortion_distributions, signed_difference


def test_signed_difference_is_the_channel_mean_of_the_perturbation():
    x = np.zeros((3, 2, 2))
    xa = x.copy()
    xa[0, 0, 0], xa[1, 0, 0], xa[2, 1, 1] = 0.3, 0.0, -0.6
    d = signed_difference(x, xa)
    assert d.shape == (2, 2) and d[0, 0] == pytest.approx(0.1) and d[1, 1] == pytest.approx(-0.2) and d[0, 1] == 0
    assert np.array_equal(signed_difference(x[0], xa[0]), xa[0])  # a grey image: its own difference


def test_example_grid_draws_perturbations_unsaturated_on_one_diverging_scale(tmp_path):
    rng = np.random.default_rng(0)
    originals = rng.uniform(0.2, 0.8, size=(2, 1, 8, 8))
    # one perturbation 10 times larger than the other: a x10 grey panel would saturate it
    adversarial = {"small": originals + 0.01 * rng.standard_normal(originals.shape),
                   "large": originals + 0.1 * rng.standard_normal(originals.shape)}
    captions = {name: ["1→2, 0.01", "3→4, 0.01"] for name in adversarial}
    stem = tmp_path / "examples"
    written = adversarial_example_grid(originals, adversarial, captions, stem)
    assert sorted(p.suffix for p in written) == [".pdf", ".png"]
    img = mpimg.imread(stem.with_suffix(".png"))[..., :3]
    # the largest perturbation reaches the ends of the map (deep red or blue), none is clipped to
    # one saturated colour across a whole panel
    red = (img[..., 0] > 0.35) & (img[..., 0] < 0.75) & (img[..., 1] < 0.15) & (img[..., 2] < 0.2)
    blue = (img[..., 2] > 0.3) & (img[..., 0] < 0.1) & (img[..., 1] < 0.25)
    assert red.sum() > 5 and blue.sum() > 5


def test_distortion_legend_does_not_cover_the_boxes(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, stem):
        fig.canvas.draw()
        ax = fig.axes[0]
        drawn["axes"], drawn["legend"] = ax.get_window_extent(), ax.get_legend().get_window_extent()
        return []

    monkeypatch.setattr(figures, "save_figure", keep)
    rng = np.random.default_rng(1)
    distortions = {f"model {i}": rng.uniform(0.02, 0.2, 50) for i in range(3)}
    distortion_distributions(distortions, {m: (1, 0) for m in distortions}, tmp_path / "distortion",
                             nearest={m: v * 0.8 for m, v in distortions.items()})
    assert not drawn["legend"].overlaps(drawn["axes"])
