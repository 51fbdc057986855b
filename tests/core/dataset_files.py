"""Small datasets on disk for the data tests: an image-folder tree and MNIST-format idx files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("bird", "cat", "dog")


def write_image(path: Path, rng: np.random.Generator, mode: str = "RGB", size: int = 8) -> None:
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
                write_image(root / split / cls / f"{i:02d}{suffix}", rng, mode)
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
