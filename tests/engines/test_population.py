"""The population engine: K members trained together equal K members trained one at a time.

Every population here trains through the one training engine (``fit`` of a ``PopulationTask``);
the references are plain loops written out in this file (``zero_grad``, ``backward``, ``step``),
in float64 so that any difference beyond rounding shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.core.seeds import derive_seed
from nnprobe.core.weights import WeightsError, save_weights
from nnprobe.engines.population import (
    Member,
    PopulationTask,
    batch_indices,
    class_metrics,
    epoch_permutations,
    init_population,
    load_population,
    member_network,
    normalize,
    population_logits,
    population_loss,
    predict_population,
    save_population,
)
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models import load_model
from nnprobe.models.keras_cnn import keras_cnn

N, C, H, CLASSES = 96, 1, 8, 10


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_model(generator: torch.Generator) -> nn.Module:
    return keras_cnn(in_channels=C, num_classes=CLASSES, input_size=H, padding=1, generator=generator)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(N, C, H, H), dtype=np.uint8))
    base = rng.integers(0, CLASSES, size=N)
    members = [
        Member(f"m{k}", derive_seed("init", k), derive_seed("order", k), np.roll(base, k))
        for k in range(3)
    ]
    mean = torch.tensor([0.5], dtype=torch.float64)
    std = torch.tensor([0.29], dtype=torch.float64)
    return images, members, mean, std


def engine_fit(population, images, labels, orders, mean, std, epochs, batch_size, precision="64-true", **options):
    """Train ``population`` with the engine (Adam, lr 1e-3, eps 1e-7); return the task and the history."""
    task = PopulationTask(population, images, labels, orders, mean.tolist(), std.tolist(), batch_size)
    history = fit(task, TrainOptions(epochs=epochs, device="cpu", precision=precision, progress=False, **options))
    return task, history


def train_alone(member: Member, images, mean, std, epochs, batch_size, dtype):
    """Reference: one ordinary nn.Module, its own Adam, the member's seeds and batches."""
    model = tiny_model(torch.Generator().manual_seed(member.init_seed)).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    labels = torch.as_tensor(member.labels)
    for epoch in range(epochs):
        perm = epoch_permutations([member.order_seed], epoch, images.shape[0])[0]
        for start in range(0, images.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(normalize(images[idx], mean, std, dtype)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.state_dict()


def plain_population_loop(population, images, labels, orders, mean, std, epochs, batch_size):
    """Reference: the population's stacked tensors trained by a plain loop, no engine.

    Returns the mean member loss of every step, per epoch.
    """
    params = list(population.params.values())
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    losses = []
    for epoch in range(epochs):
        perms = epoch_permutations(orders, epoch, images.shape[0])
        epoch_losses = []
        for idx in batch_indices(perms, batch_size):
            loss, _ = population_loss(population, images, labels, idx, mean, std)
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch_losses.append(float(loss.detach()) / population.size)
        losses.append(epoch_losses)
    return losses


def test_population_equals_members_trained_alone(data):
    images, members, mean, std = data
    pop = init_population(tiny_model, [m.init_seed for m in members], dtype=torch.float64)
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    task, _ = engine_fit(pop, images, labels, [m.order_seed for m in members], mean, std, epochs=2, batch_size=16)
    trained = task.trained()
    for k, member in enumerate(members):
        alone = train_alone(member, images, mean, std, epochs=2, batch_size=16, dtype=torch.float64)
        for name, value in alone.items():
            assert trained.params[name].dtype == torch.float64
            torch.testing.assert_close(trained.params[name][k], value, rtol=1e-9, atol=1e-11)


def test_result_of_a_member_does_not_depend_on_population_size(data):
    images, members, mean, std = data
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    big = init_population(tiny_model, [m.init_seed for m in members], dtype=torch.float64)
    big, _ = engine_fit(big, images, labels, [m.order_seed for m in members], mean, std, epochs=1, batch_size=32)
    small = init_population(tiny_model, [members[1].init_seed], dtype=torch.float64)
    small, _ = engine_fit(small, images, labels[1:2], [members[1].order_seed], mean, std, epochs=1, batch_size=32)
    big, small = big.trained(), small.trained()
    for name in big.params:
        torch.testing.assert_close(big.params[name][1], small.params[name][0], rtol=1e-9, atol=1e-11)


def test_members_differ_and_learn(data):
    images, members, mean, std = data
    pop = init_population(tiny_model, [m.init_seed for m in members])
    assert not torch.equal(pop.params["conv1.weight"][0], pop.params["conv1.weight"][1])
    labels = torch.as_tensor(np.stack([members[0].labels] * 3))
    _, history = engine_fit(pop, images, labels, [1, 2, 3], mean.float(), std.float(), epochs=40, batch_size=32,
                            precision="32-true")
    assert len(history) == 40
    # The engine reports each epoch's mean loss; the old loop reported every step's, so this
    # compares the mean of the first epoch (already below its first step) with the last.
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_engine_matches_plain_loop(data, tmp_path):
    images, members, mean, std = data
    seeds = [m.init_seed for m in members]
    orders = [m.order_seed for m in members]
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    plain = init_population(tiny_model, seeds, dtype=torch.float64)
    losses = plain_population_loop(plain, images, labels, orders, mean, std, epochs=2, batch_size=16)
    task, history = engine_fit(init_population(tiny_model, seeds, dtype=torch.float64), images, labels, orders, mean,
                               std, epochs=2, batch_size=16, history=tmp_path / "history.csv")
    engine = task.trained()
    for name in plain.params:
        torch.testing.assert_close(engine.params[name], plain.params[name].detach(), rtol=1e-9, atol=1e-11)
    # the loss the engine reports is the plain loop's mean member loss, epoch by epoch
    assert [row["epoch"] for row in history] == [1, 2]
    for row, epoch_losses in zip(history, losses, strict=True):
        assert row["loss"] == pytest.approx(np.mean(epoch_losses), rel=1e-9)
        assert 0 <= row["accuracy"] <= 1
    log = (tmp_path / "history.csv").read_text()
    assert log.startswith("epoch,loss,accuracy") and log.count("\n") == 3


def test_permutations_and_batches():
    perms = epoch_permutations([5, 6], epoch=0, n=50)
    assert sorted(perms[0].tolist()) == list(range(50))
    assert not torch.equal(perms[0], perms[1])
    assert torch.equal(perms[0], epoch_permutations([5], 0, 50)[0])
    assert not torch.equal(perms[0], epoch_permutations([5], 1, 50)[0])
    sizes = [b.shape for b in batch_indices(perms, 16)]
    assert sizes == [(2, 16)] * 3 + [(2, 2)]


def test_class_metrics_on_known_predictions():
    labels = torch.tensor([0, 0, 1, 1, 2])
    probs = torch.tensor(
        [[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.0625, 0.0625, 0.875]]]
    )
    m = class_metrics(probs.log(), labels, 3)
    np.testing.assert_allclose(m["accuracy"][0], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(m["logloss_bits"][0], [1.5, 1.5, -np.log2(0.875)])
    assert m["confusion"][0].tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    np.testing.assert_allclose(m["mean_probs"][0].sum(1), 1.0)
    assert m["n_images"].tolist() == [2, 2, 1]


def test_predict_population_shape(data):
    images, members, mean, std = data
    pop = init_population(tiny_model, [1, 2])
    out = predict_population(pop, images, mean.float(), std.float(), batch_size=40)
    assert out.shape == (2, N, CLASSES)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, N))


