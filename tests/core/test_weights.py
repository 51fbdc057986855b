"""The one weights format (nnprobe.core.weights): what is written is read back, tensors and
description; files of any other kind are refused, saying why; writes are atomic."""

from __future__ import annotations

import platform

import pytest
import torch
from safetensors.torch import save_file

import nnprobe
from nnprobe.core.weights import FORMAT, WeightsError, read_weights, save_weights


def test_round_trip_keeps_tensors_and_description(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "w": torch.randn(3, 4, generator=g, requires_grad=True),  # written detached
        "t": torch.randn(4, 3, generator=g).t(),  # not contiguous
        "d": torch.randn(2, generator=g, dtype=torch.float64),
        "i": torch.arange(5, dtype=torch.int64),
        "u": torch.arange(6, dtype=torch.uint8).view(2, 3),
        "b": torch.randn(2, 2, generator=g).to(torch.bfloat16),
    }
    architecture = {"name": "keras_cnn", "in_channels": 1, "num_classes": 3, "hidden": [5, 4]}
    config = {"lr": 0.01, "nested": {"epochs": 2, "flip": True}, "classes": ["cat", "dog"]}
    seeds = {"init": 123456789012, "order": 7}
    extra = {"members": ["none/r000"], "metrics": {"test_error": 0.25}}
    path = save_weights(tmp_path / "w.safetensors", tensors, architecture=architecture, config=config, seeds=seeds,
                        extra=extra)
    assert path == tmp_path / "w.safetensors"
    back = read_weights(path)
    assert set(back.tensors) == set(tensors)
    for name, t in tensors.items():
        assert back.tensors[name].dtype == t.dtype and back.tensors[name].shape == t.shape, name
        assert torch.equal(back.tensors[name], t.detach()), name
        assert not back.tensors[name].requires_grad
    assert back.architecture == architecture
    assert back.config == config
    assert back.seeds == seeds
    assert back.extra == extra
    assert back.versions == {"nnprobe": nnprobe.__version__, "torch": torch.__version__,
                             "python": platform.python_version()}


def test_optional_parts_default_to_empty(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", {"a": torch.ones(2)}, architecture={"name": "x"})
    back = read_weights(path)
    assert back.architecture == {"name": "x"}
    assert back.config == {} and back.seeds == {} and back.extra == {}


def test_architecture_must_name_its_constructor(tmp_path):
    with pytest.raises(WeightsError, match=r"architecture must name its constructor .*got \{'width': 4\}"):
        save_weights(tmp_path / "w.safetensors", {"a": torch.ones(2)}, architecture={"width": 4})
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file .*nothing\.safetensors does not exist; run the rule"):
        read_weights(tmp_path / "nothing.safetensors")


def test_refuses_a_file_that_is_not_safetensors(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_text("this is not a weights file\n")
    with pytest.raises(WeightsError, match=r"w\.safetensors is not a safetensors file .*Delete it and rerun the rule"):
        read_weights(path)


def test_refuses_a_safetensors_file_of_another_format(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.ones(2)}, str(plain))  # no metadata at all
    with pytest.raises(WeightsError, match=rf"has format None, expected '{FORMAT}'.*Delete it and rerun"):
        read_weights(plain)
    other = tmp_path / "other.safetensors"
    save_file({"a": torch.ones(2)}, str(other), {"format": "pt"})
    with pytest.raises(WeightsError, match=rf"has format 'pt', expected '{FORMAT}'"):
        read_weights(other)


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"a": torch.ones(2)}, architecture={"name": "first"})
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left
    shared = torch.zeros(3)
    with pytest.raises(RuntimeError, match="share memory"):  # safetensors refuses aliased tensors mid-write
        save_weights(path, {"a": shared, "b": shared}, architecture={"name": "second"})
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # the failed write left nothing behind
    back = read_weights(path)  # and the earlier file is intact
    assert back.architecture == {"name": "first"} and torch.equal(back.tensors["a"], torch.ones(2))
