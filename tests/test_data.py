"""Tests of nnprobe.data (loaders, checksums, prepared splits) and scripts/prepare_data.py."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnprobe import data
from nnprobe.data import DatasetError, Split

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("bird", "cat", "dog")


# --------------------------------------------------------------------------- helpers


def _write_image(path: Path, rng: np.random.Generator, mode: str = "RGB", size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)


def make_image_folder(
    root: Path,
    classes: tuple[str, ...] = CLASSES,
    n_train: int = 4,
    n_test: int = 2,
    mode: str = "RGB",
) -> Path:
    """ROOT/{train,test}/CLASS/NN.{png,jpg}: alternating PNG and JPG, 8x8."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in classes:
            for i in range(n):
                suffix = ".png" if i % 2 == 0 else ".JPG"
                _write_image(root / split / cls / f"{i:02d}{suffix}", rng, mode)
    return root


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write a uint8 array as an idx file (optionally gzipped when path ends in .gz)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_idx(folder: Path, gz: bool = False, n_train: int = 20, n_test: int = 10) -> Path:
    rng = np.random.default_rng(1)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n) % 10)
    return folder


def load_script():
    spec = importlib.util.spec_from_file_location(
        "prepare_data", REPO / "scripts" / "prepare_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- image_folder


def test_image_folder_rgb(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    splits, inputs = data.load_image_folder(root)
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
    splits, _ = data.load_image_folder(root)
    assert splits["train"].images.shape == (12, 1, 8, 8)
    first = np.asarray(Image.open(root / "train" / "bird" / "00.png"))
    np.testing.assert_array_equal(splits["train"].images[0, 0], first)


def test_image_folder_one_colour_image_makes_all_rgb(tmp_path):
    root = make_image_folder(tmp_path / "ds", mode="L")
    _write_image(root / "test" / "dog" / "99.png", np.random.default_rng(5), mode="RGB")
    splits, _ = data.load_image_folder(root)
    assert splits["train"].images.shape[1] == 3 and splits["test"].images.shape[1] == 3
    gray = np.asarray(Image.open(root / "train" / "bird" / "00.png"))
    for c in range(3):  # L -> RGB replicates the gray value
        np.testing.assert_array_equal(splits["train"].images[0, c], gray)


def test_image_folder_ignores_other_files(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / ".hidden").mkdir()
    splits, _ = data.load_image_folder(root)
    assert len(splits["train"]) == 12 and splits["train"].classes == CLASSES


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        data.load_image_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_image_folder_missing_test_folder(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    for p in sorted((root / "test").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "test").rmdir()
    with pytest.raises(DatasetError, match="test/") as err:
        data.load_image_folder(root)
    assert str(root / "test") in str(err.value)


def test_image_folder_class_without_images(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "train" / "fish").mkdir()
    (root / "test" / "fish").mkdir()
    (root / "test" / "fish" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="contains no images") as err:
        data.load_image_folder(root)
    assert str(root / "train" / "fish") in str(err.value)


def test_image_folder_corrupt_image_named(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    bad = root / "train" / "cat" / "x.png"
    bad.write_bytes(b"this is not a png file at all")
    with pytest.raises(DatasetError, match="cannot read image") as err:
        data.load_image_folder(root)
    assert str(bad) in str(err.value)


def test_image_folder_truncated_image_named(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    good = root / "test" / "dog" / "00.png"
    good.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DatasetError) as err:
        data.load_image_folder(root)
    assert str(good) in str(err.value)


def test_image_folder_mixed_sizes(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    odd = root / "test" / "cat" / "big.png"
    _write_image(odd, np.random.default_rng(2), size=10)
    with pytest.raises(DatasetError, match="mixed image sizes") as err:
        data.load_image_folder(root)
    msg = str(err.value)
    assert str(odd) in msg and "10x10" in msg and "8x8" in msg
    assert str(root / "train" / "bird" / "00.png") in msg


def test_image_folder_class_lists_differ(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    (root / "test" / "bird").rename(root / "test" / "owl")
    with pytest.raises(DatasetError, match="differ") as err:
        data.load_image_folder(root)
    msg = str(err.value)
    assert "only in" in msg and "'bird'" in msg and "'owl'" in msg


def test_image_folder_needs_two_classes(tmp_path):
    root = make_image_folder(tmp_path / "ds", classes=("cat",))
    with pytest.raises(DatasetError, match="at least two") as err:
        data.load_image_folder(root)
    assert str(root / "train") in str(err.value)


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("layout", [".", "MNIST/raw", "raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_layouts(tmp_path, layout, gz):
    make_idx(tmp_path / layout, gz=gz)
    splits, inputs = data.load_idx(tmp_path)
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
    splits, _ = data.load_idx(tmp_path)
    np.testing.assert_array_equal(splits["train"].images[:, 0], images)
    assert splits["train"].classes == ("0", "1", "2")


def test_idx_wrong_magic(tmp_path):
    make_idx(tmp_path)
    bad = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(20) % 10, magic=2051)
    with pytest.raises(DatasetError, match="magic number 2051, expected 2049") as err:
        data.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_truncated(tmp_path):
    make_idx(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated") as err:
        data.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_truncated_header_and_gz(tmp_path):
    make_idx(tmp_path, gz=True)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])  # broken gzip stream
    with pytest.raises(DatasetError) as err:
        data.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_count_mismatch(tmp_path):
    make_idx(tmp_path)
    bad = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(19) % 10)
    with pytest.raises(DatasetError, match="20 images but") as err:
        data.load_idx(tmp_path)
    assert str(bad) in str(err.value)


def test_idx_missing_files(tmp_path):
    make_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        data.load_idx(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        data.load_idx(tmp_path / "missing")


def test_idx_labels_must_be_consecutive(tmp_path):
    make_idx(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", (np.arange(20) % 10) * 2)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10))
    with pytest.raises(DatasetError, match="0..K-1"):
        data.load_idx(tmp_path)


# --------------------------------------------------------------------------- sklearn_digits


def test_sklearn_digits():
    splits, inputs = data.load_sklearn_digits(test_fraction=0.2, seed=0)
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
    a, _ = data.load_sklearn_digits(0.25, seed=3)
    b, _ = data.load_sklearn_digits(0.25, seed=3)
    c, _ = data.load_sklearn_digits(0.25, seed=4)
    for split in ("train", "test"):
        np.testing.assert_array_equal(a[split].images, b[split].images)
        np.testing.assert_array_equal(a[split].labels, b[split].labels)
    assert not np.array_equal(a["test"].images, c["test"].images)


def test_sklearn_digits_bad_fraction():
    with pytest.raises(DatasetError, match="test_fraction"):
        data.load_sklearn_digits(test_fraction=1.5)


# --------------------------------------------------------------------------- torchvision


def test_torchvision_mnist_checksum_mismatch(tmp_path):
    make_idx(tmp_path / "MNIST" / "raw")
    with pytest.raises(DatasetError, match="checksum") as err:
        data.load_torchvision("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and data.MNIST_RAW_MD5["train-images-idx3-ubyte"] in msg


def test_torchvision_cifar_missing(tmp_path):
    with pytest.raises(DatasetError) as err:
        data.load_torchvision("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "internet" in msg and "image_folder" in msg


def test_torchvision_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="cifar10"):
        data.load_torchvision("imagenet", tmp_path, download=False)


@pytest.mark.realdata
def test_torchvision_real_mnist():
    env = os.environ.get("NNPROBE_DATA")
    if not env or not (Path(env) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(
            "NNPROBE_DATA not set: extract ../shared/data/mnist-idx.tar.xz and point "
            "NNPROBE_DATA at it to test the real MNIST files"
        )
    splits, inputs = data.load_torchvision("mnist", Path(env), download=False)
    assert splits["train"].images.shape == (60000, 1, 28, 28)
    assert splits["test"].images.shape == (10000, 1, 28, 28)
    assert splits["train"].classes[0] == "0 - zero"
    assert len(inputs) >= 4


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_unknown_source():
    with pytest.raises(DatasetError, match="dataset.source") as err:
        data.load_dataset("kaggle", root=Path("."))
    assert "image_folder" in str(err.value) and "'kaggle'" in str(err.value)


def test_load_dataset_root_required():
    with pytest.raises(DatasetError, match="dataset.root"):
        data.load_dataset("image_folder", root=None)
    with pytest.raises(DatasetError, match="dataset.name"):
        data.load_dataset("torchvision", root=Path("."))


def test_load_dataset_checksums(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    rel = "train/cat/00.png"
    good = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    splits, _ = data.load_dataset("image_folder", root, checksums={rel: good})
    assert splits["train"].classes == CLASSES

    wrong = "0" * 64
    with pytest.raises(DatasetError, match="sha256") as err:
        data.load_dataset("image_folder", root, checksums={rel: wrong})
    msg = str(err.value)
    assert str(root / rel) in msg and wrong in msg and good in msg

    with pytest.raises(DatasetError, match="does not exist") as err:
        data.load_dataset("image_folder", root, checksums={"train/cat/gone.png": good})
    assert str(root / "train" / "cat" / "gone.png") in str(err.value)


def test_load_dataset_idx_and_digits(tmp_path):
    make_idx(tmp_path)
    splits, _ = data.load_dataset("idx", tmp_path)
    assert len(splits["train"]) == 20
    splits, _ = data.load_dataset("sklearn_digits", None, test_fraction=0.5, seed=1)
    assert len(splits["train"]) + len(splits["test"]) == 1797


# --------------------------------------------------------------------------- files


def _split(n: int = 6, c: int = 3) -> Split:
    rng = np.random.default_rng(4)
    return Split(
        rng.integers(0, 256, (n, c, 5, 4), dtype=np.uint8),
        (np.arange(n) % 2).astype(np.int64),
        ("no", "yes"),
    )


def test_split_validates():
    with pytest.raises(DatasetError, match="uint8"):
        Split(np.zeros((2, 1, 3, 3), np.float32), np.zeros(2, np.int64), ("a", "b"))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 2\)"):
        Split(np.zeros((2, 1, 3, 3), np.uint8), np.array([0, 2]), ("a", "b"))


def test_save_load_roundtrip(tmp_path):
    split = _split()
    path = tmp_path / "deep" / "train.npz"
    data.save_split(split, path)
    back = data.load_split(path)
    np.testing.assert_array_equal(back.images, split.images)
    np.testing.assert_array_equal(back.labels, split.labels)
    assert back.classes == split.classes
    assert back.images.dtype == np.uint8 and back.labels.dtype == np.int64
    assert sorted(os.listdir(path.parent)) == ["train.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with np.load(path, allow_pickle=False) as npz:  # no pickle needed
        assert sorted(npz.files) == ["classes", "images", "labels"]


def test_save_split_is_atomic(tmp_path, monkeypatch):
    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        data.save_split(_split(), tmp_path / "train.npz")
    assert os.listdir(tmp_path) == []


def test_save_split_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "train.npz"
    data.save_split(_split(), path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        data.save_split(_split(4), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["train.npz"]


def test_load_split_rejects_bad_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 not numpy")
    with pytest.raises(DatasetError) as err:
        data.load_split(garbage)
    assert str(garbage) in str(err.value)

    wrong_keys = tmp_path / "wrong.npz"
    np.savez(wrong_keys, x=np.zeros(3))
    with pytest.raises(DatasetError, match="missing keys") as err:
        data.load_split(wrong_keys)
    assert str(wrong_keys) in str(err.value)

    wrong_dtype = tmp_path / "dtype.npz"
    np.savez(
        wrong_dtype,
        images=np.zeros((2, 1, 3, 3)),
        labels=np.zeros(2, np.int64),
        classes=np.array(["a", "b"]),
    )
    with pytest.raises(DatasetError, match="uint8") as err:
        data.load_split(wrong_dtype)
    assert str(wrong_dtype) in str(err.value)

    with pytest.raises(DatasetError, match="does not exist"):
        data.load_split(tmp_path / "absent.npz")


def test_write_json_atomic(tmp_path):
    path = tmp_path / "sub" / "m.json"
    data.write_json_atomic({"a": np.float64(0.5), "b": np.arange(2), "p": Path("x")}, path)
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1], "p": "x"}
    assert os.listdir(path.parent) == ["m.json"]
    with pytest.raises(TypeError):
        data.write_json_atomic({"bad": object()}, path)
    assert os.listdir(path.parent) == ["m.json"]


# --------------------------------------------------------------------------- manifest and stats


def test_channel_stats_matches_numpy():
    images = np.random.default_rng(6).integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    x = images / 255.0
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-12)
    assert mean.dtype == np.float64 and mean.shape == (3,)
    zero_mean, zero_std = data.channel_stats(np.full((2, 1, 2, 2), 255, np.uint8))
    assert zero_mean.tolist() == [1.0] and zero_std.tolist() == [0.0]


def test_manifest(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    splits, inputs = data.load_image_folder(root)
    m = data.manifest(splits, inputs, "image_folder")
    json.dumps(m)  # JSON-able
    assert m["source"] == "image_folder" and m["classes"] == list(CLASSES)
    assert m["splits"]["train"]["counts"] == {"bird": 4, "cat": 4, "dog": 4}
    assert m["splits"]["test"]["counts"] == {"bird": 2, "cat": 2, "dog": 2}
    assert m["splits"]["train"]["n"] == 12 and m["splits"]["train"]["shape"] == [3, 8, 8]
    assert len(m["splits"]["test"]["mean"]) == 3 and len(m["splits"]["test"]["std"]) == 3
    assert len(m["inputs"]) == 18
    for entry in m["inputs"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- script


def test_prepare_data_script_main(tmp_path, capsys):
    script = load_script()
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
    script.main(params, out / "train.npz", out / "test.npz", out / "manifest.json")
    assert sorted(os.listdir(out)) == ["manifest.json", "test.npz", "train.npz"]
    train, test = data.load_split(out / "train.npz"), data.load_split(out / "test.npz")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"] == "sklearn_digits" and sum(m["splits"]["test"]["counts"].values()) == len(
        test
    )
    assert m["inputs"][0]["path"].endswith("digits.csv.gz")
    assert "1437 train / 360 test" in capsys.readouterr().out
