"""The adversarial study (rules/adversarial.smk) in the workflow: its DAG in both configs and the
demo's tables, examples and figures (from the session's demo run, see conftest.demo_run)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch

from nnprobe.core.naming import zoo_slug
from nnprobe.core.splits import load_split
from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.models import load_model
from nnprobe.studies.adversarial.design import unit_pixels

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"
DEMO = REPO / "config" / "demo.yaml"

# Jobs of the study per config: the zoo (4 models in demo.yaml, 6 in config.yaml) plus the three
# cross-training-set models; seven regimes x replicates (2 in demo.yaml, 3 in config.yaml).
ADVERSARIAL_JOBS = {
    "demo": {"train_zoo_model": 7, "attack_zoo_model": 7, "adversarial_training": 14},
    "paper": {"train_zoo_model": 9, "attack_zoo_model": 9, "adversarial_training": 21},
}
ONE_EACH = [
    "prepare_adversarial_dataset", "zoo_table", "cross_model_table", "cross_training_set_tables",
    "distortion_figure", "example_grid", "adversarial_training_table", "unit_inspection", "units_figure",
    "magnification_figure", "paper_comparison",
]
DEMO_MODELS = ["FC10(1e-4)", "FC10(1)", "FC100-100-10", "AE400-10"]
REGIMES = ["weight_decay", "dropout", "adversarial_pool", "capped_pool", "recomputed_pool", "gradient_sign",
           "random_sign"]
TABLES = ["zoo", "cross_model", "cross_training_set_models", "cross_training_set", "cross_training_set_magnification",
          "paper_comparison", "paper_comparison_counts", "adversarial_training"]
FIGURES = ["cross_model", "cross_training_set", "magnification", "distortion", "examples", "adversarial_training",
           "adversarial_training_monitor", "units"]


def targets() -> list[str]:
    return [f"results/adversarial/tables/{t}.md" for t in TABLES] + [
        f"results/adversarial/figures/{f}.png" for f in FIGURES
    ]


def job_counts(output: str) -> dict[str, int]:
    lines = output.splitlines()
    start = lines.index("Job stats:")
    counts = {}
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


@pytest.mark.parametrize("which", ["demo", "paper"])
def test_dag_of_the_study(run_snakemake, tmp_path, which):
    proc = run_snakemake(["-n", *targets()], directory=tmp_path, configfiles=(DEMO if which == "demo" else CONFIG,))
    assert proc.returncode == 0, proc.stdout[-4000:]
    counts = job_counts(proc.stdout)
    for rule, n in ADVERSARIAL_JOBS[which].items():
        assert counts.get(rule) == n, (rule, counts)
    for rule in ONE_EACH:
        assert counts.get(rule) == 1, (rule, counts)
    assert counts["error_matrix_heatmap"] == 2
    assert not {r for r in counts if r.startswith(("train_population", "prepare_dataset"))}, counts


def test_units_model_must_be_trained(run_snakemake, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('adversarial:\n  models: ["FC10(1)"]\n')
    proc = run_snakemake(["-n"], directory=tmp_path, configfiles=(CONFIG, bad))
    assert proc.returncode != 0
    assert "adversarial.units.model" in proc.stdout and "FC100-100-10" in proc.stdout, proc.stdout[-3000:]


# --------------------------------------------------------------------------- the demo's results


@pytest.fixture(scope="module")
def adv(demo_run) -> Path:
    return demo_run / "results" / "adversarial"


@pytest.mark.slow
@pytest.mark.parametrize("trainset, split", [("full", "train"), ("p1", "test")])
def test_demo_examples_are_adversarial_and_in_the_box(adv, trainset, split):
    images = load_split(adv / "data" / f"{split}.npz")  # the zoo on training images, P1/P2 on test images
    targets = None
    for name in DEMO_MODELS if trainset == "full" else ["FC100-100-10", "FC123-456-10"]:
        model, _ = load_model(adv / "models" / trainset / f"{zoo_slug(name)}.safetensors")
        with np.load(adv / "examples" / trainset / f"{zoo_slug(name)}.npz") as ex:
            assert str(ex["split"]) == split
            ok = ex["success"]
            assert ok.size == 20 and ok.all(), name  # the demo's budget reaches every image
            x_adv = torch.from_numpy(ex["adversarial"])
            x = unit_pixels(images.images[ex["index"]])
            assert torch.equal(torch.from_numpy(ex["label"]), torch.from_numpy(images.labels[ex["index"]]))
            with torch.no_grad():
                pred = model(x_adv).argmax(1).numpy()
                right = model(x).argmax(1).numpy() == ex["label"]
            np.testing.assert_array_equal(pred, ex["target"])  # classified as the target
            np.testing.assert_array_equal(right, ex["correct"])
            assert (ex["target"] != ex["label"]).all()
            # one seeded random target per image, the same for every model
            targets = ex["target"] if targets is None else targets
            np.testing.assert_array_equal(ex["target"], targets)
            assert x_adv.min() >= 0 and x_adv.max() <= 1
            np.testing.assert_allclose(ex["distortion"], rms_distortion(x_adv, x).double().numpy(), rtol=1e-5, atol=1e-7)
            if trainset == "full":  # the nearest-target column: never farther than the random target
                both = ex["correct"] & ex["nearest_success"]
                assert (ex["nearest_distortion"][both] <= ex["distortion"][both] * (1 + 1e-6)).all()


@pytest.mark.slow
def test_demo_tables(adv):
    tables = adv / "tables"
    zoo = pd.read_parquet(tables / "zoo.parquet")
    assert list(zoo["model"]) == DEMO_MODELS
    assert (zoo["failed"] == 0).all() and (zoo["attacked"] == 20).all() and (zoo["nearest_target_n"] <= 10).all()
    assert zoo["test_error"].between(0, 0.3).all() and (zoo["mean_min_distortion"] > 0).all()
    assert (zoo["distortion_low"] < zoo["mean_min_distortion"]).all()
    assert (zoo["mean_min_distortion"] < zoo["distortion_high"]).all()
    assert (zoo["test_error_low"] <= zoo["test_error"]).all() and (zoo["test_error"] <= zoo["test_error_high"]).all()
    assert (zoo["nearest_target_distortion"] < zoo["mean_min_distortion"]).all()

    cross = pd.read_parquet(tables / "cross_model.parquet")
    noise_rows = [f"Gaussian noise, stddev={s}{c}" for s in ("0.1", "0.3") for c in ("", ", clipped")]
    rows = [f"{m} examples" for m in DEMO_MODELS] + ["clean images", *noise_rows]
    assert list(cross["examples"]) == rows and list(cross.columns[6:10]) == DEMO_MODELS
    for m in DEMO_MODELS:  # a model's own examples fool it every time
        assert cross.loc[cross["examples"] == f"{m} examples", m].item() == 1.0
    errors = cross[DEMO_MODELS].to_numpy()
    assert ((errors >= 0) & (errors <= 1)).all()
    assert ((cross[[f"{m} low" for m in DEMO_MODELS]].to_numpy() <= errors)
            & (errors <= cross[[f"{m} high" for m in DEMO_MODELS]].to_numpy())).all()
    noise = cross.set_index("examples")["distortion"]
    # unclipped: the stddev is the RMS (up to sampling); clipped: less
    assert noise["Gaussian noise, stddev=0.1"] == pytest.approx(0.1, rel=0.05)
    assert noise["Gaussian noise, stddev=0.3"] == pytest.approx(0.3, rel=0.05)
    assert noise["Gaussian noise, stddev=0.1, clipped"] < noise["Gaussian noise, stddev=0.1"]

    models = pd.read_parquet(tables / "cross_training_set_models.parquet")
    assert list(models["model"]) == ["FC100-100-10 (P1)", "FC123-456-10 (P1)", "FC100-100-10 (P2)"]
    assert list(models["trained_on"]) == ["P1", "P1", "P2"]
    matrix = pd.read_parquet(tables / "cross_training_set.parquet").set_index("examples")
    assert len(matrix) == 3 * 3 + 2 * 2
    magnified = matrix[matrix.index.str.endswith("magnified to RMS 0.1")]
    assert len(magnified) == 3 and np.allclose(magnified["distortion"], 0.1, rtol=1e-4)  # every example at 0.1
    clipped = matrix[matrix.index.str.endswith("magnified to RMS 0.1, clipped")]
    assert len(clipped) == 3 and (clipped["distortion"] <= 0.1 + 1e-6).all()
    curve = pd.read_parquet(tables / "cross_training_set_magnification.parquet")
    assert len(curve) == 3 * 3 * (1 + 7)  # sources x models x (as made + the 7 RMS of the schema)

    comparison = pd.read_parquet(tables / "paper_comparison_counts.parquet").set_index("table")
    # the demo's zoo has 4 of the 6 models: Table 1 3 cells each, Table 2 the cells of its models
    assert comparison.loc["Table 1", "cells"] == 12 and comparison.loc["Table 2", "cells"] == 4 * 4 + 2 * 4
    assert comparison.loc["Table 3", "cells"] == 12 and comparison.loc["Table 4", "cells"] == 24

    training = pd.read_parquet(tables / "adversarial_training.parquet")
    assert list(training["regime"]) == REGIMES
    assert (training["networks"] == 2).all() and training["mean_test_error"].between(0, 0.5).all()
    for ext in (".csv", ".md"):
        for t in TABLES:
            assert (tables / f"{t}{ext}").stat().st_size > 0


@pytest.mark.slow
def test_demo_figures(adv):
    for name in FIGURES:
        png = adv / "figures" / f"{name}.png"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and min(image.shape[:2]) > 200 and image.std() > 0, png
        assert (adv / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_demo_logs_name_what_was_done(demo_run):
    logs = demo_run / "results" / "logs" / "adversarial"
    attack = (logs / "attack_zoo_model" / "full" / "fc100-100-10.log").read_text()
    assert re.search(r"FC100-100-10: 20/20 succeeded, mean RMS distortion 0\.\d+", attack), attack
    pool = (logs / "adversarial_training" / "adversarial_pool" / "0.log").read_text()
    assert "pools: {'pool_size':" in pool and "monitor (clean training error on 500 images)" in pool, pool
    monitor = pd.read_parquet(demo_run / "results" / "adversarial" / "training" / "capped_pool" / "1.monitor.parquet")
    assert {"clean_train_error", "pool_input_mean_distortion", "pool_input_uses"} <= set(monitor.columns)
