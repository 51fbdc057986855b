"""The regimes of the adversarial-training comparison (nnprobe.studies.adversarial.plan, .regimes,
.perturbed, .monitor): the keys each regime reads, the on-the-fly gradient sign and its random
control, the monitor, resume, and every regime end to end on scikit-learn's 8x8 digits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from snakemake.utils import validate
from torch.nn import functional as F

from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.szegedy import fc_sigmoid
from nnprobe.studies.adversarial.monitor import TrainingMonitor
from nnprobe.studies.adversarial.perturbed import MonitoredZooTask, PerturbedTrainingTask, sign_perturbation
from nnprobe.studies.adversarial.plan import POOL_REGIMES, REGIMES, regime_settings
from nnprobe.studies.adversarial.regimes import train_regime
from nnprobe.studies.adversarial.training import train_zoo_model

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
RECIPE = {"weight_decay": (1e-5, 1e-5, 1e-6), "normalize": "classic", "batch_size": 50, "lr": 3e-2, "order_seed": 7}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def adversarial_config(**training) -> dict:
    """The schema's defaults of the config section ``adversarial``, with ``adversarial_training`` keys set."""
    config = {"adversarial": {"adversarial_training": training}}
    validate(config, schema=str(SCHEMA))
    return config["adversarial"]


# --------------------------------------------------------------------------- the keys of each regime


def test_every_regime_reads_its_own_keys():
    adversarial = adversarial_config(dropout_epochs=7, capped_pool={"refresh_every": 9, "max_distortion": [1, 2, 3]},
                                     gradient_sign={"epsilon": 0.2, "steps": 3})
    common = {"batch_size", "lr", "schedule", "decay_normalization", "epochs", "monitor_images"}
    assert set(regime_settings(adversarial, "weight_decay")) == common
    dropout = regime_settings(adversarial, "dropout")
    assert dropout["epochs"] == 7 and dropout["dropout"] == [0.1, 0.25]
    first = regime_settings(adversarial, "adversarial_pool")
    assert first["max_distortion"] is None and not first["recompute"]
    assert (first["pool_size"], first["refresh_every"], first["refresh_size"], first["pool_fraction"]) == (2000, 100,
                                                                                                           50, 0.5)
    capped = regime_settings(adversarial, "capped_pool")
    assert capped["refresh_every"] == 9 and capped["max_distortion"] == [1, 2, 3] and not capped["recompute"]
    recomputed = regime_settings(adversarial, "recomputed_pool")
    assert recomputed["recompute"] and {k: v for k, v in recomputed.items() if k != "recompute"} == {
        k: v for k, v in capped.items() if k != "recompute"}
    assert set(first["attack"]) == {"c_grid", "max_iter", "bisection_steps", "refine_steps", "temperature", "solver"}
    sign, random_sign = regime_settings(adversarial, "gradient_sign"), regime_settings(adversarial, "random_sign")
    assert (sign["direction"], sign["epsilon"], sign["steps"]) == ("gradient", 0.2, 3)
    assert (random_sign["direction"], random_sign["epsilon"], random_sign["steps"]) == ("random", 0.2, 1)
    assert sign["adversarial_weight"] == random_sign["adversarial_weight"] == 0.5
    # a key of one regime is in no other regime's settings: changing it retrains that regime only
    assert all("dropout" not in regime_settings(adversarial, r) for r in REGIMES if r != "dropout")
    with pytest.raises(ValueError, match="regime must be one of"):
        regime_settings(adversarial, "pool")
    bad = adversarial_config(capped_pool={"max_distortion": [0.1]})
    with pytest.raises(ValueError, match="one cap per layer"):
        regime_settings(bad, "capped_pool")
    assert set(POOL_REGIMES) < set(REGIMES)


# --------------------------------------------------------------------------- the on-the-fly perturbations


def test_gradient_sign_and_its_random_control_have_the_same_size(few_digit_vectors):
    x, y = few_digit_vectors
    net = fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(1))
    x_in = x[:40].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(net(x_in), y[:40], reduction="sum"), x_in)
    fgsm = sign_perturbation(net, x[:40], y[:40], 0.1, "gradient")
    torch.testing.assert_close(fgsm, (x[:40] + 0.1 * grad.sign()).clamp(0, 1))
    assert not fgsm.requires_grad
    middle = torch.full((40, 64), 0.5)  # away from the box: the perturbation as made
    for direction in ("gradient", "random"):
        out = sign_perturbation(net, middle, y[:40], 0.1, direction, torch.Generator().manual_seed(3))
        torch.testing.assert_close((out - middle).abs(), torch.full_like(middle, 0.1))  # +-epsilon on every pixel
        torch.testing.assert_close(rms_distortion(out, middle), torch.full((40,), 0.1))
    a = sign_perturbation(net, middle, y[:40], 0.1, "random", torch.Generator().manual_seed(3))
    b = sign_perturbation(net, middle, y[:40], 0.1, "random", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and 0.4 < float((a > 0.5).float().mean()) < 0.6  # seeded, fair signs
    pgd = sign_perturbation(net, x[:40], y[:40], 0.1, "gradient", torch.Generator().manual_seed(0), steps=5)
    assert float((pgd - x[:40]).abs().max()) <= 0.1 + 1e-6 and pgd.min() >= 0 and pgd.max() <= 1
    with torch.no_grad():  # PGD's five steps find a higher loss than one gradient sign
        assert F.cross_entropy(net(pgd), y[:40]) > F.cross_entropy(net(fgsm), y[:40])
    with pytest.raises(ValueError, match="direction"):
        sign_perturbation(net, x, y, 0.1, "sideways")


def test_perturbed_objective_is_goodfellows(few_digit_vectors):
    x, y = few_digit_vectors
    net = fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(1))
    task = PerturbedTrainingTask(net, x, y, direction="gradient", epsilon=0.2, adversarial_weight=0.3, **RECIPE)
    task.train_batches(0)
    idx = torch.arange(50)
    step = task.training_step(idx)
    perturbed = sign_perturbation(net, x[:50], y[:50], 0.2, "gradient")
    expected = 0.7 * F.cross_entropy(net(x[:50]), y[:50]) + 0.3 * F.cross_entropy(net(perturbed), y[:50])
    torch.testing.assert_close(step.loss, expected + task.penalty())
    with pytest.raises(ValueError, match="epsilon"):
        PerturbedTrainingTask(net, x, y, direction="gradient", epsilon=0.0, **RECIPE)
    with pytest.raises(ValueError, match="adversarial_weight"):
        PerturbedTrainingTask(net, x, y, direction="random", epsilon=0.1, adversarial_weight=1.5, **RECIPE)


