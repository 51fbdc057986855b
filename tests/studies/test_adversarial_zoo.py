"""The model zoo of Szegedy et al. (2013) (nnprobe.studies.adversarial.zoo): the paper's networks
by name, the weight decay in each of its forms, AE400-10's sparsity penalty, dropout, file names and
weights files."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from nnprobe.core.naming import zoo_slug
from nnprobe.core.weights import WeightsError, read_weights, save_weights
from nnprobe.models import build_model, count_parameters, load_model
from nnprobe.models.szegedy import SigmoidMLP, ae400_10, fc10, fc_sigmoid
from nnprobe.studies.adversarial.zoo import (
    ZOO,
    build_zoo_model,
    decayed_layers,
    kl_sparsity_penalty,
    weight_decay_penalty,
    zoo_architecture,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- zoo


@pytest.mark.parametrize(
    "name, count",
    [
        ("FC10(1e-4)", 784 * 10 + 10),
        ("FC10(1)", 7_850),
        ("FC100-100-10", 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
        ("FC200-200-10", 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10),
        ("FC123-456-10", 784 * 123 + 123 + 123 * 456 + 456 + 456 * 10 + 10),
        ("AE400-10", 784 * 400 + 400 + 400 * 784 + 784 + 400 * 10 + 10),
    ],
)
def test_zoo_parameter_counts_and_shapes(name, count):
    model = build_zoo_model(name, generator=torch.Generator().manual_seed(0))
    assert count_parameters(model) == count
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert torch.equal(model(x), model(x.flatten(1)))  # images or flat vectors


def test_zoo_names_and_paper_facts():
    assert {"FC10(1e-4)", "FC10(1e-2)", "FC10(1)", "FC100-100-10", "FC200-200-10", "AE400-10"} <= set(ZOO)
    assert count_parameters(build_zoo_model("FC100-100-10")) == 89_610
    assert [ZOO[f"FC10({s})"].weight_decay for s in ("1e-4", "1e-2", "1")] == [1e-4, 1e-2, 1.0]
    assert ZOO["FC100-100-10"].weight_decay == (1e-5, 1e-5, 1e-6)
    assert ZOO["AE400-10"].weight_decay == 1e-6
    for entry in ZOO.values():  # every spec fits its model's decayed layers
        weight_decay_penalty(entry.constructor(), entry.weight_decay)
    assert [name for name, _ in decayed_layers(fc_sigmoid((100, 100)))] == ["layers.0", "layers.1", "out"]
    assert [name for name, _ in decayed_layers(ae400_10())] == ["encoder", "decoder", "classifier"]
    assert [name for name, _ in decayed_layers(fc10())] == ["fc"]


def test_zoo_models_are_seeded_and_named():
    a = build_zoo_model("FC100-100-10", 16, 10, torch.Generator().manual_seed(5))
    b = build_zoo_model("FC100-100-10", 16, 10, torch.Generator().manual_seed(5))
    c = build_zoo_model("FC100-100-10", 16, 10, torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    with pytest.raises(ValueError, match="model must be one of"):
        build_zoo_model("FC7")


# --------------------------------------------------------------------------- weight decay


def penalty(*args, **kwargs) -> float:
    return float(weight_decay_penalty(*args, **kwargs).detach())


def numbered_sigmoid_net() -> torch.nn.Module:
    """FC3-2-2 on 4 inputs, weights (3, 4), (2, 3), (2, 2) numbered 0, 1, 2, ... (+ layer index), biases 100."""
    model = fc_sigmoid((3, 2), num_inputs=4, num_classes=2)
    with torch.no_grad():
        for i, (_, layer) in enumerate(decayed_layers(model)):
            layer.weight.copy_(torch.arange(layer.weight.numel(), dtype=torch.float32).view_as(layer.weight) + i)
            layer.bias.fill_(100.0)
    return model


def test_classic_weight_decay_has_gradient_lambda_w_and_leaves_biases():
    """The default form: (lambda_l / 2) * sum w^2 per layer, whose gradient is exactly lambda_l * w."""
    model = numbered_sigmoid_net()
    lambdas = (1e-1, 1e-2, 1e-3)
    layers = [layer for _, layer in decayed_layers(model)]
    squares = [float((layer.weight.detach().double() ** 2).sum()) for layer in layers]
    assert squares[0] == 506  # hand value of layer 0: sum_{k<12} k^2
    assert penalty(model, lambdas) == pytest.approx(sum(lam / 2 * sq for lam, sq in zip(lambdas, squares)), rel=1e-6)
    assert penalty(model, (1.0, 0.0, 0.0)) == pytest.approx(253.0)
    assert penalty(model, lambdas) == penalty(model, lambdas, normalize="classic")  # the default form
    model.zero_grad()
    weight_decay_penalty(model, lambdas).backward()
    for lam, layer in zip(lambdas, layers):
        assert torch.equal(layer.weight.grad, lam * layer.weight.detach())  # exactly, not approximately
        assert layer.bias.grad is None  # biases are not decayed
    # the same as torch's coupled weight decay: one SGD step on the penalty == SGD(weight_decay=lambda)
    fc = fc10(num_inputs=4, generator=torch.Generator().manual_seed(0))
    twin = fc10(num_inputs=4, generator=torch.Generator().manual_seed(0))
    weight_decay_penalty(fc, 0.3).backward()
    torch.optim.SGD([fc.fc.weight], lr=0.5).step()
    twin.fc.weight.grad = torch.zeros_like(twin.fc.weight)
    torch.optim.SGD([twin.fc.weight], lr=0.5, weight_decay=0.3).step()
    torch.testing.assert_close(fc.fc.weight, twin.fc.weight)


@pytest.mark.parametrize("form, divisors", [("units", [3, 2, 2]), ("weights", [12, 6, 4]), ("none", [1, 1, 1]),
                                            ("classic", [2, 2, 2])])
def test_every_decay_form_normalises_each_layer_as_named(form, divisors):
    """lambda_l * sum w^2 / d_l with d_l the layer's units (outputs), weights, 1, or 2 (classic)."""
    model = numbered_sigmoid_net()
    lambdas = (1e-1, 1e-2, 1e-3)
    layers = [layer for _, layer in decayed_layers(model)]
    squares = [float((layer.weight.detach().double() ** 2).sum()) for layer in layers]
    expected = sum(lam * sq / d for lam, sq, d in zip(lambdas, squares, divisors))
    assert penalty(model, lambdas, normalize=form) == pytest.approx(expected, rel=1e-6)
    assert penalty(model, (1.0, 0, 0), normalize=form) == pytest.approx(506 / divisors[0])
    with torch.no_grad():  # biases are not decayed
        for layer in layers:
            layer.bias.fill_(-7.0)
    assert penalty(model, lambdas, normalize=form) == pytest.approx(expected, rel=1e-6)
    model.zero_grad()
    weight_decay_penalty(model, lambdas, normalize=form).backward()
    for lam, d, layer in zip(lambdas, divisors, layers):  # gradient 2 lambda_l w / d_l
        torch.testing.assert_close(layer.weight.grad, 2 * lam * layer.weight.detach() / d)
        assert layer.bias.grad is None
    # one lambda for every layer
    assert penalty(model, 0.5, normalize=form) == pytest.approx(penalty(model, (0.5,) * 3, normalize=form))


