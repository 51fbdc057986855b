"""Datasets in folders (nnprobe.core.folders): the image-folder tree and MNIST-format idx files."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_files import CLASSES, make_idx, make_image_folder, write_idx, write_image
from PIL import Image

from nnprobe.core import folders
from nnprobe.core.splits import DatasetError

# --------------------------------------------------------------------------- image_folder


def test_image_folder_rgb(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    splits, inputs = folders.load_image_folder(root)
    train, test = splits["train"], splits["test"]
    assert train.classes == test.classes == CLASSES
    assert train.images.shape == (12, 3, 8, 8) and test.images.shape == (6, 3, 8, 8)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(inputs) == 18 and all(p.is_file() for p in inputs)
    # the first image is a lossless PNG: pixels survive exactly, in CHW layout
    first = np.asarray(Image.open(root / "train" / "bird" / "00.png"))
    np.testing.assert_array_equal(train.images[0], first.transpose(2, 0, 1))


def test_image_folder_all_grayscale_gives_one_channel(tmp_path):
    root = make_image_folder(tmp_path / "ds", mode="L")
    splits, _ = folders.load_image_folder(root)
    assert splits["train"].images.shape == (12, 1, 8, 8)
    first = np.asarray(Image.open(root / "train" / "bird" / "00.png"))
    np.testing.assert_array_equal(splits["train"].images[0, 0], first)


def test_image_folder_one_colour_image_makes_all_rgb(tmp_path):
    root = make_image_folder(tmp_path / "ds", mode="L")
    write_image(root / "test" / "dog" / "99.png", np.random.default_rng(5), mode="RGB")
    splits, _ = folders.load_image_folder(root)
    assert splits["train"].images.shape[1] == 3 and splits["test"].images.shape[1] == 3
    gray = np.asarray(Image.open(root / "train" / "bird" / "00.png"))
    for c in range(3):  # L -> RGB replicates the gray value
        np.testing.assert_array_equal(splits["train"].images[0, c], gray)


def test_image_folder_ignores_other_files(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / ".hidden").mkdir()
    splits, _ = folders.load_image_folder(root)
    assert len(splits["train"]) == 12 and splits["train"].classes == CLASSES


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        folders.load_image_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_image_folder_missing_test_folder(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    for p in sorted((root / "test").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "test").rmdir()
    with pytest.raises(DatasetError, match="test/") as err:
        folders.load_image_folder(root)
    assert str(root / "test") in str(err.value)


def test_image_folder_class_without_images(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "train" / "fish").mkdir()
    (root / "test" / "fish").mkdir()
    (root / "test" / "fish" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="contains no images") as err:
        folders.load_image_folder(root)
    assert str(root / "train" / "fish") in str(err.value)


def test_image_folder_corrupt_image_named(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    bad = root / "train" / "cat" / "x.png"
    bad.write_bytes(b"this is not a png file at all")
    with pytest.raises(DatasetError, match="cannot read image") as err:
        folders.load_image_folder(root)
    assert str(bad) in str(err.value)


def test_image_folder_truncated_image_named(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    good = root / "test" / "dog" / "00.png"
    good.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DatasetError) as err:
        folders.load_image_folder(root)
    assert str(good) in str(err.value)


def test_image_folder_mixed_sizes(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    odd = root / "test" / "cat" / "big.png"
    write_image(odd, np.random.default_rng(2), size=10)
    with pytest.raises(DatasetError, match="mixed image sizes") as err:
        folders.load_image_folder(root)
    msg = str(err.value)
    assert str(odd) in msg and "10x10" in msg and "8x8" in msg
    assert str(root / "train" / "bird" / "00.png") in msg


def test_image_folder_class_lists_differ(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "test" / "bird").rename(root / "test" / "owl")
    with pytest.raises(DatasetError, match="differ") as err:
        folders.load_image_folder(root)
    msg = str(err.value)
    assert "only in" in msg and "'bird'" in msg and "'owl'" in msg


def test_image_folder_needs_two_classes(tmp_path):
    root = make_image_folder(tmp_path / "ds", classes=("cat",))
    with pytest.raises(DatasetError, match="at least two") as err:
        folders.load_image_folder(root)
    assert str(root / "train") in str(err.value)


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("layout", [".", "MNIST/raw", "raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_layouts(tmp_path, layout, gz):
    make_idx(tmp_path / layout, gz=gz)
    splits, inputs = folders.load_idx(tmp_path)
    assert splits["train"].images.shape == (20, 1, 28, 28)
    assert splits["test"].images.shape == (10, 1, 28, 28)
    assert splits["train"].classes == tuple(str(i) for i in range(10))
    assert splits["train"].labels.dtype == np.int64
    assert splits["test"].labels.tolist() == list(range(10))
    assert len(inputs) == 4 and all(p.suffix == (".gz" if gz else "") for p in inputs)


def test_idx_values_roundtrip(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", [0, 1, 2, 0, 1])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:3])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", [2, 1, 0])
    splits, _ = folders.load_idx(tmp_path)
    np.testing.assert_array_equal(splits["train"].images[:, 0], images)
    assert splits["train"].classes == ("0", "1", "2")


def test_idx_wrong_magic(tmp_path):
    make_idx(tmp_path)
    bad = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(20) % 10, magic=2051)
    with pytest.raises(DatasetError, match="magic number 2051, expected 2049") as err:
        folders.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_truncated(tmp_path):
    make_idx(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated") as err:
        folders.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_truncated_header_and_gz(tmp_path):
    make_idx(tmp_path, gz=True)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])  # broken gzip stream
    with pytest.raises(DatasetError) as err:
        folders.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_count_mismatch(tmp_path):
    make_idx(tmp_path)
    bad = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(19) % 10)
    with pytest.raises(DatasetError, match="20 images but") as err:
        folders.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_missing_files(tmp_path):
    make_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        folders.load_idx(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        folders.load_idx(tmp_path / "missing")


def test_idx_labels_must_be_consecutive(tmp_path):
    make_idx(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", (np.arange(20) % 10) * 2)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10))
    with pytest.raises(DatasetError, match="0..K-1"):
        folders.load_idx(tmp_path)
