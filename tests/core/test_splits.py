"""Prepared splits (nnprobe.core.splits): validation, the .npz files, channel statistics, the manifest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from dataset_files import CLASSES, make_image_folder

from nnprobe.core.folders import load_image_folder
from nnprobe.core.splits import DatasetError, Split, channel_stats, load_split, manifest, save_split

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
    save_split(split, path)
    back = load_split(path)
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
        save_split(_split(), tmp_path / "train.npz")
    assert os.listdir(tmp_path) == []


def test_save_split_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "train.npz"
    save_split(_split(), path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_split(_split(4), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["train.npz"]


def test_load_split_rejects_bad_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 not numpy")
    with pytest.raises(DatasetError) as err:
        load_split(garbage)
    assert str(garbage) in str(err.value)

    wrong_keys = tmp_path / "wrong.npz"
    np.savez(wrong_keys, x=np.zeros(3))
    with pytest.raises(DatasetError, match="missing keys") as err:
        load_split(wrong_keys)
    assert str(wrong_keys) in str(err.value)

    wrong_dtype = tmp_path / "dtype.npz"
    np.savez(
        wrong_dtype,
        images=np.zeros((2, 1, 3, 3)),
        labels=np.zeros(2, np.int64),
        classes=np.array(["a", "b"]),
    )
    with pytest.raises(DatasetError, match="uint8") as err:
        load_split(wrong_dtype)
    assert str(wrong_dtype) in str(err.value)

    with pytest.raises(DatasetError, match="does not exist"):
        load_split(tmp_path / "absent.npz")


# --------------------------------------------------------------------------- manifest and stats


def test_channel_stats_matches_numpy():
    images = np.random.default_rng(6).integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    mean, std = channel_stats(images)
    x = images / 255.0
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-12)
    assert mean.dtype == np.float64 and mean.shape == (3,)
    zero_mean, zero_std = channel_stats(np.full((2, 1, 2, 2), 255, np.uint8))
    assert zero_mean.tolist() == [1.0] and zero_std.tolist() == [0.0]


def test_manifest(tmp_path):
    root = make_image_folder(tmp_path / "ds")
    splits, inputs = load_image_folder(root)
    m = manifest(splits, inputs, "image_folder")
    json.dumps(m)  # JSON-able
    assert m["source"] == "image_folder" and m["classes"] == list(CLASSES)
    assert m["splits"]["train"]["counts"] == {"bird": 4, "cat": 4, "dog": 4}
    assert m["splits"]["test"]["counts"] == {"bird": 2, "cat": 2, "dog": 2}
    assert m["splits"]["train"]["n"] == 12 and m["splits"]["train"]["shape"] == [3, 8, 8]
    assert len(m["splits"]["test"]["mean"]) == 3 and len(m["splits"]["test"]["std"]) == 3
    assert len(m["inputs"]) == 18
    for entry in m["inputs"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
