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

from nnprobe.core.checks import (
    VGG_CNN_MIN_SIDE,
    DataConfigError,
    check_dataset,
    check_prepared_data,
    data_expectations,
    dataset_class_count,
    dataset_notes,
    dataset_problems,
    resolve_num_classes,
    undefined_comparisons,
)
from nnprobe.core.io import read_json, write_json
from nnprobe.core.splits import Split, manifest
from nnprobe.models.keras_cnn import keras_cnn
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.models.szegedy import ae400_10, fc10, fc_sigmoid
from nnprobe.models.topdown import Normalized, standard_cnn, topdown_net
from nnprobe.models.vgg_cnn import vgg_cnn


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
    with pytest.raises(DataConfigError, match="does not fit the configuration of the mislabel study; 2 problems") as err:
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
    if min(h, w) >= VGG_CNN_MIN_SIDE:
        networks["vgg"] = vgg_cnn(c, k, (h, w), width=4)
    for name, net in networks.items():
        logits = net(x)
        assert logits.shape == (3, k), name
        logits.sum().backward()


def demo_config(**changes) -> dict:
    """config/demo.yaml with the schema's defaults where the demo relies on them."""
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "demo.yaml").read_text())
    config["dataset"].setdefault("num_classes", "auto")
    config["model"].setdefault("width", 32)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = config
        for part in parents:
            target = target[part]
        target[leaf] = value
    return config


def test_every_key_that_names_counts_or_sizes_classes_is_checked_at_once():
    """An own image folder of 5 classes with the digits' config: every foreign key in one message."""
    config = demo_config(dataset__num_classes=10)
    problems = dataset_problems(fake_manifest(("ant", "bee", "cow", "dog", "emu"), (1, 22, 30)),
                                data_expectations(config))
    text = "\n".join(problems)
    assert len(problems) == 4, problems
    for key in ("dataset.num_classes is 10", "mislabel.class_groups.round names ['0', '6', '8', '9']",
                "mislabel.class_groups.straight names ['1', '4', '7']", "noise.binary_classes names ['3', '8']"):
        assert key in text, (key, text)
    assert "set dataset.num_classes to 5 or to auto" in text
    fitting = demo_config(mislabel__class_groups={"winged": ["bee"]}, noise__binary_classes=["ant", "bee"])
    assert dataset_problems(fake_manifest(("ant", "bee", "cow", "dog", "emu"), (1, 22, 30)),
                            data_expectations(fitting)) == []  # num_classes auto: the data decides


def test_the_deeper_cnn_and_the_backdoor_index_are_checked_too():
    config = demo_config(model__architecture="vgg_cnn", visualize__backdoor__target_class=7,
                         mislabel__class_groups={}, noise__binary_classes=["1", "3"])
    eight = tuple(str(k) for k in range(8))
    problems = dataset_problems(fake_manifest(eight, (1, 6, 6)), data_expectations(config))
    assert problems == ["the images are 6x6 pixels, but the VGG CNN (three 2x2 poolings) needs at least 8x8 "
                        "(config key model.architecture)"]
    problems = dataset_problems(fake_manifest(eight[:7], (1, 8, 8)), data_expectations(config))
    assert problems == ["config key visualize.backdoor.target_class is 7, but the data has 7 classes: choose an index "
                        "in [0, 6]"]


def test_the_number_of_classes_comes_from_the_data_when_it_is_auto(tmp_path):
    for name in ("ant", "bee", "cow", ".hidden"):
        (tmp_path / "train" / name).mkdir(parents=True)
    (tmp_path / "train" / "notes.txt").write_text("not a class")
    folder = {"source": "image_folder", "root": str(tmp_path), "num_classes": "auto"}
    assert dataset_class_count(folder) == 3 and resolve_num_classes(folder) == 3
    assert resolve_num_classes({**folder, "num_classes": 5}) == 5  # a number stays (check_dataset compares it)
    assert dataset_class_count({"source": "torchvision", "name": "cifar10"}) == 10
    assert dataset_class_count({"source": "sklearn_digits"}) == 10
    raw = tmp_path / "idx" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, labels in (("train-labels-idx1-ubyte", [0, 3, 1]), ("t10k-labels-idx1-ubyte", [4, 0])):
        (raw / name).write_bytes(b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big") + bytes(labels))
    assert dataset_class_count({"source": "idx", "root": str(tmp_path / "idx")}) == 5
    with pytest.raises(DataConfigError, match="dataset.num_classes is auto.*is not a folder.*set dataset.root"):
        dataset_class_count({"source": "image_folder", "root": str(tmp_path / "missing")})


def test_a_key_changed_after_the_data_was_prepared_fails_when_the_workflow_is_parsed(tmp_path):
    prepared_with = {"source": "image_folder", "root": "/data/five", "seed": 0}
    manifest = {**fake_manifest(("ant", "bee", "cow", "dog", "emu"), (1, 22, 30)), "dataset": prepared_with}
    write_json(manifest, tmp_path / "manifest.json")
    config = demo_config()
    with pytest.raises(DataConfigError, match=r"does not fit the data prepared in .*manifest.json \(3 problems\)"):
        check_prepared_data(config, tmp_path / "manifest.json", "dataset", prepared_with)
    # data prepared from another dataset config is prepared again (and checked then): no error now
    check_prepared_data(config, tmp_path / "manifest.json", "dataset", {**prepared_with, "root": "/data/other"})
    check_prepared_data(config, tmp_path / "absent.json", "dataset", prepared_with)
