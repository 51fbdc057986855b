"""Transfer of adversarial examples (nnprobe.studies.adversarial.transfer): distortion-matched
controls (unclipped and clipped), magnification as the paper's formula, the cross-model error
matrix with its intervals, and transfer as examples are magnified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.stats import wilson_interval
from nnprobe.studies.adversarial.transfer import (
    cross_model_error_matrix,
    cross_model_table,
    cross_training_set_tables,
    gaussian_noise_control,
    magnification_curve,
    magnify_to_rms,
)

# --------------------------------------------------------------------------- distortion-matched controls


def test_magnify_to_rms_is_the_papers_formula_per_example():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 64, generator=g, dtype=torch.float64) * 0.8 + 0.1
    adv = x + 0.01 * torch.randn(5, 64, generator=g, dtype=torch.float64)
    out = magnify_to_rms(adv, x, 0.1)
    # x + 0.1 (x' - x) / RMS(x' - x): every example at RMS exactly 0.1, along its own direction
    torch.testing.assert_close(rms_distortion(out, x), torch.full((5,), 0.1, dtype=torch.float64), atol=1e-12, rtol=0)
    expected = x + 0.1 * (adv - x) / rms_distortion(adv, x)[:, None]
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    assert out.min() < 0 or out.max() > 1  # unclipped: grey pixels may leave the box
    clipped = magnify_to_rms(adv, x, 0.1, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, expected.clamp(0, 1))
    assert (rms_distortion(clipped, x) <= 0.1 + 1e-12).all()
    assert torch.equal(magnify_to_rms(x, x, 0.1), x)  # nothing to magnify
    # a black pixel that the attack lightened stays in the box when magnified
    black = torch.zeros(1, 4, dtype=torch.float64)
    assert magnify_to_rms(black + torch.tensor([[0.1, 0.0, 0.0, 0.0]]), black, 0.2).min() >= 0
    with pytest.raises(ValueError, match="rms must be > 0"):
        magnify_to_rms(adv, x, 0.0)


def test_gaussian_noise_control_seeded_unclipped_or_clipped():
    x = torch.full((200, 64), 0.5)
    a = gaussian_noise_control(x, 0.1, seed=1)
    assert torch.equal(a, gaussian_noise_control(x, 0.1, seed=1))
    assert not torch.equal(a, gaussian_noise_control(x, 0.1, seed=2))
    assert float(rms_distortion(a, x).mean()) == pytest.approx(0.1, rel=0.05)
    black = torch.zeros(400, 64)
    unclipped = gaussian_noise_control(black, 0.3, seed=0)
    clipped = gaussian_noise_control(black, 0.3, seed=0, clip=True)
    assert unclipped.min() < 0 and torch.equal(clipped, unclipped.clamp(0, 1))  # the same noise, clipped
    # unclipped: RMS = stddev and zero mean; clipped on black: RMS 0.3 / sqrt(2), mean 0.3 / sqrt(2 pi)
    assert float(rms_distortion(unclipped, black).mean()) == pytest.approx(0.3, rel=0.02)
    assert float(unclipped.mean()) == pytest.approx(0.0, abs=0.005)
    assert float(rms_distortion(clipped, black).mean()) == pytest.approx(0.3 / np.sqrt(2), rel=0.03)
    assert float(clipped.mean()) == pytest.approx(0.3 / np.sqrt(2 * np.pi), rel=0.03)
    with pytest.raises(ValueError, match="pixels in \\[0, 1\\]"):
        gaussian_noise_control(x * 255, 0.1, seed=0)


# --------------------------------------------------------------------------- cross-model error matrix


class Constant(nn.Module):
    """Predicts one class for every input."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), self.label), 3).float()


