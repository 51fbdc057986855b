"""Adversarial training with per-layer pools (nnprobe.studies.adversarial.pools, Szegedy et al. 2013,
Sec. 4.2): the examples of each pool, what they train, the warm-up, FIFO replacement and resume.

Tiny sigmoid networks on scikit-learn's 8x8 digits (pixels scaled to [0, 1]), seconds on the CPU.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from nnprobe.engines.evaluation import error_rate
from nnprobe.engines.lbfgs import rms_distortion
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.szegedy import fc10, fc_sigmoid
from nnprobe.studies.adversarial import pools
from nnprobe.studies.adversarial.monitor import TrainingMonitor
from nnprobe.studies.adversarial.pools import AdversarialPoolTask, LayersAbove

ATTACK = {"c_grid": (4.0, 1.0, 0.25, 0.0625), "max_iter": 15, "bisection_steps": 1, "refine_steps": 10}
RECIPE = {"weight_decay": (1e-5, 1e-5, 1e-6), "normalize": "none", "batch_size": 50, "lr": 3e-2}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def network(seed: int = 1):
    return fc_sigmoid((24, 16), num_inputs=64, generator=torch.Generator().manual_seed(seed))


def task_for(x, y, *, layers=("input", 0, 1), seed=1, **overrides) -> AdversarialPoolTask:
    kwargs = {"pool_size": 40, "refresh_every": 3, "refresh_size": 12, "warmup_epochs": 1, "attack": ATTACK,
              "order_seed": 7, **RECIPE, **overrides}
    return AdversarialPoolTask(network(seed), x, y, layers=layers, **kwargs)


def options(epochs: int, **kwargs) -> TrainOptions:
    return TrainOptions(epochs=epochs, device="cpu", progress=False, **kwargs)


def warmed_up(x, y, **kwargs) -> AdversarialPoolTask:
    """A task whose network trained through its 6 warm-up epochs (88% training accuracy): no attack yet."""
    task = task_for(x, y, warmup_epochs=6, **kwargs)
    fit(task, options(6))
    assert all(len(p["labels"]) == 0 and p["generated"] == 0 for p in task.pools.values())
    task.train_batches(6)  # the epoch's generator, as the engine sets it
    return task


def test_layers_above_continue_the_network_and_train_only_what_is_above(few_digit_vectors):
    x, y = few_digit_vectors
    net = network().eval()
    hidden = net.hidden(x)
    for layer in (0, 1):
        above = LayersAbove(net, layer)
        torch.testing.assert_close(above(hidden[layer]), net(x), rtol=0, atol=1e-6)
        # A loss on layer-l inputs reaches the layers above l only.
        loss = F.cross_entropy(above(hidden[layer].detach()), y)
        named = dict(net.named_parameters())
        grads = dict(zip(named, torch.autograd.grad(loss, list(named.values()), allow_unused=True)))
        below = {n for n in named if n.startswith(tuple(f"layers.{k}." for k in range(layer + 1)))}
        assert below and all(grads[n] is None for n in below)
        assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in set(named) - below)


def test_pool_examples_are_adversarial_activations_with_true_labels(few_digit_vectors):
    x, y = few_digit_vectors
    task = warmed_up(x, y)
    task.step = 11
    task.refresh()
    task.network.eval()
    widths = {"input": (64,), "0": (24,), "1": (16,)}
    for name, pool in task.pools.items():
        n = len(pool["labels"])
        assert n > 6 and pool["generated"] == n and pool["failed"] + n <= 12
        examples = pool["examples"]
        assert examples.shape == (n, *widths[name])
        assert examples.min() >= 0 and examples.max() <= 1  # inside the layer's box
        # Made from the layer's own activations of the source images, a little perturbed ...
        clean = task.activations(name, x[pool["sources"]])
        d = rms_distortion(examples, clean)
        assert (d > 0).all() and (d < 0.5).all()
        torch.testing.assert_close(d.double(), pool["distortions"][-n:].to(d.device))
        # ... classified by the layers above as their (wrong) target, labelled with the truth.
        with torch.no_grad():
            assert torch.equal(task.above(name)(examples).argmax(1), pool["targets"])
            assert not torch.equal(task.above(name)(clean).argmax(1), pool["targets"])
        assert torch.equal(pool["labels"], y[pool["sources"]])
        assert (pool["targets"] != pool["labels"]).all()
        assert (pool["made"] == 11).all()


def test_no_attack_before_the_warm_up(few_digit_vectors, monkeypatch):
    x, y = few_digit_vectors
    calls = []
    attack = pools.minimal_adversarial_lbfgs

    def counted(model, h, target, **kwargs):
        calls.append(h.shape[1])
        return attack(model, h, target, **kwargs)

    monkeypatch.setattr(pools, "minimal_adversarial_lbfgs", counted)
    task = task_for(x, y, warmup_epochs=2, layers=("input", 1))
    fit(task, options(2))
    assert calls == [] and task.step == 12
    task = task_for(x, y, warmup_epochs=2, layers=("input", 1))
    fit(task, options(3))
    # Epoch 3 (6 steps of 50): refreshes before its steps 1 and 4, each attacking both layers.
    assert calls == [64, 16, 64, 16]
    assert {int(m) for p in task.pools.values() for m in p["made"]} == {12, 15}


def test_a_full_pool_drops_its_oldest_examples_first(few_digit_vectors):
    x, y = few_digit_vectors
    task = warmed_up(x, y, layers=(1,), pool_size=20, refresh_size=9)
    for step in range(6):
        before = {k: v.clone() for k, v in task.pools["1"].items() if isinstance(v, torch.Tensor)}
        task.step = step
        task.refresh()
        after = task.pools["1"]
        new = int((after["made"] == step).sum())
        assert new > 0 and torch.equal(after["made"][-new:], torch.full((new,), step))
        kept = len(after["labels"]) - new
        assert kept == min(len(before["labels"]), 20 - new)
        for key in ("examples", "labels", "sources", "made"):  # the newest of the old ones, in order
            assert torch.equal(after[key][:kept], before[key][len(before[key]) - kept :])
    assert len(task.pools["1"]["labels"]) == 20 and task.pools["1"]["generated"] > 20
    assert int(task.pools["1"]["made"].min()) > 0  # the first refresh's examples are gone


def test_training_on_a_pool_reaches_only_the_layers_above_it(few_digit_vectors):
    x, y = few_digit_vectors
    for layer, frozen in ((0, ("layers.0.",)), (1, ("layers.0.", "layers.1."))):
        task = warmed_up(x, y, layers=(layer,))
        task.refresh()
        task.network.train()
        logits, labels = task.pool_logits()
        assert len(logits) == 1 and logits[0].shape == (task.per_pool, 10)
        named = dict(task.network.named_parameters())
        grads = torch.autograd.grad(F.cross_entropy(logits[0], labels[0]), list(named.values()), allow_unused=True)
        for (name, _), grad in zip(named.items(), grads):
            assert (grad is None) == name.startswith(frozen), name


def test_resume_reproduces_the_pools_and_weights_bitwise(few_digit_vectors, killed_and_resumed):
    x, y = few_digit_vectors

    def run(checkpoints=None):
        task = task_for(x, y, recompute=True, max_distortion=[0.5, 0.5, 0.5], monitor=TrainingMonitor(x, 50, seed=0))
        fit(task, options(4, checkpoint_dir=checkpoints, fingerprint={"test": "pools"}))
        return task

    reference, resumed = killed_and_resumed(run)
    assert all(p["generated"] > 0 for p in reference.pools.values())
    assert (resumed.step, resumed.attack_steps) == (reference.step, reference.attack_steps) == (24, 18)
    for name, pool in reference.pools.items():
        for key, value in pool.items():
            other = resumed.pools[name][key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, (name, key)
    assert len(reference.monitor.rows) == 6
    pd.testing.assert_frame_equal(pd.DataFrame(resumed.monitor.rows), pd.DataFrame(reference.monitor.rows))


def test_a_cap_keeps_out_the_far_examples_and_counts_them(few_digit_vectors):
    x, y = few_digit_vectors
    free = warmed_up(x, y, layers=("input", 1), refresh_size=30)
    free.refresh()
    caps = {name: float(pool["distortions"].median()) for name, pool in free.pools.items()}
    capped = warmed_up(x, y, layers=("input", 1), refresh_size=30, max_distortion=[caps["input"], caps["1"]])
    capped.refresh()
    for name, pool in capped.pools.items():  # the same attack on the same images, the far half kept out
        reference = free.pools[name]
        assert pool["generated"] + pool["capped"] == reference["generated"] and pool["capped"] > 0
        assert (pool["distortions"] <= caps[name]).all() and (pool["held_distortions"] <= caps[name]).all()
        kept = reference["distortions"] <= caps[name]
        assert torch.equal(pool["sources"], reference["sources"][kept.to(reference["sources"].device)])
    with pytest.raises(ValueError, match="one cap > 0 per layer"):
        task_for(x, y, layers=("input", 1), max_distortion=[0.1])


def test_examples_store_their_perturbation_and_are_recomputed_through_the_lower_layers(few_digit_vectors):
    x, y = few_digit_vectors
    task = warmed_up(x, y, layers=(1,), recompute=True)
    task.refresh()
    pool = task.pools["1"]
    clean = task.activations("1", x[pool["sources"]])
    torch.testing.assert_close(pool["perturbations"], pool["examples"] - clean)
    with torch.no_grad():  # the lower layers train on: the stored activation goes stale
        task.network.layers[0].weight.mul_(1.5)
    task.network.train()
    task.generator = torch.Generator().manual_seed(5)
    (logits,), (labels,) = task.pool_logits()
    draw = torch.randint(0, len(pool["labels"]), (task.per_pool,), generator=torch.Generator().manual_seed(5))
    current = (task.activations("1", x[pool["sources"][draw]]) + pool["perturbations"][draw]).clamp(0, 1)
    torch.testing.assert_close(logits, task.above("1")(current))
    assert torch.equal(labels, pool["labels"][draw])
    stale = task_for(x, y, layers=(1,))  # without recompute the examples are drawn as made
    stale.network.load_state_dict(task.network.state_dict())
    stale.pools, stale.generator = task.pools, torch.Generator().manual_seed(5)
    (stale_logits,), _ = stale.pool_logits()
    torch.testing.assert_close(stale_logits, stale.above("1")(pool["examples"][draw]))
    assert not torch.allclose(stale_logits, logits)


def test_the_monitor_logs_every_refresh(few_digit_vectors):
    x, y = few_digit_vectors
    monitor = TrainingMonitor(x, 100, seed=0)
    task = task_for(x, y, layers=("input", 0), monitor=monitor, warmup_epochs=6)
    fit(task, options(8))
    task.finish(8)
    # 6 steps an epoch, a refresh every 3 steps after the 6 warm-up epochs: 4 refreshes and the end
    assert [row["step"] for row in monitor.rows] == [36, 39, 42, 45, 48]
    assert [row["epochs_done"] for row in monitor.rows] == [6.0, 6.5, 7.0, 7.5, 8.0]
    last = monitor.rows[-1]
    pool = task.pools["0"]
    assert last["pool_0_size"] == len(pool["labels"]) and last["pool_0_added"] == 0
    assert last["pool_0_uses"] == pytest.approx(pool["drawn"] / pool["generated"])
    assert pool["drawn"] == task.per_pool * 12  # drawn at each of the 12 steps after the first refresh
    assert last["pool_0_mean_distortion"] == pytest.approx(float(pool["held_distortions"].mean()))
    assert last["clean_train_error"] == error_rate(task.network, x[monitor.index], y[monitor.index])
    assert monitor.rows[0]["pool_input_added"] > 0


def test_bad_layers_are_refused(few_digit_vectors):
    x, y = few_digit_vectors
    with pytest.raises(ValueError, match="has 2 hidden layers"):
        task_for(x, y, layers=("input", 2))
    with pytest.raises(ValueError, match="repeat"):
        task_for(x, y, layers=(0, 0))
    with pytest.raises(ValueError, match="warmup_epochs"):
        task_for(x, y, warmup_epochs=-1)
    with pytest.raises(ValueError, match="pool_fraction"):
        task_for(x, y, pool_fraction=0)
    with pytest.raises(TypeError, match="sigmoid network"):
        AdversarialPoolTask(fc10(64), x, y, layers=("input", 0), pool_size=1, refresh_every=1, refresh_size=1,
                            order_seed=0, weight_decay=0.0, normalize="none", batch_size=50, lr=1e-2)
    AdversarialPoolTask(fc10(64), x, y, layers=("input",), pool_size=1, refresh_every=1, refresh_size=1,
                        order_seed=0, weight_decay=0.0, normalize="none", batch_size=50, lr=1e-2)
