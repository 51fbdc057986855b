"""Datasets: load raw image data from one of four sources into a common layout.

Every loader returns ``({"train": Split, "test": Split}, inputs)`` where a
:class:`Split` holds ``uint8`` images of shape ``(N, C, H, W)``, ``int64``
labels in ``[0, len(classes))`` and the class names, and ``inputs`` lists the
files that were read (their sha256 goes into the manifest, so every prepared
tensor can be traced back to its raw bytes).

Sources (``dataset.source`` in the config):

``torchvision``
    CIFAR-10, MNIST or Fashion-MNIST through ``torchvision.datasets``, which
    downloads the official archives and checks their md5. For MNIST the four
    uncompressed idx files are additionally checked against the official md5.
``image_folder``
    A tree ``ROOT/{train,test}/CLASS/*.{png,jpg,jpeg}``.
``idx``
    The four MNIST-format idx files (optionally gzipped) in a folder.
``sklearn_digits``
    The 1,797 real 8x8 handwritten digits bundled with scikit-learn: no
    download, the embedded default of the demo config.

Prepared splits are stored as uncompressed ``.npz`` files (no pickle) and
written atomically. This module must not import Snakemake or any other
``nnprobe`` module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "DatasetError",
    "Split",
    "SOURCES",
    "TORCHVISION_DATASETS",
    "IMAGE_SUFFIXES",
    "MNIST_RAW_MD5",
    "load_image_folder",
    "load_idx",
    "load_sklearn_digits",
    "load_torchvision",
    "load_dataset",
    "verify_checksums",
    "sha256_file",
    "save_split",
    "load_split",
    "manifest",
    "write_json_atomic",
    "channel_stats",
]

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("torchvision", "image_folder", "idx", "sklearn_digits")
TORCHVISION_DATASETS: tuple[str, ...] = ("cifar10", "mnist", "fashion_mnist")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

#: Official md5 of the four *uncompressed* MNIST idx files.
MNIST_RAW_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# idx file names per split: (images, labels)
_IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sub-folders of ROOT searched for idx files, in order
_IDX_SUBDIRS: tuple[str, ...] = (".", "MNIST/raw", "FashionMNIST/raw", "raw")
_IDX_MAGIC_IMAGES = 2051  # 0x00000803: unsigned byte, 3 dimensions
_IDX_MAGIC_LABELS = 2049  # 0x00000801: unsigned byte, 1 dimension

_OFFLINE_HINT = (
    "on a machine without internet, put the data on disk and use "
    "dataset.source=image_folder (ROOT/{train,test}/CLASS/*.png) or dataset.source=idx "
    "(MNIST-format idx files)"
)


class DatasetError(ValueError):
    """A dataset is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class Split:
    """One split of an image classification dataset.

    Attributes
    ----------
    images : np.ndarray
        ``uint8`` array of shape ``(N, C, H, W)``.
    labels : np.ndarray
        ``int64`` array of shape ``(N,)`` with values in ``[0, len(classes))``.
    classes : tuple[str, ...]
        Class names; ``labels`` index into this tuple. Names must be unique.

    Raises
    ------
    DatasetError
        If the arrays have the wrong dtype or shape, or labels are out of range.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        problem = _split_problem(self.images, self.labels, self.classes)
        if problem:
            raise DatasetError(f"invalid Split: {problem}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _split_problem(images: Any, labels: Any, classes: tuple[str, ...]) -> str | None:
    """Return a description of what is wrong with a split's arrays, or None."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        desc = _describe(images)
        return f"images must be a uint8 array of shape (N, C, H, W), got {desc}"
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
        return f"labels must be an int64 array of shape (N,), got {_describe(labels)}"
    if images.shape[0] != labels.shape[0]:
        return f"images has {images.shape[0]} entries but labels has {labels.shape[0]}"
    if len(classes) == 0:
        return "classes is empty; a split needs at least one class name"
    if len(set(classes)) != len(classes):
        dupes = sorted({c for c in classes if classes.count(c) > 1})
        return f"class names must be unique, got duplicates {dupes}"
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        return (
            f"labels must lie in [0, {len(classes)}) for {len(classes)} classes, "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    return None


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"dtype {x.dtype} shape {x.shape}"
    return type(x).__name__


# --------------------------------------------------------------------------- hashing


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Return the hex sha256 digest of the file at ``path`` (read in 1 MiB blocks)."""
    return _hash_file(Path(path), "sha256")


def verify_checksums(root: Path, checksums: Mapping[str, str]) -> None:
    """Check that files under ``root`` have the expected sha256 digests.

    Parameters
    ----------
    root : Path
        Dataset root folder.
    checksums : Mapping[str, str]
        ``{relative path: sha256 hex digest}``; each path is relative to ``root``.

    Raises
    ------
    DatasetError
        Listing every file that is missing or whose digest differs (with the
        expected and the computed digest), and every malformed digest.
    """
    root = Path(root)
    problems: list[str] = []
    for rel, expected in checksums.items():
        key = f"dataset.checksums[{rel!r}]"
        if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
            problems.append(f"{key} must be a 64-character sha256 hex digest, got {expected!r}")
            continue
        path = root / rel
        if not path.is_file():
            problems.append(
                f"{path} ({key}) does not exist; expected a file with sha256 {expected.lower()}"
            )
            continue
        got = sha256_file(path)
        if got != expected.lower():
            problems.append(f"{path} ({key}) has sha256 {got}, expected {expected.lower()}")
    if problems:
        raise DatasetError(
            "dataset checksum verification failed:\n  - "
            + "\n  - ".join(problems)
            + "\nRe-download or re-extract the data, or fix dataset.checksums in the config."
        )


# --------------------------------------------------------------------------- image_folder


def _list_class_dirs(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_images(class_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in class_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _read_image_folder_split(
    files: list[Path], size: tuple[int, int, Path] | None
) -> tuple[np.ndarray, tuple[int, int, Path]]:
    """Decode ``files`` into ``(N, H, W)`` (all mode "L") or ``(N, H, W, 3)`` uint8.

    ``size`` is ``(width, height, first_file)`` of the dataset's first image, or
    None for the first split read; every image must have that size.
    """
    from PIL import Image  # local import: keeps ``import nnprobe.data`` light

    n = len(files)
    gray: np.ndarray | None = None
    rgb: np.ndarray | None = None
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                if size is None:
                    size = (im.width, im.height, path)
                elif im.size != size[:2]:
                    w0, h0, ref = size
                    raise DatasetError(
                        f"mixed image sizes: {path} is {im.width}x{im.height} (WxH) but "
                        f"{ref} is {w0}x{h0}; all images of a dataset must have the same "
                        "size. Resize or crop them to one size before preparing the data."
                    )
                if im.mode == "L" and rgb is None:
                    if gray is None:
                        gray = np.empty((n, size[1], size[0]), dtype=np.uint8)
                    gray[i] = np.asarray(im)
                else:
                    if rgb is None:
                        rgb = np.empty((n, size[1], size[0], 3), dtype=np.uint8)
                        if gray is not None:  # earlier images were grayscale: L -> RGB
                            rgb[:i] = gray[:i, :, :, None]
                            gray = None
                    rgb[i] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        except DatasetError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise DatasetError(
                f"cannot read image {path}: {type(exc).__name__}: {exc}. The file is "
                "corrupt or not an image; replace it or delete it."
            ) from exc
    assert size is not None  # files is never empty here
    out = rgb if rgb is not None else gray
    assert out is not None
    return out, size


def load_image_folder(root: Path) -> tuple[dict[str, Split], list[Path]]:
    """Load an image-folder dataset ``ROOT/{train,test}/CLASS/*.{png,jpg,jpeg}``.

    Classes are the sorted names of the class folders (hidden folders ignored) and
    must be the same in ``train`` and ``test``. Files are read in sorted order;
    suffixes are matched case-insensitively, other files are ignored. Images are
    converted to RGB (C=3) unless every image of the dataset has PIL mode "L"
    (then C=1). All images must have the same size.

    Returns
    -------
    splits, inputs
        ``{"train": Split, "test": Split}`` and the image files read.

    Raises
    ------
    DatasetError
        If the root, a split folder or a class's images are missing, an image
        cannot be decoded, image sizes differ, the class lists of train and test
        differ, or there are fewer than two classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"image_folder dataset root {root} does not exist or is not a folder; expected "
            "ROOT/train/CLASS/*.png|jpg and ROOT/test/CLASS/*.png|jpg. Set dataset.root "
            "to the folder that contains train/ and test/."
        )
    class_lists: dict[str, list[str]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DatasetError(
                f"image_folder dataset {root} has no {split}/ folder (looked for {split_dir}); "
                f"expected {split_dir}/CLASS/*.png|jpg with one sub-folder per class."
            )
        class_lists[split] = _list_class_dirs(split_dir)
    train_classes, test_classes = class_lists["train"], class_lists["test"]
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DatasetError(
            f"image_folder dataset {root}: class folders of train/ and test/ differ: "
            f"only in {root / 'train'}: {only_train}; only in {root / 'test'}: {only_test}. "
            "Every class needs a folder in both train/ and test/."
        )
    classes = tuple(train_classes)
    if len(classes) < 2:
        raise DatasetError(
            f"image_folder dataset {root} has {len(classes)} class folder(s) {list(classes)} "
            f"in {root / 'train'}; a classifier needs at least two. Expected "
            "ROOT/train/CLASS/*.png with one sub-folder per class."
        )

    listed: dict[str, tuple[list[Path], np.ndarray]] = {}
    for split in ("train", "test"):
        files: list[Path] = []
        labels: list[int] = []
        for k, name in enumerate(classes):
            found = _list_images(root / split / name)
            if not found:
                raise DatasetError(
                    f"class folder {root / split / name} contains no images "
                    f"({'/'.join(IMAGE_SUFFIXES)}); every class needs at least one train "
                    "and one test image. Add images or remove the class from both train/ "
                    "and test/."
                )
            files.extend(found)
            labels.extend([k] * len(found))
        listed[split] = (files, np.asarray(labels, dtype=np.int64))

    arrays: dict[str, np.ndarray] = {}
    size: tuple[int, int, Path] | None = None
    for split in ("train", "test"):
        arrays[split], size = _read_image_folder_split(listed[split][0], size)
    if any(a.ndim == 4 for a in arrays.values()):  # some image is colour: all RGB
        arrays = {
            s: a if a.ndim == 4 else np.repeat(a[..., None], 3, axis=3) for s, a in arrays.items()
        }
        arrays = {s: np.ascontiguousarray(a.transpose(0, 3, 1, 2)) for s, a in arrays.items()}
    else:
        arrays = {s: a[:, None] for s, a in arrays.items()}

    splits = {s: Split(arrays[s], listed[s][1], classes) for s in ("train", "test")}
    inputs = listed["train"][0] + listed["test"][0]
    return splits, inputs


# --------------------------------------------------------------------------- idx


def _find_idx_folder(root: Path) -> tuple[dict[str, Path], Path]:
    """Return ``{base name: file}`` for the four idx files and the folder holding them."""
    names = [n for pair in _IDX_FILES.values() for n in pair]
    looked: list[str] = []
    for sub in _IDX_SUBDIRS:
        folder = (root / sub) if sub != "." else root
        if not folder.is_dir():
            continue
        found: dict[str, Path] = {}
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(names):
            return found, folder
        if found:
            missing = [n for n in names if n not in found]
            looked.append(f"{folder} (missing {missing})")
        else:
            looked.append(str(folder))
    raise DatasetError(
        f"idx dataset root {root}: did not find the four MNIST-format idx files "
        f"{names} (or their .gz versions); looked in {looked or [str(root)]}. "
        f"Put them in {root}, {root / 'MNIST' / 'raw'} or {root / 'raw'}."
    )


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"cannot read idx file {path}: {type(exc).__name__}: {exc}") from exc


def _parse_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an unsigned-byte idx file (images: magic 2051, labels: magic 2049)."""
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    what = (
        "images (magic 2051, 3 dimensions)"
        if magic == _IDX_MAGIC_IMAGES
        else "labels (magic 2049, 1 dimension)"
    )
    if len(data) < header:
        raise DatasetError(
            f"idx file {path} is truncated: {len(data)} bytes, shorter than the "
            f"{header}-byte header of an idx {what} file. Re-download or re-extract it."
        )
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DatasetError(
            f"idx file {path} has magic number {got}, expected {magic} for {what}. "
            "Check that the file is an uncompressed (or .gz) MNIST-format idx file and "
            "that images and labels are not swapped."
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(
            f"idx file {path} is {state}: header dimensions {list(dims)} need "
            f"{expected} bytes, the file has {len(data)}. Re-download or re-extract it."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_idx(root: Path) -> tuple[dict[str, Split], list[Path]]:
    """Load MNIST-format idx files from a folder.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally
    ``.gz``) in ``root``, ``root/MNIST/raw``, ``root/FashionMNIST/raw`` or
    ``root/raw``. Labels must be ``0..K-1`` with every value present in train or
    test; classes are ``("0", ..., str(K-1))``. Images have shape ``(N, 1, rows, cols)``.

    Raises
    ------
    DatasetError
        If the root or a file is missing, a file has the wrong magic number or
        size, or image and label counts differ.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"idx dataset root {root} does not exist or is not a folder; set dataset.root to "
            "the folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte."
        )
    files, folder = _find_idx_folder(root)
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, (img_name, lab_name) in _IDX_FILES.items():
        images = _parse_idx(files[img_name], _IDX_MAGIC_IMAGES)
        labels = _parse_idx(files[lab_name], _IDX_MAGIC_LABELS)
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"idx files disagree: {files[img_name]} holds {images.shape[0]} images but "
                f"{files[lab_name]} holds {labels.shape[0]} labels; they must match."
            )
        raw[split] = (images, labels)
    present = np.union1d(np.unique(raw["train"][1]), np.unique(raw["test"][1]))
    k = int(present.size)
    if not np.array_equal(present, np.arange(k)):
        raise DatasetError(
            f"idx labels in {folder} must be 0..K-1 with every value used, got label values "
            f"{present.tolist()}; relabel the classes consecutively from 0."
        )
    classes = tuple(str(i) for i in range(k))
    splits = {
        s: Split(np.ascontiguousarray(im[:, None]), lab.astype(np.int64), classes)
        for s, (im, lab) in raw.items()
    }
    inputs = [files[n] for pair in _IDX_FILES.values() for n in pair]
    return splits, inputs


# --------------------------------------------------------------------------- sklearn_digits


def load_sklearn_digits(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[dict[str, Split], list[Path]]:
    """Load scikit-learn's 1,797 bundled 8x8 handwritten digits (UCI optdigits test set).

    Pixel values 0..16 are mapped to uint8 by ``round(v * 255 / 16)``. The split is
    stratified by class (``train_test_split(stratify=y, random_state=seed)``) and
    deterministic for a given ``(test_fraction, seed)``; each split keeps the
    original sample order. Images have shape ``(N, 1, 8, 8)``, classes ``"0".."9"``.

    Returns
    -------
    splits, inputs
        ``{"train": Split, "test": Split}`` and ``[path of digits.csv.gz]``.

    Raises
    ------
    DatasetError
        If ``test_fraction`` is not in (0, 1) or leaves a split without every class.
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0 < test_fraction < 1
    ):
        raise DatasetError(
            f"dataset.test_fraction must be a number in (0, 1), got {test_fraction!r}"
        )
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    values = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), 0..16
    images = np.round(values * 255.0 / 16.0).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    classes = tuple(str(c) for c in bunch.target_names)
    index = np.arange(labels.shape[0])
    try:
        train_idx, test_idx = train_test_split(
            index, test_size=float(test_fraction), stratify=labels, random_state=int(seed)
        )
    except ValueError as exc:
        raise DatasetError(
            f"cannot split sklearn_digits with dataset.test_fraction={test_fraction}: {exc}"
        ) from exc
    splits = {}
    for name, idx in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        splits[name] = Split(np.ascontiguousarray(images[idx]), labels[idx], classes)
    return splits, [_sklearn_digits_file()]


def _sklearn_digits_file() -> Path:
    import sklearn.datasets

    path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DatasetError(
            f"scikit-learn's bundled digits file {path} is missing; reinstall scikit-learn."
        )
    return path


# --------------------------------------------------------------------------- torchvision


def _md5_problems(files: Iterable[tuple[Path, str]]) -> list[str]:
    problems = []
    for path, expected in files:
        got = _hash_file(path, "md5")
        if got != expected:
            problems.append(f"{path}: md5 {got}, expected {expected}")
    return problems


def _check_mnist_like(cls: Any, name: str, raw_folder: Path, done: set[Path]) -> None:
    """Check md5 of the existing raw files of an MNIST-like torchvision dataset.

    The ``.gz`` archives are checked against torchvision's own ``resources``; for
    MNIST the uncompressed idx files are checked against :data:`MNIST_RAW_MD5`.
    Files in ``done`` are skipped; checked files are added to it.
    """
    expected: dict[Path, str] = {}
    for url, md5 in getattr(cls, "resources", []):
        expected[raw_folder / os.path.basename(url)] = md5
    if name == "mnist":
        expected.update({raw_folder / f: md5 for f, md5 in MNIST_RAW_MD5.items()})
    todo = [(p, m) for p, m in expected.items() if p not in done and p.is_file()]
    problems = _md5_problems(todo)
    done.update(p for p, _ in todo)
    if problems:
        raise DatasetError(
            f"torchvision dataset {name!r}: checksum mismatch, the files differ from the "
            "official release:\n  - " + "\n  - ".join(problems) + f"\nDelete {raw_folder} and "
            "download again (dataset.download=true), or use dataset.source=idx for "
            "non-official idx files."
        )


def load_torchvision(name: str, root: Path, download: bool) -> tuple[dict[str, Split], list[Path]]:
    """Load ``cifar10``, ``mnist`` or ``fashion_mnist`` through ``torchvision.datasets``.

    torchvision checks the md5 of what it downloads (and of CIFAR's batch files on
    every load). For MNIST-like sets the raw files under ``root/<Class>/raw`` are
    also checked when present: the ``.gz`` archives against torchvision's values
    and, for MNIST, the uncompressed idx files against :data:`MNIST_RAW_MD5`.
    Class names are taken from the dataset's ``.classes`` as given (MNIST:
    ``"0 - zero"``, ...).

    Returns
    -------
    splits, inputs
        ``{"train": Split, "test": Split}`` and the files under the dataset folder.

    Raises
    ------
    DatasetError
        If ``name`` is unknown, the data is missing or corrupt (with where it
        looked and how to get it), or a checksum differs.
    """
    if name not in TORCHVISION_DATASETS:
        raise DatasetError(
            f"dataset.name must be one of {list(TORCHVISION_DATASETS)} for "
            f"dataset.source=torchvision, got {name!r}"
        )
    import torchvision.datasets as tvd

    root = Path(root)
    cls = {"cifar10": tvd.CIFAR10, "mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    mnist_like = name != "cifar10"
    folder = root / (cls.__name__ if mnist_like else tvd.CIFAR10.base_folder)
    raw_folder = root / cls.__name__ / "raw"
    checked: set[Path] = set()
    if mnist_like:
        _check_mnist_like(cls, name, raw_folder, checked)

    datasets = {}
    for split in ("train", "test"):
        try:
            datasets[split] = cls(str(root), train=split == "train", download=bool(download))
        except (RuntimeError, OSError, EOFError, ValueError, AssertionError) as exc:
            raise DatasetError(
                f"torchvision dataset {name!r} not found or corrupted under {root} (looked in "
                f"{folder}; download={bool(download)}): {type(exc).__name__}: {exc}. "
                + (
                    "Downloading needs internet access; "
                    if download
                    else "To fetch it, set dataset.download=true (needs internet access); "
                )
                + f"{_OFFLINE_HINT}."
            ) from exc
    if mnist_like:  # files that appeared through the download
        _check_mnist_like(cls, name, raw_folder, checked)

    classes = tuple(str(c) for c in datasets["train"].classes)
    splits = {}
    for split, ds in datasets.items():
        if mnist_like:
            images = ds.data.numpy().astype(np.uint8, copy=False)[:, None]
            labels = ds.targets.numpy()
        else:
            images = np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)
            labels = np.asarray(ds.targets)
        splits[split] = Split(np.ascontiguousarray(images), labels.astype(np.int64), classes)
    inputs = sorted(p for p in folder.rglob("*") if p.is_file())
    return splits, inputs


# --------------------------------------------------------------------------- dispatch


def load_dataset(
    source: str,
    root: Path | None = None,
    name: str | None = None,
    download: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    checksums: Mapping[str, str] | None = None,
) -> tuple[dict[str, Split], list[Path]]:
    """Load a dataset from any of :data:`SOURCES` and check its two splits agree.

    Parameters
    ----------
    source : str
        One of ``torchvision``, ``image_folder``, ``idx``, ``sklearn_digits``.
    root : Path or None
        Data folder; required for every source but ``sklearn_digits``.
    name : str or None
        torchvision dataset name (one of :data:`TORCHVISION_DATASETS`).
    download : bool
        torchvision only: download if missing (needs internet).
    test_fraction, seed : float, int
        sklearn_digits only: size of the stratified test split and its seed.
    checksums : Mapping[str, str] or None
        ``{path relative to root: sha256}``, verified before loading.

    Returns
    -------
    splits, inputs
        ``{"train": Split, "test": Split}`` and the input files read.

    Raises
    ------
    DatasetError
        On an unknown source, a missing root or name, a checksum failure, any
        loader error, or if train and test differ in classes or image shape or
        have fewer than two classes.
    """
    if source not in SOURCES:
        raise DatasetError(f"dataset.source must be one of {list(SOURCES)}, got {source!r}")
    if root is not None and str(root) == "":
        root = None
    root_path = Path(root).expanduser() if root is not None else None
    if root_path is None and source != "sklearn_digits":
        raise DatasetError(
            f"dataset.root is required for dataset.source={source}, got {root!r}; set it to "
            "the folder holding the data (for torchvision: where it is or will be downloaded)."
        )
    if checksums:
        if root_path is None:
            raise DatasetError(
                "dataset.checksums was given but dataset.root is not set; checksum paths are "
                "relative to dataset.root. Set dataset.root or remove dataset.checksums."
            )
        verify_checksums(root_path, checksums)

    if source == "sklearn_digits":
        splits, inputs = load_sklearn_digits(test_fraction=test_fraction, seed=seed)
    elif source == "image_folder":
        splits, inputs = load_image_folder(root_path)  # type: ignore[arg-type]
    elif source == "idx":
        splits, inputs = load_idx(root_path)  # type: ignore[arg-type]
    else:
        if name is None:
            raise DatasetError(
                f"dataset.name is required for dataset.source=torchvision; expected one of "
                f"{list(TORCHVISION_DATASETS)}"
            )
        splits, inputs = load_torchvision(name, root_path, download)  # type: ignore[arg-type]
    _check_consistent(splits, source)
    log.info(
        "loaded %s dataset: %s",
        source,
        ", ".join(f"{k} {v.images.shape}" for k, v in splits.items()),
    )
    return splits, inputs


def _check_consistent(splits: Mapping[str, Split], source: str) -> None:
    if set(splits) != {"train", "test"}:
        raise DatasetError(
            f"{source} loader returned splits {sorted(splits)}, expected train and test"
        )
    train, test = splits["train"], splits["test"]
    if train.classes != test.classes:
        raise DatasetError(
            f"{source} dataset: train classes {list(train.classes)} differ from test classes "
            f"{list(test.classes)}; both splits must have the same classes in the same order."
        )
    if len(train.classes) < 2:
        raise DatasetError(
            f"{source} dataset has {len(train.classes)} class(es) {list(train.classes)}; a "
            "classifier needs at least two."
        )
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DatasetError(
            f"{source} dataset: train images are {train.images.shape[1:]} (C, H, W) but test "
            f"images are {test.images.shape[1:]}; both splits need the same image shape."
        )
    for split_name, split in splits.items():
        if len(split) == 0:
            raise DatasetError(f"{source} dataset: the {split_name} split is empty.")


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temp file in the same folder and ``os.replace``.

    On any error (including KeyboardInterrupt) the temp file is removed and an
    existing ``path`` is left untouched. The file gets the usual permissions
    (0o666 minus the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_split(split: Split, path: Path) -> None:
    """Save a split atomically as an uncompressed ``.npz`` (keys images, labels, classes).

    ``classes`` is stored as a numpy unicode array, so :func:`load_split` needs no
    pickle. Parent folders are created; on any error no file is left behind.
    """

    def write(f: IO[bytes]) -> None:
        np.savez(
            f,
            images=split.images,
            labels=split.labels,
            classes=np.asarray(split.classes, dtype=np.str_),
        )

    _atomic_write(Path(path), write)


def load_split(path: Path) -> Split:
    """Load a split written by :func:`save_split` (``np.load(..., allow_pickle=False)``).

    Raises
    ------
    DatasetError
        If the file is missing, is not an ``.npz`` archive, or its keys, dtypes or
        shapes are not those of a prepared split.
    """
    path = Path(path)
    hint = "Delete it and re-run the data preparation rule."
    if not path.is_file():
        raise DatasetError(f"prepared split {path} does not exist; run the data preparation rule.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DatasetError(f"{path} is not a prepared split (.npz archive). {hint}")
            missing = {"images", "labels", "classes"} - set(npz.files)
            if missing:
                raise DatasetError(
                    f"{path} is not a prepared split: missing keys {sorted(missing)}, found "
                    f"{sorted(npz.files)}. {hint}"
                )
            images, labels, classes = npz["images"], npz["labels"], npz["classes"]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DatasetError(
            f"{path} is not a valid prepared split ({type(exc).__name__}: {exc}). {hint}"
        ) from exc
    if classes.ndim != 1 or classes.dtype.kind != "U":
        raise DatasetError(
            f"{path} is not a prepared split: classes must be a 1-d unicode array, got "
            f"{_describe(classes)}. {hint}"
        )
    class_names = tuple(str(c) for c in classes)
    problem = _split_problem(images, labels, class_names)
    if problem:
        raise DatasetError(f"{path} is not a valid prepared split: {problem}. {hint}")
    return Split(images, labels, class_names)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON atomically (numpy scalars/arrays and Paths allowed)."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


# --------------------------------------------------------------------------- statistics


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1].

    ``mean_c = sum(x) / (255 n)`` and ``std_c = sqrt(n sum(x^2) - sum(x)^2) / (255 n)``
    over all images and pixels of channel ``c`` (population std, ddof=0). Sums are
    accumulated exactly in integers, chunk by chunk, so memory stays small.

    Parameters
    ----------
    images : np.ndarray
        ``uint8`` array of shape ``(N, C, H, W)`` with ``N * H * W > 0``.

    Returns
    -------
    mean, std : np.ndarray
        ``float64`` arrays of shape ``(C,)``.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be a uint8 array of shape (N, C, H, W), got {_describe(images)}"
        )
    n_img, c, h, w = images.shape
    count = n_img * h * w
    if count == 0:
        raise ValueError(f"images must not be empty, got shape {images.shape}")
    s1 = np.zeros(c, dtype=np.uint64)
    s2 = np.zeros(c, dtype=np.uint64)
    step = max(1, (1 << 22) // max(1, c * h * w))
    for start in range(0, n_img, step):
        chunk = images[start : start + step]
        s1 += chunk.sum(axis=(0, 2, 3), dtype=np.uint64)
        sq = chunk.astype(np.uint32)
        sq *= sq
        s2 += sq.sum(axis=(0, 2, 3), dtype=np.uint64)
    mean = np.empty(c, dtype=np.float64)
    std = np.empty(c, dtype=np.float64)
    for k in range(c):
        a, b = int(s1[k]), int(s2[k])  # exact Python integers
        mean[k] = a / (255 * count)
        std[k] = float(np.sqrt(float(count * b - a * a))) / (255 * count)
    return mean, std


def manifest(splits: dict[str, Split], inputs: list[Path], source: str) -> dict:
    """Describe prepared splits and their inputs as a JSON-able dict.

    Returns
    -------
    dict
        ``{"source", "classes", "splits": {name: {"n", "shape" [C, H, W],
        "counts" {class: n}, "mean", "std"}}, "inputs": [{"path", "sha256"}]}``,
        with mean and std from :func:`channel_stats`.
    """
    first = next(iter(splits.values()))
    out: dict[str, Any] = {"source": source, "classes": list(first.classes), "splits": {}}
    for name, split in splits.items():
        counts = np.bincount(split.labels, minlength=len(split.classes))
        mean, std = channel_stats(split.images)
        out["splits"][name] = {
            "n": int(len(split)),
            "shape": [int(d) for d in split.images.shape[1:]],
            "counts": {cls: int(k) for cls, k in zip(split.classes, counts)},
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        }
    out["inputs"] = [{"path": str(p), "sha256": sha256_file(p)} for p in inputs]
    return out
