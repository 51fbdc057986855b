"""Data sources (nnprobe.core.sources): scikit-learn digits, torchvision, the dispatcher, checksums, and
the preparation of a dataset's splits and manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from dataset_files import CLASSES, make_idx, make_image_folder

from nnprobe.core import sources
from nnprobe.core.splits import DatasetError, load_split

# --------------------------------------------------------------------------- sklearn_digits


def test_sklearn_digits():
    splits, inputs = sources.load_sklearn_digits(test_fraction=0.2, seed=0)
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 1797
    assert len(test) == 360
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.classes == tuple(str(i) for i in range(10))
    # stratified: class proportions agree to within one sample per class
    tr, te = np.bincount(train.labels, minlength=10), np.bincount(test.labels, minlength=10)
    np.testing.assert_allclose(te, (tr + te) * 0.2, atol=1)
    assert inputs[0].name == "digits.csv.gz" and inputs[0].is_file()


def test_sklearn_digits_deterministic():
    a, _ = sources.load_sklearn_digits(0.25, seed=3)
    b, _ = sources.load_sklearn_digits(0.25, seed=3)
    c, _ = sources.load_sklearn_digits(0.25, seed=4)
    for split in ("train", "test"):
        np.testing.assert_array_equal(a[split].images, b[split].images)
        np.testing.assert_array_equal(a[split].labels, b[split].labels)
    assert not np.array_equal(a["test"].images, c["test"].images)


def test_sklearn_digits_bad_fraction():
    with pytest.raises(DatasetError, match="test_fraction"):
        sources.load_sklearn_digits(test_fraction=1.5)


# --------------------------------------------------------------------------- torchvision


def test_torchvision_mnist_checksum_mismatch(tmp_path):
    make_idx(tmp_path / "MNIST" / "raw")
    with pytest.raises(DatasetError, match="checksum") as err:
        sources.load_torchvision("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and sources.MNIST_RAW_MD5["train-images-idx3-ubyte"] in msg


def test_torchvision_cifar_missing(tmp_path):
    with pytest.raises(DatasetError) as err:
        sources.load_torchvision("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "internet" in msg and "image_folder" in msg


def test_torchvision_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="cifar10"):
        sources.load_torchvision("imagenet", tmp_path, download=False)


@pytest.mark.realdata
def test_torchvision_real_mnist():
    env = os.environ.get("NNPROBE_DATA")
    if not env or not (Path(env) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(
            "NNPROBE_DATA not set: extract ../shared/data/mnist-idx.tar.xz and point "
            "NNPROBE_DATA at it to test the real MNIST files"
        )
    splits, inputs = sources.load_torchvision("mnist", Path(env), download=False)
    assert splits["train"].images.shape == (60000, 1, 28, 28)
    assert splits["test"].images.shape == (10000, 1, 28, 28)
    assert splits["train"].classes[0] == "0 - zero"
    assert len(inputs) >= 4


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_unknown_source():
    with pytest.raises(DatasetError, match="dataset.source") as err:
        sources.load_dataset("kaggle", root=Path("."))
    assert "image_folder" in str(err.value) and "'kaggle'" in str(err.value)


def test_load_dataset_root_required():
    with pytest.raises(DatasetError, match="dataset.root"):
        sources.load_dataset("image_folder", root=None)
    with pytest.raises(DatasetError, match="dataset.name"):
        sources.load_dataset("torchvision", root=Path("."))


def test_load_dataset_checksums(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    rel = "train/cat/00.png"
    good = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    splits, _ = sources.load_dataset("image_folder", root, checksums={rel: good})
    assert splits["train"].classes == CLASSES

    wrong = "0" * 64
    with pytest.raises(DatasetError, match="sha256") as err:
        sources.load_dataset("image_folder", root, checksums={rel: wrong})
    msg = str(err.value)
    assert str(root / rel) in msg and wrong in msg and good in msg

    with pytest.raises(DatasetError, match="does not exist") as err:
        sources.load_dataset("image_folder", root, checksums={"train/cat/gone.png": good})
    assert str(root / "train" / "cat" / "gone.png") in str(err.value)


def test_load_dataset_idx_and_digits(tmp_path):
    make_idx(tmp_path)
    splits, _ = sources.load_dataset("idx", tmp_path)
    assert len(splits["train"]) == 20
    splits, _ = sources.load_dataset("sklearn_digits", None, test_fraction=0.5, seed=1)
    assert len(splits["train"]) + len(splits["test"]) == 1797


# --------------------------------------------------------------------------- preparing a dataset


def test_prepare_dataset_writes_splits_and_manifest(tmp_path, caplog):
    """What rule prepare_dataset runs (scripts/data/prepare_dataset.py calls prepare_dataset)."""
    params = {
        "source": "sklearn_digits",
        "root": None,
        "name": None,
        "download": False,
        "test_fraction": 0.2,
        "seed": 0,
        "checksums": None,
    }
    out = tmp_path / "results" / "data"
    with caplog.at_level(logging.INFO, logger="nnprobe.core.sources"):
        sources.prepare_dataset(params, out / "train.npz", out / "test.npz", out / "manifest.json")
    assert sorted(os.listdir(out)) == ["manifest.json", "test.npz", "train.npz"]
    train, test = load_split(out / "train.npz"), load_split(out / "test.npz")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"] == "sklearn_digits" and sum(m["splits"]["test"]["counts"].values()) == len(
        test
    )
    assert m["inputs"][0]["path"].endswith("digits.csv.gz")
    assert "train: 1437 images" in caplog.text and "test: 360 images" in caplog.text


def test_stratified_subset_keeps_per_class_images_in_order_and_is_seeded():
    from nnprobe.core.sources import stratified_subset
    from nnprobe.core.splits import DatasetError, Split

    labels = np.repeat(np.arange(3), [5, 7, 9])
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(2, axis=2)
    split = Split(images, labels, ("a", "b", "c"))
    sub = stratified_subset(split, 4, seed=0)
    assert np.bincount(sub.labels).tolist() == [4, 4, 4] and sub.classes == split.classes
    kept = sub.images[:, 0, 0, 0].astype(int)
    assert (np.diff(kept) > 0).all() and (labels[kept] == sub.labels).all()  # original order, true labels
    assert np.array_equal(stratified_subset(split, 4, seed=0).images, sub.images)
    assert not np.array_equal(stratified_subset(split, 4, seed=1).images, sub.images)
    with pytest.raises(DatasetError, match=r"dataset.train_per_class is 6.*\{'a': 5\}.*at most 5"):
        stratified_subset(split, 6, seed=0)
