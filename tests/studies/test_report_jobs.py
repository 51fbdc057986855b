"""The report jobs of the noise, adversarial and visualize studies (their reports.py), one each, on
tiny files written here: each writes its tables (.parquet, .csv, .md) and figures (.png, .pdf)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nnprobe.core.io import write_json, write_npz, write_parquet
from nnprobe.studies.adversarial.reports import adversarial_training_report, magnification_figure
from nnprobe.studies.noise.reports import binary_figure
from nnprobe.studies.visualize.reports import feature_figures_of, models_report


def check_figure(stem: Path) -> None:
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1024, png
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1024, pdf


def check_tables(stem: Path, rows: int) -> pd.DataFrame:
    for suffix in (".csv", ".md"):
        assert stem.with_name(stem.name + suffix).stat().st_size > 0, suffix
    table = pd.read_parquet(stem.with_name(stem.name + ".parquet"))
    assert len(table) == rows
    return table


def test_noise_binary_figure(tmp_path):
    binary = pd.DataFrame({
        "group": ["cat", "dog", "bird", "gaussian", "uniform"],
        "kind": ["class", "class", "class", "noise", "noise"],
        "first_class": "cat",
        "models": 3,
        "mean": [0.95, 0.05, 0.6, 0.8, 0.3],
        "sd": [0.01, 0.02, 0.1, 0.2, 0.1],
        "min": [0.9, 0.0, 0.5, 0.6, 0.2],
        "max": [1.0, 0.1, 0.7, 1.0, 0.4],
    })
    table = write_parquet(binary, tmp_path / "binary.parquet")
    binary_figure(str(table), str(tmp_path / "figures" / "binary"))
    check_figure(tmp_path / "figures" / "binary")


def test_adversarial_training_report(tmp_path):
    records = []
    for i, (regime, error) in enumerate([("weight_decay", 0.02), ("dropout", 0.03), ("weight_decay", 0.025),
                                         ("adversarial_pool", 0.015), ("dropout", 0.035)]):
        records.append(write_json({"regime": regime, "replicate": i, "test_error": error, "train_error": error / 2,
                                   "train_seconds": 1.0 + i}, tmp_path / f"net{i}.json"))
    monitors = []
    for i, regime in enumerate(["weight_decay", "adversarial_pool"]):
        rows = pd.DataFrame({"epochs_done": [0.0, 1.0, 2.0], "clean_train_error": [0.5, 0.1, 0.05],
                             **({"pool_input_mean_distortion": [np.nan, 0.07, 0.06],
                                 "pool_0_mean_distortion": [np.nan, 0.15, 0.14]} if i else
                                {"perturbation_rms": [np.nan, 0.1, 0.1]})}).assign(regime=regime, replicate=0)
        monitors.append(str(write_parquet(rows, tmp_path / f"monitor{i}.parquet")))
    adversarial_training_report([str(p) for p in records], str(tmp_path / "tables" / "training"),
                                str(tmp_path / "figures" / "training"), monitors, str(tmp_path / "figures" / "monitor"))
    table = check_tables(tmp_path / "tables" / "training", rows=3)
    assert table["regime"].tolist() == ["weight_decay", "dropout", "adversarial_pool"]
    check_figure(tmp_path / "figures" / "training")
    check_figure(tmp_path / "figures" / "monitor")


def test_magnification_figure(tmp_path):
    rows = []
    for source in ("A (P1)", "B (P2)"):
        for rms, realised in ((np.nan, 0.06), (0.08, 0.08), (0.1, 0.1)):
            for model in ("A (P1)", "B (P2)"):
                error = 1.0 if model == source else (realised - 0.05) * 5
                rows.append({"source": source, "rms": rms, "realised_rms": realised, "model": model, "n": 100,
                             "error": error, "error_low": max(0.0, error - 0.05), "error_high": min(1.0, error + 0.05)})
    table = write_parquet(pd.DataFrame(rows), tmp_path / "curve.parquet")
    magnification_figure(str(table), str(tmp_path / "figures" / "magnification"))
    check_figure(tmp_path / "figures" / "magnification")


def test_visualize_models_report(tmp_path):
    paths = []
    for model, parameters in (("natural", 1100), ("topdown", 1200)):
        rows = [{"metric": "clean_accuracy", "epsilon": 0.0, "value": 0.9},
                {"metric": "trigger_success", "epsilon": 0.0, "value": 0.1},
                *({"metric": "robust_accuracy", "epsilon": eps, "value": 0.9 / (1 + eps)} for eps in (1.0, 4.0))]
        frame = pd.DataFrame(rows).assign(model=model, architecture=model, parameters=parameters, train_seconds=2.0,
                                          eval_seconds=1.0, n_images=10)
        paths.append(str(write_parquet(frame, tmp_path / f"{model}.parquet")))
    models_report(paths, str(tmp_path / "tables" / "models"), str(tmp_path / "figures" / "robustness"))
    table = check_tables(tmp_path / "tables" / "models", rows=2)
    assert table["model"].tolist() == ["natural", "topdown"]
    check_figure(tmp_path / "figures" / "robustness")


def test_visualize_feature_figures(tmp_path):
    """The arrays of nnprobe.studies.visualize.features.visualize_features (3 classes, 2 seeds, 2 images, 3 layers)."""
    rng = np.random.default_rng(0)
    arrays = {
        "am_images": rng.random((3, 2, 3, 8, 8), dtype=np.float32),
        "am_logits": rng.normal(size=(3, 2, 3)).astype(np.float32),
        "am_history": np.array([0.1, 0.5], dtype=np.float32),
        "originals": rng.random((2, 3, 8, 8), dtype=np.float32),
        "original_labels": np.array([0, 2]),
        "original_index": np.array([5, 1]),
        "caricatures": rng.random((3, 2, 3, 8, 8), dtype=np.float32),
        "caricature_objective": rng.random((2, 3, 2), dtype=np.float32),
        "inversions": rng.random((3, 2, 3, 8, 8), dtype=np.float32),
        "inversion_error": rng.random((3, 2), dtype=np.float32),
        "layers": np.array(["stage1", "stage2", "stage3"]),
        "classes": np.array(["cat", "dog", "fox"]),
        "model": np.array("natural"),
        "caricature_target": np.array("channel 1"),
    }
    path = write_npz(arrays, tmp_path / "natural.npz")
    stems = {kind: str(tmp_path / "figures" / f"natural_{kind}") for kind in ("am", "caricature", "inversion")}
    feature_figures_of(str(path), stems)
    for stem in stems.values():
        check_figure(Path(stem))