class Threshold(nn.Module):
    """Class 1 if the first pixel exceeds 0.5, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (x.flatten(1)[:, 0] > 0.5).float()
        return torch.stack([1 - p, p, torch.zeros_like(p)], dim=1)


def test_cross_model_error_matrix_hand_case():
    models = {"zero": Constant(0), "thr": Threshold()}
    made_for_zero = torch.tensor([[0.9, 0.0], [0.1, 0.0], [0.7, 0.0], [0.2, 0.0]])
    made_for_thr = torch.tensor([[0.6, 0.0], [0.6, 0.0]])
    noise = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    labels = {"zero": torch.tensor([1, 1, 0, 0]), "thr": torch.tensor([0, 0]), "noise 0.1": torch.tensor([0, 2])}
    m = cross_model_error_matrix(models, {"zero": made_for_zero, "thr": made_for_thr, "noise 0.1": noise}, labels)
    assert m.rows == ("zero", "thr", "noise 0.1") and m.columns == ("zero", "thr")
    # zero: predicts 0 -> wrong on labels 1,1 -> 2/4; thr predicts 1,0,1,0 vs 1,1,0,0 -> 2/4
    # thr set: zero predicts 0 = label -> 0; thr predicts 1,1 vs 0,0 -> 1
    # noise: zero predicts 0,0 vs 0,2 -> 1/2; thr predicts 0,1 vs 0,2 -> 1/2
    np.testing.assert_allclose(m.error, [[0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])
    assert m.as_dict()["thr"] == {"zero": 0.0, "thr": 1.0}
    shared = cross_model_error_matrix(models, {"a": made_for_thr}, torch.tensor([0, 1]))
    np.testing.assert_allclose(shared.error, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="labels has no entry for example set 'b'"):
        cross_model_error_matrix(models, {"b": noise}, {"a": torch.tensor([0, 0])})


# --------------------------------------------------------------------------- the transfer tables


def pixel_threshold(pixel: int) -> nn.Module:
    """A linear model on (N, 1, 2, 2) images: class 1 iff the flattened pixel ``pixel`` exceeds 0.5."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0, pixel], model[1].weight[1, pixel] = -1.0, 1.0
        model[1].bias.copy_(torch.tensor([0.5, -0.5]))
    return model.eval()


def images_from(pixels: list[tuple[float, float]], other: float = 0.5) -> np.ndarray:
    """(N, 1, 2, 2) float32 images whose first two pixels are given (the others ``other``)."""
    x = np.full((len(pixels), 1, 2, 2), other, dtype=np.float32)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = np.array(pixels, dtype=np.float32).T
    return x


CLEAN = [(0.2, 0.2), (0.8, 0.8), (0.2, 0.8), (0.8, 0.2)]  # A (pixel 0) right on all; B (pixel 1) wrong on 2, 3
CLEAN_LABELS = [0, 1, 0, 1]


def model_examples() -> dict[str, dict[str, np.ndarray]]:
    labels = np.array(CLEAN_LABELS)
    return {
        # A: image 2 failed (its example would fool both, were it counted)
        "A": {"success": np.array([True, True, False, True]), "correct": np.ones(4, bool), "label": labels,
              "adversarial": images_from([(0.7, 0.2), (0.3, 0.8), (0.9, 0.9), (0.3, 0.2)]),
              "distortion": np.array([0.1, 0.2, np.nan, 0.6])},
        # B: image 1 failed (a finite distortion, not counted either); 2 and 3 already wrong: left out
        "B": {"success": np.array([True, False, True, True]), "correct": np.array([True, True, False, False]),
              "label": labels,
              "adversarial": images_from([(0.2, 0.9), (0.2, 0.2), (0.2, 0.8), (0.8, 0.2)]),
              "distortion": np.array([0.3, 0.5, 0.0, 0.0])},
    }