@pytest.mark.parametrize("layout", ["grouped", "gemm"])
def test_packed_layouts_equal_vmap(data, layout):
    images, members, mean, std = data
    seeds = [m.init_seed for m in members]
    vm = init_population(tiny_model, seeds, dtype=torch.float64)
    gr = init_population(tiny_model, seeds, dtype=torch.float64, layout=layout)
    x = normalize(images[:16], mean, std, torch.float64).expand(3, 16, C, H, H)
    torch.testing.assert_close(population_logits(gr, x), population_logits(vm, x), rtol=1e-10, atol=1e-12)
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    orders = [m.order_seed for m in members]
    vm, _ = engine_fit(vm, images, labels, orders, mean, std, epochs=1, batch_size=16)
    gr, _ = engine_fit(gr, images, labels, orders, mean, std, epochs=1, batch_size=16)
    vm, gr = vm.trained(), gr.trained()
    assert gr.layout == layout
    for name in vm.params:
        torch.testing.assert_close(gr.params[name], vm.params[name], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("layout", ["grouped", "gemm"])
def test_packed_layouts_on_the_paper_cnn(layout):
    """The 32x32 'valid' CNN: the packed layouts compute each member's own forward."""
    gen = [torch.Generator().manual_seed(s) for s in (1, 2)]
    models = [keras_cnn(generator=g).double() for g in gen]
    pop = init_population(lambda g: keras_cnn(generator=g), [1, 2], dtype=torch.float64, layout=layout)
    x = torch.randn(2, 5, 3, 32, 32, dtype=torch.float64)
    expected = torch.stack([m(x[k]) for k, m in enumerate(models)])
    torch.testing.assert_close(population_logits(pop, x), expected, rtol=1e-10, atol=1e-12)


def test_unknown_layout_is_rejected():
    with pytest.raises(ValueError, match="layout must be one of"):
        init_population(tiny_model, [1], layout="packed")


# --------------------------------------------------------------------------- saved populations

ARCHITECTURE = {"name": "keras_cnn", "in_channels": C, "num_classes": CLASSES, "input_size": H, "padding": 1}


@pytest.mark.parametrize("layout", ["vmap", "grouped"])
def test_save_load_population_round_trip(data, tmp_path, layout):
    _, members, _, _ = data
    pop = init_population(tiny_model, [m.init_seed for m in members], layout=layout)
    path = save_population(tmp_path / "pop.safetensors", pop, members, ARCHITECTURE,
                           config={"pairs": ["none"], "seed": 3}, extra={"metrics": {"loss": 0.5}})
    back, saved = load_population(path)
    assert back.layout == layout and back.size == len(members)
    assert set(back.params) == set(pop.params)
    for name, value in pop.params.items():
        assert back.params[name].dtype == value.dtype and torch.equal(back.params[name], value.detach()), name
    assert type(back.template) is type(pop.template) and next(back.template.parameters()).is_meta
    assert saved.architecture == ARCHITECTURE
    assert saved.config == {"pairs": ["none"], "seed": 3}
    assert saved.extra == {"members": ["m0", "m1", "m2"], "layout": layout, "metrics": {"loss": 0.5}}
    assert saved.seeds == {"members": [{"name": m.name, "init_seed": m.init_seed, "order_seed": m.order_seed}
                                       for m in members]}


def test_member_network_is_the_members_own_network(data, tmp_path):
    images, members, mean, std = data
    pop = init_population(tiny_model, [m.init_seed for m in members])
    back, saved = load_population(save_population(tmp_path / "pop.safetensors", pop, members, ARCHITECTURE))
    x = normalize(images[:5], mean, std, torch.float32)
    stacked = population_logits(back, x.expand(len(members), *x.shape))
    for k, member in enumerate(members):
        network = member_network(back, saved.architecture, k)
        assert not network.training
        own = tiny_model(torch.Generator().manual_seed(member.init_seed))  # as the member was initialised
        with torch.no_grad():
            out = network(x)
            torch.testing.assert_close(out, own(x), rtol=0, atol=0)
        torch.testing.assert_close(out, stacked[k], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        first, second = (member_network(back, saved.architecture, k)(x) for k in (0, 1))
        assert not torch.allclose(first, second)


def test_population_and_single_network_files_are_not_confused(data, tmp_path):
    _, members, _, _ = data
    single = save_weights(tmp_path / "one.safetensors", tiny_model(torch.Generator().manual_seed(0)).state_dict(),
                          architecture=ARCHITECTURE)
    with pytest.raises(WeightsError, match=r"one\.safetensors holds one network, not a population; load it with "
                                           r"nnprobe\.models\.load_model"):
        load_population(single)
    pop = init_population(tiny_model, [m.init_seed for m in members])
    several = save_population(tmp_path / "pop.safetensors", pop, members, ARCHITECTURE)
    with pytest.raises(WeightsError, match=r"pop\.safetensors holds a population of 3 networks; load it with "
                                           r"nnprobe\.engines\.population\.load_population"):
        load_model(several)
