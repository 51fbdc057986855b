"""Tables of the adversarial study (nnprobe.studies.adversarial.tables): the zoo, adversarial
training by regime, and the images shown for every model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nnprobe.stats import mean_interval, wilson_interval
from nnprobe.studies.adversarial.tables import (
    adversarial_training_summary,
    examples_on_every_model,
    zoo_table,
)
from nnprobe.studies.adversarial.transfer import rates_with_intervals

NAN = math.nan


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no "mean of empty slice" for a model with no success
def test_zoo_table():
    metrics = [
        {"model": "FC10(1e-4)", "train_error": 0.1, "test_error": 0.125, "train_seconds": 3.5, "train_images": 100,
         "test_images": 40},
        {"model": "AE400-10", "train_error": 0.0, "test_error": 0.25, "train_seconds": 7.0},
        {"model": "FC100-100-10", "train_error": 0.5, "test_error": 0.75, "train_seconds": 1.0, "at_chance": True},
    ]
    examples = [
        # image 0 already wrong (moved anyway: left out), two moved, one failed (NaN, as the attack records it);
        # the nearest-target attack ran on images 0-2 only: its mean is over the correctly classified ones it moved
        {"correct": np.array([False, True, True, True]), "success": np.array([True, True, True, False]),
         "distortion": np.array([0.05, 0.1, 0.3, NAN]), "seconds": np.float64(2.5),
         "nearest_attacked": np.array([True, True, True, False]),
         "nearest_success": np.array([True, True, True, False]), "nearest_distortion": np.array([0.0, 0.05, 0.1, NAN]),
         "nearest_seconds": np.float64(10.0)},
        {"correct": np.array([True, True]), "success": np.array([False, False]), "distortion": np.array([NAN, NAN]),
         "seconds": np.float64(1.0)},
        {"correct": np.array([True, True, True, True]), "success": np.array([True, True, True, True]),
         "distortion": np.array([0.2, 0.6, 0.1, 0.4]), "seconds": np.float64(4.0)},
    ]
    table = zoo_table(metrics, examples)
    assert list(table.columns) == ["model", "train_error", "train_error_low", "train_error_high", "test_error",
                                   "test_error_low", "test_error_high", "mean_min_distortion", "distortion_low",
                                   "distortion_high", "median_min_distortion", "nearest_target_distortion",
                                   "nearest_target_low", "nearest_target_high", "nearest_target_n", "attacked",
                                   "already_wrong", "failed", "train_seconds", "attack_seconds", "at_chance"]
    assert table["model"].tolist() == ["FC10(1e-4)", "AE400-10", "FC100-100-10"]
    assert table["train_error"].tolist() == [0.1, 0.0, 0.5] and table["test_error"].tolist() == [0.125, 0.25, 0.75]
    assert table["mean_min_distortion"][0] == pytest.approx(0.2, rel=1e-12)  # the already-wrong image left out
    assert table["median_min_distortion"][0] == pytest.approx(0.2, rel=1e-12)
    assert table["nearest_target_distortion"][0] == pytest.approx(0.075, rel=1e-12)  # images 1 and 2
    assert table["nearest_target_n"].tolist() == [2, 0, 0]
    # Wilson intervals of the errors over the images they were measured on; none without the counts
    assert table.loc[0, ["train_error_low", "train_error_high"]].tolist() == pytest.approx(
        [float(v) for v in wilson_interval(10, 100)])
    assert table.loc[0, ["test_error_low", "test_error_high"]].tolist() == pytest.approx(
        [float(v) for v in wilson_interval(5, 40)])
    assert math.isnan(table["test_error_low"][1]) and math.isnan(table["train_error_high"][2])
    # Student-t interval of the mean distortion
    assert table.loc[2, ["distortion_low", "distortion_high"]].tolist() == pytest.approx(
        list(mean_interval([0.2, 0.6, 0.1, 0.4])[1:]))
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
        "replicate": [0, 0, 1, 0, 1, 2],
        "test_error": [0.02, 0.05, 0.04, 0.01, 0.07, 0.06],
        "train_error": [0.0, 0.01, 0.02, 0.0, 0.03, 0.01],
        "train_seconds": [10.0, 20.0, 30.0, 40.0, 60.0, 50.0],
    })
    summary = adversarial_training_summary(networks)
    assert list(summary.columns) == ["regime", "networks", "mean_test_error", "test_error_low", "test_error_high",
                                     "sd_test_error", "min_test_error", "max_test_error", "mean_train_error",
                                     "mean_train_seconds", "vs_weight_decay", "vs_weight_decay_low",
                                     "vs_weight_decay_high", "below_baseline_beyond_spread"]
    assert summary["regime"].tolist() == ["weight_decay", "dropout", "adversarial_pool"]  # first seen, not sorted
    assert summary["networks"].tolist() == [3, 2, 1]
    np.testing.assert_allclose(summary["mean_test_error"], [0.04, 0.06, 0.01], rtol=1e-12)
    np.testing.assert_allclose(summary["sd_test_error"][:2], [0.02, np.sqrt(2) / 100], rtol=1e-12)  # sample sd
    assert math.isnan(summary["sd_test_error"][2])  # one network: no sd
    assert summary.loc[0, ["test_error_low", "test_error_high"]].tolist() == pytest.approx(
        list(mean_interval([0.02, 0.04, 0.06])[1:]))
    assert summary["min_test_error"].tolist() == [0.02, 0.05, 0.01]
    assert summary["max_test_error"].tolist() == [0.06, 0.07, 0.01]
    np.testing.assert_allclose(summary["mean_train_error"], [0.01, 0.02, 0.0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(summary["mean_train_seconds"], [30.0, 40.0, 40.0], rtol=1e-12)
    # paired by replicate: dropout - weight decay = 0.05 - 0.02 and 0.07 - 0.04
    assert summary["vs_weight_decay"].tolist()[:2] == pytest.approx([0.0, 0.03])
    assert summary["vs_weight_decay"][2] == pytest.approx(-0.01)  # replicate 0 alone
    # 0.04 - 0.01 = 0.03 below, but one network has no spread: not counted as beyond it
    assert summary["below_baseline_beyond_spread"].tolist() == [False, False, False]
    better = pd.DataFrame({"regime": ["weight_decay"] * 3 + ["pool"] * 3, "replicate": [0, 1, 2] * 2,
                           "test_error": [0.02, 0.025, 0.03, 0.005, 0.006, 0.01], "train_error": 0.0,
                           "train_seconds": 1.0})
    flagged = adversarial_training_summary(better).set_index("regime")
    assert flagged.loc["pool", "below_baseline_beyond_spread"]  # 0.007 vs 0.025, both spreads at most 0.005
    assert flagged.loc["pool", "vs_weight_decay"] == pytest.approx(-0.018)
    worse = better.assign(test_error=[0.02, 0.025, 0.03, 0.015, 0.03, 0.02])
    assert not adversarial_training_summary(worse).set_index("regime").loc["pool", "below_baseline_beyond_spread"]


def test_rates_with_intervals():
    table = pd.DataFrame({"examples": ["a examples"], "distortion": [0.0612], "distortion_low": [0.0598],
                          "distortion_high": [0.0626], "n": [100], "already_wrong": [2], "A": [0.123],
                          "A low": [0.104], "A high": [0.145]})
    shown = rates_with_intervals(table)
    assert list(shown.columns) == ["examples", "RMS distortion", "n", "already_wrong", "A (%)"]
    assert shown.loc[0, "A (%)"] == "12.3 [10.4, 14.5]"
    assert shown.loc[0, "RMS distortion"] == "0.0612 [0.0598, 0.0626]"


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
