"""Every architecture by name (nnprobe.models): built from its description, saved in the weights
format, loaded back with the same outputs; the "input" wrapper; the errors that name the problem."""

from __future__ import annotations

import pytest
import torch

from nnprobe.core.weights import WeightsError, save_weights
from nnprobe.models import ARCHITECTURES, architecture_class, build_model, load_model
from nnprobe.models.init import Normalized

#: A tiny description of every entry of ARCHITECTURES and the shape of an input batch for it.
TINY = {
    "keras_cnn": ({"in_channels": 1, "num_classes": 3, "input_size": 8, "padding": 1}, (2, 1, 8, 8)),
    "vgg_cnn": ({"in_channels": 3, "num_classes": 3, "input_size": [8, 16], "width": 2}, (2, 3, 8, 16)),
    "softmax_regression": ({"num_inputs": 12, "num_classes": 3}, (2, 1, 3, 4)),
    "sigmoid_mlp": ({"hidden": [5, 4], "num_inputs": 12, "num_classes": 3, "dropout": 0.5}, (2, 1, 3, 4)),
    "autoencoder_classifier": ({"code": 5, "num_inputs": 12, "num_classes": 3}, (2, 1, 3, 4)),
    "cifar_resnet": ({"blocks": [1, 1, 1, 1], "width": 2, "in_channels": 1, "num_classes": 3}, (2, 1, 8, 8)),
    "standard_cnn": ({"in_channels": 2, "num_classes": 3, "width": 2}, (2, 2, 8, 8)),
    "topdown_net": ({"in_channels": 2, "num_classes": 3, "width": 2}, (2, 2, 8, 8)),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_every_architecture_is_covered():
    assert set(TINY) == set(ARCHITECTURES)


def test_importing_the_registry_loads_no_architecture():
    """A job depends on the architecture modules it imports (nnprobe.core.provenance): the registry
    must not import them all, or editing one would rerun every job that builds any network."""
    import subprocess
    import sys

    code = ("import sys, nnprobe.models; "
            "print(sorted(m for m in sys.modules if m.startswith('nnprobe.models.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['nnprobe.models.init']", loaded


def trained_looking(architecture: dict, input_shape: tuple[int, ...]) -> torch.nn.Module:
    """The network with weights and buffers that no fresh build has (so loading must restore them)."""
    torch.manual_seed(0)
    model = build_model(architecture)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        model.train()
        model(torch.rand(input_shape, generator=g))  # moves BatchNorm's running statistics, if any
    return model.eval()


def check_round_trip(architecture: dict, input_shape: tuple[int, ...], tmp_path) -> torch.nn.Module:
    model = trained_looking(architecture, input_shape)
    path = save_weights(tmp_path / "model.safetensors", model.state_dict(), architecture=architecture,
                        config={"note": "test"})
    torch.manual_seed(2)  # the loader's fresh build starts from other weights
    loaded, weights = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    assert weights.architecture == architecture and weights.config == {"note": "test"}
    state, back = model.state_dict(), loaded.state_dict()
    assert list(back) == list(state)
    for name in state:
        assert torch.equal(back[name], state[name]), name
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = loaded(x)
        assert out.shape == (input_shape[0], architecture.get("num_classes", 3))
        assert torch.equal(out, model(x))
        assert not torch.allclose(build_model(architecture).eval()(x), out)  # the weights matter
    return loaded


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_save_load_gives_the_same_network(name, tmp_path):
    arguments, input_shape = TINY[name]
    architecture = {"name": name, **arguments}
    loaded = check_round_trip(architecture, input_shape, tmp_path)
    assert isinstance(loaded, architecture_class(name))


@pytest.mark.parametrize("name", ["standard_cnn", "keras_cnn"])
def test_input_wrapper_round_trip(name, tmp_path):
    arguments, input_shape = TINY[name]
    channels = input_shape[1]
    mean, std = [0.25, 0.5][:channels], [0.5, 0.125][:channels]
    architecture = {"name": name, **arguments, "input": {"mean": mean, "std": std}}
    if name == "keras_cnn":
        architecture["layers"] = ["conv1", "fc1"]
    loaded = check_round_trip(architecture, input_shape, tmp_path)
    assert isinstance(loaded, Normalized) and isinstance(loaded.net, architecture_class(name))
    assert loaded.mean.flatten().tolist() == mean and loaded.std.flatten().tolist() == std
    expected_layers = ("net.conv1", "net.fc1") if name == "keras_cnn" else ("net.stage1", "net.stage2", "net.stage3")
    assert loaded.layers == expected_layers
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(4))
    standardised = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), loaded.net(standardised), rtol=0, atol=0)


def test_unknown_architecture_names_the_known_ones(tmp_path):
    known = str(sorted(ARCHITECTURES)).replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(WeightsError, match=rf"unknown architecture 'vgg16'; expected one of {known}"):
        build_model({"name": "vgg16", "width": 2})
    with pytest.raises(WeightsError, match="unknown architecture None"):
        build_model({"width": 2})
    path = save_weights(tmp_path / "w.safetensors", {"a": torch.ones(1)}, architecture={"name": "vgg16"})
    with pytest.raises(WeightsError, match="unknown architecture 'vgg16'"):
        load_model(path)


def test_tensors_that_do_not_fit_the_named_architecture(tmp_path):
    arguments, input_shape = TINY["keras_cnn"]
    model = build_model({"name": "keras_cnn", **arguments})
    claimed = {"name": "keras_cnn", **arguments, "num_classes": 4}
    path = save_weights(tmp_path / "w.safetensors", model.state_dict(), architecture=claimed)
    with pytest.raises(WeightsError, match=r"w\.safetensors: its tensors .*'fc2\.weight': \(3, 64\).* do not fit "
                                           r"the architecture it names .*'fc2\.weight': \(4, 64\).*rerun the rule"):
        load_model(path)
    missing = save_weights(tmp_path / "m.safetensors", {k: v for k, v in model.state_dict().items() if k != "fc2.bias"},
                           architecture={"name": "keras_cnn", **arguments})
    with pytest.raises(WeightsError, match="do not fit the architecture"):
        load_model(missing)
