"""Tables of the adversarial study (nnprobe.studies.adversarial.tables): the zoo, adversarial
training by regime, and the images shown for every model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nnprobe.studies.adversarial.tables import (
    adversarial_training_summary,
    examples_on_every_model,
    zoo_table,
)

NAN = math.nan


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no "mean of empty slice" for a model with no success
def test_zoo_table():
    metrics = [
        {"model": "FC10(1e-4)", "train_error": 0.1, "test_error": 0.125, "train_seconds": 3.5},
        {"model": "AE400-10", "train_error": 0.0, "test_error": 0.25, "train_seconds": 7.0},
        {"model": "FC100-100-10", "train_error": 0.5, "test_error": 0.75, "train_seconds": 1.0, "at_chance": True},
    ]
    examples = [
        # image 0 already wrong (moved anyway: left out), two moved, one failed (NaN, as the attack records it);
        # the nearest-target attack ran: its mean is over the correctly classified images it moved
        {"correct": np.array([False, True, True, True]), "success": np.array([True, True, True, False]),
         "distortion": np.array([0.05, 0.1, 0.3, NAN]), "seconds": np.float64(2.5),
         "nearest_success": np.array([True, True, True, True]), "nearest_distortion": np.array([0.0, 0.05, 0.1, 0.3]),
         "nearest_seconds": np.float64(10.0)},
        {"correct": np.array([True, True]), "success": np.array([False, False]), "distortion": np.array([NAN, NAN]),
         "seconds": np.float64(1.0)},
        {"correct": np.array([True, True, True, True]), "success": np.array([True, True, True, True]),
         "distortion": np.array([0.2, 0.6, 0.1, 0.4]), "seconds": np.float64(4.0)},
    ]
    table = zoo_table(metrics, examples)
    assert list(table.columns) == ["model", "train_error", "test_error", "mean_min_distortion",
                                   "median_min_distortion", "nearest_target_distortion", "attacked", "already_wrong",
                                   "failed", "train_seconds", "attack_seconds", "at_chance"]
    assert table["model"].tolist() == ["FC10(1e-4)", "AE400-10", "FC100-100-10"]
    assert table["train_error"].tolist() == [0.1, 0.0, 0.5] and table["test_error"].tolist() == [0.125, 0.25, 0.75]
    assert table["mean_min_distortion"][0] == pytest.approx(0.2, rel=1e-12)  # the already-wrong image left out
    assert table["median_min_distortion"][0] == pytest.approx(0.2, rel=1e-12)
    assert table["nearest_target_distortion"][0] == pytest.approx(0.15, rel=1e-12)
    assert math.isnan(table["mean_min_distortion"][1]) and math.isnan(table["median_min_distortion"][1])
    assert math.isnan(table["nearest_target_distortion"][1]) and math.isnan(table["nearest_target_distortion"][2])
    assert table["mean_min_distortion"][2] == pytest.approx(0.325, rel=1e-12)
    assert table["median_min_distortion"][2] == pytest.approx(0.3, rel=1e-12)
    assert table["attacked"].tolist() == [4, 2, 4]
    assert table["already_wrong"].tolist() == [1, 0, 0]
    assert table["failed"].tolist() == [1, 2, 0]
    assert table["train_seconds"].tolist() == [3.5, 7.0, 1.0] and table["attack_seconds"].tolist() == [12.5, 1.0, 4.0]
    assert table["at_chance"].tolist() == [False, False, True]  # the training record's flag (old records: False)


def test_zoo_table_needs_one_attack_per_model():
    with pytest.raises(ValueError):
        zoo_table([{"model": "a", "train_error": 0, "test_error": 0, "train_seconds": 0}], [])


def test_adversarial_training_summary_keeps_the_regime_order():
    networks = pd.DataFrame({
        "regime": ["weight_decay", "dropout", "weight_decay", "adversarial_pool", "dropout", "weight_decay"],
        "test_error": [0.02, 0.05, 0.04, 0.01, 0.07, 0.06],
        "train_error": [0.0, 0.01, 0.02, 0.0, 0.03, 0.01],
        "train_seconds": [10.0, 20.0, 30.0, 40.0, 60.0, 50.0],
    })
    summary = adversarial_training_summary(networks)
    assert list(summary.columns) == ["regime", "networks", "mean_test_error", "sd_test_error", "min_test_error",
                                     "max_test_error", "mean_train_error", "mean_train_seconds"]
    assert summary["regime"].tolist() == ["weight_decay", "dropout", "adversarial_pool"]  # first seen, not sorted
    assert summary["networks"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(summary["mean_test_error"], [0.04, 0.06, 0.01], rtol=1e-12)
    np.testing.assert_allclose(summary["sd_test_error"][:2], [0.02, np.sqrt(2) / 100], rtol=1e-12)  # sample sd
    assert math.isnan(summary["sd_test_error"][2])  # one network: no sd
    assert summary["min_test_error"].tolist() == [0.02, 0.05, 0.01]
    assert summary["max_test_error"].tolist() == [0.06, 0.07, 0.01]
    np.testing.assert_allclose(summary["mean_train_error"], [0.01, 0.02, 0.0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(summary["mean_train_seconds"], [30.0, 40.0, 40.0], rtol=1e-12)


def test_examples_on_every_model():
    examples = [
        {"correct": np.array([True, False, True, True, True, True]),
         "success": np.array([True, True, False, True, True, True]),
         "distortion": np.array([0.1, 0.05, NAN, 0.2, 0.3, 0.2])},
        {"correct": np.ones(6, bool), "success": np.array([True, True, True, False, True, True]),
         "distortion": np.array([0.2, 0.1, 0.1, NAN, 0.1, 0.3])},
    ]
    # 1: already wrong for the first model; 2, 3: an attack failed
    picked = examples_on_every_model(examples, 5)
    assert picked.tolist() == [0, 4, 5] and np.issubdtype(picked.dtype, np.integer)
    assert examples_on_every_model(examples, 2).tolist() == [0, 4]
    assert examples_on_every_model(examples, 0).tolist() == []
    assert examples_on_every_model(examples[:1], 9).tolist() == [0, 3, 4, 5]
