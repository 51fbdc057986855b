"""The population engine: K members trained together equal K members trained one at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.models import keras_cnn
from nnprobe.population import (
    Member,
    batch_indices,
    class_metrics,
    epoch_permutations,
    init_population,
    make_optimizer,
    normalize,
    population_logits,
    predict_population,
    train_population,
)
from nnprobe.seeds import derive_seed
from nnprobe.training import fit_population

N, C, H, CLASSES = 96, 1, 8, 10


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


def test_population_equals_members_trained_alone(data):
    images, members, mean, std = data
    pop = init_population(tiny_model, [m.init_seed for m in members], dtype=torch.float64)
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    train_population(pop, images, labels, [m.order_seed for m in members], mean, std, epochs=2, batch_size=16)
    for k, member in enumerate(members):
        alone = train_alone(member, images, mean, std, epochs=2, batch_size=16, dtype=torch.float64)
        for name, value in alone.items():
            torch.testing.assert_close(pop.params[name][k].detach(), value, rtol=1e-9, atol=1e-11)


def test_result_of_a_member_does_not_depend_on_population_size(data):
    images, members, mean, std = data
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    big = init_population(tiny_model, [m.init_seed for m in members], dtype=torch.float64)
    train_population(big, images, labels, [m.order_seed for m in members], mean, std, epochs=1, batch_size=32)
    small = init_population(tiny_model, [members[1].init_seed], dtype=torch.float64)
    train_population(small, images, labels[1:2], [members[1].order_seed], mean, std, epochs=1, batch_size=32)
    for name in big.params:
        torch.testing.assert_close(big.params[name][1], small.params[name][0], rtol=1e-9, atol=1e-11)


def test_members_differ_and_learn(data):
    images, members, mean, std = data
    pop = init_population(tiny_model, [m.init_seed for m in members])
    assert not torch.equal(pop.params["conv1.weight"][0], pop.params["conv1.weight"][1])
    labels = torch.as_tensor(np.stack([members[0].labels] * 3))
    history = train_population(pop, images, labels, [1, 2, 3], mean.float(), std.float(), epochs=40, batch_size=32)
    assert history[-1] < 0.5 * history[0]


def test_lightning_module_matches_plain_loop(data, tmp_path):
    images, members, mean, std = data
    seeds = [m.init_seed for m in members]
    orders = [m.order_seed for m in members]
    labels = torch.as_tensor(np.stack([m.labels for m in members]))
    plain = init_population(tiny_model, seeds, dtype=torch.float64)
    train_population(plain, images, labels, orders, mean, std, epochs=2, batch_size=16)
    lit = fit_population(
        init_population(tiny_model, seeds, dtype=torch.float64), images, labels, orders, mean, std,
        epochs=2, batch_size=16, precision="64-true", accelerator="cpu", log_dir=tmp_path, progress=False,
    )
    for name in plain.params:
        torch.testing.assert_close(lit.params[name].double(), plain.params[name].detach(), rtol=1e-9, atol=1e-11)
    log = (tmp_path / "metrics.csv").read_text()
    assert "train_loss" in log and log.count("\n") >= 3


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
    train_population(vm, images, labels, orders, mean, std, epochs=1, batch_size=16)
    train_population(gr, images, labels, orders, mean, std, epochs=1, batch_size=16)
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