# --------------------------------------------------------------------------- the monitor


def test_the_monitor_watches_a_seeded_subset_and_changes_nothing(few_digit_vectors):
    x, y = few_digit_vectors
    monitor = TrainingMonitor(x, 100, seed=5)
    assert monitor.index.numel() == 100 and torch.equal(monitor.index, TrainingMonitor(x, 100, seed=5).index)
    assert TrainingMonitor(x, 0, seed=5).index.numel() == 300 and TrainingMonitor(x, 999, seed=5).index.numel() == 300
    with pytest.raises(ValueError, match="monitor_images"):
        TrainingMonitor(x, -1, seed=5)
    options = TrainOptions(epochs=3, device="cpu", progress=False)
    watched = fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(1))
    task = MonitoredZooTask(watched, x, y, monitor=monitor, **RECIPE)
    fit(task, options)
    task.finish(3)
    assert [row["epoch"] for row in monitor.rows] == [0, 1, 2, 3]
    assert monitor.rows[0]["clean_train_error"] > monitor.rows[-1]["clean_train_error"]
    assert all(row["monitor_images"] == 100 for row in monitor.rows)
    plain = fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(1))
    fit(MonitoredZooTask(plain, x, y, **RECIPE), options)
    for a, b in zip(watched.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)  # watching draws nothing from training's random streams


def test_a_resumed_perturbed_run_ends_bitwise_with_the_same_log(few_digit_vectors, killed_and_resumed):
    x, y = few_digit_vectors

    def run(checkpoints=None):
        net = fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(1))
        task = PerturbedTrainingTask(net, x, y, direction="random", epsilon=0.1,
                                     monitor=TrainingMonitor(x, 50, seed=1), **RECIPE)
        fit(task, TrainOptions(epochs=4, device="cpu", progress=False, checkpoint_dir=checkpoints,
                               fingerprint={"test": "perturbed"}))
        task.finish(4)
        return task

    reference, resumed = killed_and_resumed(run)
    assert len(reference.monitor.rows) == 5  # epochs 0-3 and the end; NaN before the first epoch's perturbations
    pd.testing.assert_frame_equal(pd.DataFrame(resumed.monitor.rows), pd.DataFrame(reference.monitor.rows))
    assert all(0.05 < row["perturbation_rms"] <= 0.1 for row in reference.monitor.rows[1:])  # clipped at the box


# --------------------------------------------------------------------------- every regime, end to end


@pytest.mark.parametrize("regime", REGIMES)
def test_train_regime(few_digit_vectors, regime):
    x, y = few_digit_vectors
    adversarial = adversarial_config(monitor_images=100, layers=["input", 1], refresh_every=3, refresh_size=10,
                                     capped_pool={"refresh_every": 2, "refresh_size": 10, "pool_fraction": 0.2,
                                                  "max_distortion": [0.3, 0.3]})
    settings = {**regime_settings(adversarial, regime), "epochs": 3, "batch_size": 50}
    model, stats, rows = train_regime(regime, x, y, settings, TrainOptions(epochs=3, device="cpu", progress=False),
                                      seed=11)
    assert not model.training and rows and rows[-1]["clean_train_error"] < 0.9
    assert rows[-1]["epoch"] == 3 and rows[-1]["epochs_done"] == 3.0
    if regime in POOL_REGIMES:
        assert stats["pool_layers"] == "input,1" and stats["pool_input_generated"] > 0
        assert {"pool_input_uses", "pool_1_mean_distortion", "pool_1_capped"} <= set(rows[-1])
        if regime != "adversarial_pool":  # the cap holds
            assert stats["pool_input_mean_distortion"] <= 0.3
    else:
        assert stats == {}
    if regime in ("gradient_sign", "random_sign"):
        assert rows[-1]["perturbation_rms"] > 0


def test_the_weight_decay_regime_is_the_zoos_fc100_100_10(few_digit_vectors):
    x, y = few_digit_vectors
    settings = {**regime_settings(adversarial_config(monitor_images=50), "weight_decay"), "batch_size": 50}
    options = TrainOptions(epochs=2, device="cpu", progress=False)
    model, _, _ = train_regime("weight_decay", x, y, settings, options, seed=4)
    zoo, _ = train_zoo_model("FC100-100-10", x, y, options, seed=4, batch_size=50, lr=settings["lr"],
                             schedule=settings["schedule"], normalize=settings["decay_normalization"])
    for a, b in zip(model.parameters(), zoo.parameters(), strict=True):
        assert torch.equal(a, b)  # same initial weights, data order and recipe; the monitor changes nothing