def test_classic_decay_is_what_table_1_lambda_means_for_fc10():
    """FC10 (10 units of 784 weights): classic is 5x the "units" form and 3,920x the "weights" form."""
    fc = fc10()
    with torch.no_grad():
        fc.fc.weight.fill_(0.5)
    assert penalty(fc, 1.0) == pytest.approx(7840 * 0.25 / 2)
    assert penalty(fc, 1.0) / penalty(fc, 1.0, normalize="units") == pytest.approx(5.0)
    assert penalty(fc, 1.0) / penalty(fc, 1.0, normalize="weights") == pytest.approx(3920.0)


def test_weight_decay_errors():
    model = fc_sigmoid((3,), num_inputs=4)
    with pytest.raises(ValueError, match="lambdas has 3 values but SigmoidMLP has 2 decayed layers"):
        weight_decay_penalty(model, (1e-5, 1e-5, 1e-6))
    with pytest.raises(ValueError, match=">= 0"):
        weight_decay_penalty(model, -1.0)
    with pytest.raises(ValueError, match=r"adversarial.decay_normalization\) must be one of \('classic'"):
        weight_decay_penalty(model, 1.0, normalize="fan_in")


# --------------------------------------------------------------------------- dropout, names, weights files


def test_dropout_acts_in_training_only_and_only_on_sigmoid_networks(digit_vector_split):
    x = digit_vector_split["x_test"][:32]
    model = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(0), dropout=(0.2, 0.5))
    plain = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), plain.eval()(x))  # same weights, no dropout in eval
        model.train()
        torch.manual_seed(0)
        a = model(x)
        b = model(x)
    assert not torch.allclose(a, b)  # dropout masks differ between calls in training
    assert all(torch.equal(h, g) for h, g in zip(model.hidden(x), plain.hidden(x)))  # hidden(): no dropout
    with pytest.raises(ValueError, match="sigmoid networks"):
        build_zoo_model("FC10(1)", 64, 10, dropout=(0.2, 0.5))
    with pytest.raises(ValueError, match="drop probability"):
        build_zoo_model("FC100-100-10", 64, 10, dropout=(0.2, 1.0))