def test_cross_model_table():
    models = {"A": pixel_threshold(0), "B": pixel_threshold(1)}
    clean, labels = torch.from_numpy(images_from(CLEAN)), torch.tensor(CLEAN_LABELS)
    table = cross_model_table(models, model_examples(), clean, labels, noise_std=[0.0, 0.3], seed=5,
                              clipping="both")
    assert list(table.columns) == ["examples", "distortion", "distortion_low", "distortion_high", "n",
                                   "already_wrong", "A", "B", "A low", "A high", "B low", "B high"]
    assert table["examples"].tolist() == ["A examples", "B examples", "clean images", "Gaussian noise, stddev=0",
                                          "Gaussian noise, stddev=0, clipped", "Gaussian noise, stddev=0.3",
                                          "Gaussian noise, stddev=0.3, clipped"]
    assert table["n"].tolist() == [3, 1, 4, 4, 4, 4, 4]  # each model's examples of images it had right
    assert table["already_wrong"].tolist() == [0, 2, 0, 0, 0, 0, 0]
    rows = table.set_index("examples")
    assert rows.loc["A examples", "distortion"] == pytest.approx(0.3, rel=1e-12)  # mean over the successes
    half = float(stats.t.ppf(0.975, 2)) * np.std([0.1, 0.2, 0.6], ddof=1) / np.sqrt(3)
    assert rows.loc["A examples", ["distortion_low", "distortion_high"]].tolist() == pytest.approx([0.3 - half,
                                                                                                   0.3 + half])
    assert rows.loc["B examples", "distortion"] == pytest.approx(0.3, rel=1e-12)
    assert np.isnan(rows.loc["B examples", "distortion_low"])  # one example: no interval
    assert rows.loc["clean images", "distortion"] == 0.0 and rows.loc["Gaussian noise, stddev=0", "distortion"] == 0.0
    # unclipped noise has its stddev as RMS (up to sampling); clipping only lowers it
    noisy, clipped = rows.loc["Gaussian noise, stddev=0.3", "distortion"], \
        rows.loc["Gaussian noise, stddev=0.3, clipped", "distortion"]
    assert 0 < clipped <= noisy
    np.testing.assert_allclose(rows.loc["A examples", ["A", "B"]].to_numpy(float), [1.0, 1 / 3], rtol=1e-12)
    low, high = wilson_interval(1, 3)
    assert rows.loc["A examples", ["B low", "B high"]].tolist() == pytest.approx([float(low), float(high)])
    assert rows.loc["A examples", ["A low", "A high"]].tolist() == pytest.approx([float(wilson_interval(3, 3)[0]), 1.0])
    np.testing.assert_allclose(rows.loc["B examples", ["A", "B"]].to_numpy(float), [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(rows.loc["clean images", ["A", "B"]].to_numpy(float), [0.0, 0.5], atol=1e-15)
    np.testing.assert_allclose(rows.loc["Gaussian noise, stddev=0", ["A", "B"]].to_numpy(float), [0.0, 0.5],
                               atol=1e-15)
    again = cross_model_table(models, model_examples(), clean, labels, noise_std=[0.0, 0.3], seed=5, clipping="both")
    pd.testing.assert_frame_equal(again, table)  # seeded: the same noise
    other = cross_model_table(models, model_examples(), clean, labels, noise_std=[0.0, 0.3], seed=6, clipping="both")
    other = other.set_index("examples")
    assert other.loc["Gaussian noise, stddev=0.3", "distortion"] != noisy
    pd.testing.assert_frame_equal(other.iloc[:5], rows.iloc[:5])  # only the noise differs
    only = cross_model_table(models, model_examples(), clean, labels, noise_std=[0.3], seed=5, clipping="clipped")
    assert only["examples"].tolist()[-1] == "Gaussian noise, stddev=0.3, clipped" and len(only) == 4
    with pytest.raises(ValueError, match="adversarial.control_clipping"):
        cross_model_table(models, model_examples(), clean, labels, noise_std=[0.3], seed=5, clipping="box")


def unit(value: float) -> float:
    return float(np.float32(round(value * 255)) / np.float32(255))


def split_inputs():
    models = {"A (P1)": pixel_threshold(0), "B (P2)": pixel_threshold(1)}
    metrics = {"A (P1)": {"trainset": "p1", "p1_error": 0.01, "p2_error": 0.03, "test_error": 0.02,
                          "test_images": 1000},
               "B (P2)": {"trainset": "p2", "p1_error": 0.04, "p2_error": 0.02, "test_error": 0.05}}
    test_images = np.full((6, 1, 2, 2), 128, dtype=np.uint8)
    test_labels = np.array([1, 0, 1, 0, 0, 1])
    for i, (a, b) in {1: (51, 51), 2: (204, 204), 4: (51, 204)}.items():  # 0.2 and 0.8 in pixels
        test_images[i, 0, 0, 0], test_images[i, 0, 0, 1] = a, b
    index = np.array([1, 2, 4])  # labels 0, 1, 0; B already wrong on 4
    lo, hi, mid = unit(0.2), unit(0.8), unit(128 / 255)
    examples = {
        # A moves pixel 0 by 0.4 (RMS 0.2 over 4 pixels); image 4 failed
        "A (P1)": {"index": index, "success": np.array([True, True, False]), "correct": np.ones(3, bool),
                   "label": np.array([0, 1, 0]),
                   "adversarial": images_from([(lo + 0.4, lo), (hi - 0.4, hi), (lo, hi)], mid),
                   "distortion": np.array([0.2, 0.2, np.nan])},
        # B moves pixel 1 by 0.4; image 4 already wrong, unchanged: left out
        "B (P2)": {"index": index, "success": np.array([True, True, True]), "correct": np.array([True, True, False]),
                   "label": np.array([0, 1, 0]),
                   "adversarial": images_from([(lo, lo + 0.4), (hi, hi - 0.4), (lo, hi)], mid),
                   "distortion": np.array([0.2, 0.2, 0.0])},
    }
    return models, metrics, examples, test_images, test_labels


def split_tables(seed: int):
    models, metrics, examples, test_images, test_labels = split_inputs()
    return cross_training_set_tables(models, metrics, examples, test_images, test_labels, noise_std=[0.2],
                                     magnify_rms=0.1, seed=seed, device="cpu", clipping="both")


def test_cross_training_set_tables():
    models_table, matrix = split_tables(seed=1)
    assert list(models_table.columns) == ["model", "trained_on", "p1_error", "p2_error", "test_error",
                                          "test_error_low", "test_error_high", "mean_min_distortion",
                                          "distortion_low", "distortion_high", "attacked", "already_wrong", "failed"]
    assert models_table["model"].tolist() == ["A (P1)", "B (P2)"]
    assert models_table["trained_on"].tolist() == ["P1", "P2"]
    assert models_table["p1_error"].tolist() == [0.01, 0.04] and models_table["p2_error"].tolist() == [0.03, 0.02]
    assert models_table["test_error"].tolist() == [0.02, 0.05]
    low, high = wilson_interval(20, 1000)  # test_images 1000 in the record
    assert models_table.loc[0, ["test_error_low", "test_error_high"]].tolist() == pytest.approx([float(low), float(high)])
    np.testing.assert_allclose(models_table["mean_min_distortion"], [0.2, 0.2], rtol=1e-12)
    assert models_table["attacked"].tolist() == [3, 3] and models_table["failed"].tolist() == [1, 0]
    assert models_table["already_wrong"].tolist() == [0, 1]

    assert list(matrix.columns) == ["examples", "distortion", "distortion_low", "distortion_high", "n",
                                    "already_wrong", "A (P1)", "B (P2)", "A (P1) low", "A (P1) high", "B (P2) low",
                                    "B (P2) high"]
    assert matrix["examples"].tolist() == [
        "A (P1) examples", "A (P1) examples magnified to RMS 0.1", "A (P1) examples magnified to RMS 0.1, clipped",
        "B (P2) examples", "B (P2) examples magnified to RMS 0.1", "B (P2) examples magnified to RMS 0.1, clipped",
        "Gaussian noise, stddev=0.2", "Gaussian noise, stddev=0.2, clipped"]
    assert matrix["n"].tolist() == [2, 2, 2, 2, 2, 2, 3, 3]  # A failed on image 4, B had it wrong unperturbed
    assert matrix["already_wrong"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    rows = matrix.set_index("examples")
    # measured RMS distortion against the test images: 0.2 as made, 0.1 magnified (in the box here)
    np.testing.assert_allclose(rows["distortion"].iloc[:6], [0.2, 0.1, 0.1, 0.2, 0.1, 0.1], rtol=1e-5)
    assert rows.loc["Gaussian noise, stddev=0.2", "distortion"] > 0
    # halving the perturbation (0.4 -> 0.2 on one pixel) no longer crosses the 0.5 threshold
    expected = {"A (P1) examples": [1.0, 0.0], "A (P1) examples magnified to RMS 0.1": [0.0, 0.0],
                "B (P2) examples": [0.0, 1.0], "B (P2) examples magnified to RMS 0.1, clipped": [0.0, 0.0]}
    for row, errors in expected.items():
        np.testing.assert_allclose(rows.loc[row, ["A (P1)", "B (P2)"]].to_numpy(float), errors, rtol=1e-12,
                                   atol=1e-15, err_msg=row)
    _, again = split_tables(seed=1)
    pd.testing.assert_frame_equal(again, matrix)
    _, other = split_tables(seed=2)
    assert other["distortion"].iloc[6] != matrix["distortion"].iloc[6]
    pd.testing.assert_frame_equal(other.iloc[:6], matrix.iloc[:6])


def test_magnification_curve():
    models, _, examples, test_images, _ = split_inputs()
    curve = magnification_curve(models, examples, test_images, [0.1, 0.3], device="cpu")
    assert list(curve.columns) == ["source", "rms", "realised_rms", "model", "n", "error", "error_low", "error_high"]
    assert len(curve) == 2 * 3 * 2  # sources x (as made, 0.1, 0.3) x models
    a = curve[(curve["source"] == "A (P1)") & (curve["model"] == "A (P1)")]
    # as made: RMS 0.2, all wrong; magnified to 0.1 (pixel +0.2): none; to 0.3 (pixel +0.6): all
    assert np.isnan(a["rms"].iloc[0]) and a["realised_rms"].tolist() == pytest.approx([0.2, 0.1, 0.3], rel=1e-5)
    assert a["error"].tolist() == [1.0, 0.0, 1.0] and (a["n"] == 2).all()
    assert (curve["error_low"] <= curve["error"]).all() and (curve["error"] <= curve["error_high"]).all()


def test_cross_training_set_tables_need_examples():
    with pytest.raises(ValueError, match="needs the examples of at least one model"):
        cross_training_set_tables({"A": pixel_threshold(0)}, {}, {}, np.zeros((2, 1, 2, 2), np.uint8), np.zeros(2),
                                  noise_std=[0.1], magnify_rms=0.1, seed=0, device="cpu")
