"""Own data against the config (nnprobe.core.checks), and the shapes of data users bring.

A dataset that does not fit the config fails when it is prepared, before any network trains,
with a message per problem; what the data leaves undefined (comparisons that need more
classes) is said, not failed; and every architecture takes data of 2 to 20 classes, grey or
colour, square or not, down to the smallest size it documents.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from nnprobe.core.checks import DataConfigError, check_dataset, dataset_notes, dataset_problems, undefined_comparisons
from nnprobe.core.io import read_json, write_json
from nnprobe.core.splits import Split, manifest
from nnprobe.models.keras_cnn import keras_cnn
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.models.szegedy import ae400_10, fc10, fc_sigmoid
from nnprobe.models.topdown import Normalized, standard_cnn, topdown_net


def fake_manifest(classes, shape=(3, 32, 32), counts=None) -> dict:
    counts = counts or [10] * len(classes)
    rng = np.random.default_rng(0)
    splits = {}
    for name in ("train", "test"):
        labels = np.repeat(np.arange(len(classes)), counts)
        images = rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8)
        splits[name] = Split(images, labels.astype(np.int64), classes)
    return manifest(splits, [], "image_folder")


MISLABEL = {
    "num_classes": {"key": "dataset.num_classes", "value": 3},
    "class_names": [{"key": "mislabel.class_groups", "names": ["cat", "dog"]}],
    "min_side": [{"key": "model.padding", "value": 18, "why": "the Keras CNN with valid padding"}],
}


def test_a_fitting_dataset_has_no_problems():
    assert dataset_problems(fake_manifest(("cat", "dog", "emu"), (3, 24, 20)), MISLABEL) == []


def test_every_problem_is_named_with_its_key_and_what_fits():
    problems = dataset_problems(fake_manifest(("cat", "cow"), (1, 16, 40)), {
        **MISLABEL,
        "class_index": [{"key": "visualize.backdoor.target_class", "value": 2}],
    })
    assert len(problems) == 4
    count, names, index, size = problems
    assert "dataset.num_classes is 3" in count and "has 2 classes ['cat', 'cow']" in count and "set dataset.num_classes to 2" in count
    assert "mislabel.class_groups names ['dog']" in names and "['cat', 'cow']" in names
    assert "visualize.backdoor.target_class is 2" in index and "[0, 1]" in index
    assert "16x40" in size and "18x18" in size and "model.padding" in size and "Keras CNN" in size


def test_undefined_comparisons_by_number_of_classes():
    assert undefined_comparisons(4) == {}
    three = undefined_comparisons(3)
    assert set(three) == {"confused_vs_clean", "clean_vs_baseline"}
    assert "needs 4 classes or more" in three["confused_vs_clean"]
    two = undefined_comparisons(2)
    assert set(two) == {"confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline"}
    assert "needs 3 classes or more" in two["confused_vs_baseline"]


def test_notes_say_what_is_undefined_and_uneven():
    notes = dataset_notes(fake_manifest(("a", "b", "c"), counts=[5, 50, 6]), ["mislabel"])
    assert any("confused_vs_clean is undefined with 3 classes" in n for n in notes)
    assert any("classes are uneven: 5 to 50" in n for n in notes)
    assert dataset_notes(fake_manifest(("a", "b", "c", "d")), ["noise"]) == []


def test_the_check_job_fails_with_every_problem_or_writes_what_passed(tmp_path, caplog):
    path = tmp_path / "manifest.json"
    write_json(fake_manifest(("cat", "cow"), (3, 24, 24)), path)
    with pytest.raises(DataConfigError, match="does not fit the configuration of mislabel") as err:
        check_dataset(str(path), str(tmp_path / "out.json"), expected=MISLABEL, studies=["mislabel"])
    assert "dataset.num_classes" in str(err.value) and "mislabel.class_groups" in str(err.value)
    assert not (tmp_path / "out.json").exists()

    write_json(fake_manifest(("cat", "dog", "emu"), (3, 24, 24)), path)
    with caplog.at_level(logging.WARNING, logger="nnprobe.checks"):
        check_dataset(str(path), str(tmp_path / "out.json"), expected=MISLABEL, studies=["mislabel"])
    written = read_json(tmp_path / "out.json")
    assert written["classes"] == ["cat", "dog", "emu"] and written["shape"] == [3, 24, 24]
    assert any("undefined with 3 classes" in r.getMessage() for r in caplog.records)


SHAPES = [  # (classes, channels, height, width): the data users bring
    (2, 1, 28, 28), (3, 3, 20, 24), (5, 3, 33, 19), (10, 1, 8, 8), (20, 3, 32, 32), (4, 1, 4, 6),
]


@pytest.mark.parametrize(("k", "c", "h", "w"), SHAPES, ids=[f"{k}cls-{c}x{h}x{w}" for k, c, h, w in SHAPES])
def test_every_architecture_takes_the_data(k, c, h, w):
    x = torch.rand(3, c, h, w)
    networks = {
        "keras same": keras_cnn(c, k, (h, w), padding=1),
        "fc10": fc10(c * h * w, k),
        "fc100-100-10": fc_sigmoid((100, 100), c * h * w, k),
        "ae400-10": ae400_10(400, c * h * w, k),
        "resnet": resnet18_cifar(k, c, width=4, seed=0),
        "standard": Normalized(standard_cnn(c, k, 4), [0.5] * c, [0.25] * c),
        "topdown": Normalized(topdown_net(c, k, 4), [0.5] * c, [0.25] * c),
    }
    if min(h, w) >= 18:
        networks["keras valid"] = keras_cnn(c, k, (h, w), padding=0)
    for name, net in networks.items():
        logits = net(x)
        assert logits.shape == (3, k), name
        logits.sum().backward()