def test_zoo_slug_is_the_rules_own_and_unique():
    """The rules take zoo_slug from the package (rules/common.smk imports it), so their file names
    and the package's cannot disagree; every zoo name gets its own slug."""
    rules = (REPO / "rules" / "common.smk").read_text()
    assert re.search(r"^from nnprobe\.core\.naming import [^)]*?\bzoo_slug\b", rules, re.M | re.S), (
        "rules/common.smk no longer imports zoo_slug from nnprobe.core.naming"
    )
    assert "def zoo_slug" not in rules, "rules/common.smk defines its own zoo_slug"
    slugs = {zoo_slug(name) for name in ZOO}
    assert len(slugs) == len(ZOO)
    assert zoo_slug("FC10(1e-4)") == "fc10_1e-4" and zoo_slug("AE400-10") == "ae400-10"
    assert all(re.fullmatch(r"[a-z0-9._-]+", s) for s in slugs)


def test_schema_lists_exactly_the_zoo():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    adv = schema["properties"]["adversarial"]["properties"]
    assert set(adv["models"]["items"]["enum"]) == set(ZOO)
    assert set(adv["models"]["default"]) <= set(ZOO)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_architecture_rebuilds_the_network(name):
    model = build_zoo_model(name, 64, 10, torch.Generator().manual_seed(0))
    rebuilt = build_model(zoo_architecture(model))
    assert type(rebuilt) is type(model)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match="not a network of the zoo"):
        zoo_architecture(torch.nn.Linear(2, 2))


def test_weights_file_round_trip(tmp_path, digit_vector_split):
    model = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(5), dropout=(0.2, 0.5))
    architecture = zoo_architecture(model)
    assert architecture == {"name": "sigmoid_mlp", "hidden": [100, 100], "num_inputs": 64, "num_classes": 10,
                            "input_dropout": 0.2, "dropout": 0.5}
    path = save_weights(tmp_path / "m.safetensors", model.state_dict(), architecture=architecture,
                        config={"model": "FC100-100-10"}, seeds={"init": 5})
    back, weights = load_model(path)
    assert isinstance(back, SigmoidMLP) and not back.training and back.dropout.p == 0.5
    assert weights.config == {"model": "FC100-100-10"} and weights.seeds == {"init": 5}
    x = digit_vector_split["x_test"]
    torch.testing.assert_close(back(x), model.eval()(x))
    # a file whose tensors are not those of the architecture it names is refused
    other = zoo_architecture(build_zoo_model("FC200-200-10", 64, 10))
    bad = save_weights(tmp_path / "bad.safetensors", model.state_dict(), architecture=other)
    assert read_weights(bad).architecture["hidden"] == [200, 200]
    with pytest.raises(WeightsError, match="do not fit the architecture"):
        load_model(bad)


# --------------------------------------------------------------------------- sparsity of AE400-10


def test_kl_sparsity_penalty_matches_a_hand_computation():
    code = torch.tensor([[0.2, 0.5], [0.4, 0.1]], requires_grad=True)  # mean activations 0.3 and 0.3
    # KL(0.1 || 0.3) = 0.1 ln(0.1/0.3) + 0.9 ln(0.9/0.7) = 0.1163218..., two units, beta = 3
    by_hand = 3 * 2 * (0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7))
    assert by_hand == pytest.approx(0.6979305, abs=1e-6)
    value = kl_sparsity_penalty(code, 0.1, 3.0)
    assert float(value.detach()) == pytest.approx(by_hand, rel=1e-6)
    value.backward()  # d/d rho_hat of KL is -rho/r + (1-rho)/(1-r), over N = 2 rows, times beta
    grad = 3 * (-0.1 / 0.3 + 0.9 / 0.7) / 2
    torch.testing.assert_close(code.grad, torch.full((2, 2), grad))
    assert grad > 0  # units on more often than rho are pushed down
    # zero exactly at the target; beta = 0 switches the penalty off
    assert float(kl_sparsity_penalty(torch.full((5, 3), 0.1), 0.1, 3.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_sparsity_penalty(code, 0.1, 0.0)) == 0.0
    # a fully saturated unit stays finite (rho_hat is clamped)
    assert math.isfinite(float(kl_sparsity_penalty(torch.ones(4, 2), 0.1, 3.0)))


def test_kl_sparsity_penalty_errors():
    with pytest.raises(ValueError, match=r"sparsity target rho must be a mean activation in \(0, 1\), got 0"):
        kl_sparsity_penalty(torch.rand(3, 2), 0.0, 3.0)
    with pytest.raises(ValueError, match="sparsity weight beta must be finite and >= 0"):
        kl_sparsity_penalty(torch.rand(3, 2), 0.1, -1.0)
    with pytest.raises(ValueError, match=r"code must be \(N, units\)"):
        kl_sparsity_penalty(torch.rand(3), 0.1, 3.0)
