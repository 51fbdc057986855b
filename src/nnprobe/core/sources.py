"""Datasets: load raw image data from one of four sources into prepared splits.

Every loader returns ``({"train": Split, "test": Split}, inputs)``, ``inputs`` the files that
were read (their sha256 goes into the manifest, see :mod:`nnprobe.core.splits`).

Sources (``dataset.source`` in the config):

``torchvision``
    CIFAR-10, MNIST or Fashion-MNIST through ``torchvision.datasets``, which downloads the
    official archives and checks their md5. For MNIST the four uncompressed idx files are
    additionally checked against the official md5.
``image_folder``, ``idx``
    Data on disk (:mod:`nnprobe.core.folders`).
``sklearn_digits``
    The 1,797 real 8x8 handwritten digits bundled with scikit-learn: no download, the
    embedded default of the demo config.

This module must not import Snakemake.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .folders import load_idx, load_image_folder
from .io import md5_file, sha256_file, write_json
from .seeds import derive_seed
from .splits import DatasetError, Split, manifest, save_split

__all__ = [
    "stratified_subset",
    "SOURCES",
    "TORCHVISION_DATASETS",
    "MNIST_RAW_MD5",
    "load_sklearn_digits",
    "load_torchvision",
    "load_dataset",
    "verify_checksums",
    "prepare_dataset",
    "download_torchvision",
]

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("torchvision", "image_folder", "idx", "sklearn_digits")
TORCHVISION_DATASETS: tuple[str, ...] = ("cifar10", "mnist", "fashion_mnist")

#: Official md5 of the four *uncompressed* MNIST idx files.
MNIST_RAW_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

_OFFLINE_HINT = (
    "on a machine without internet, put the data on disk and use "
    "dataset.source=image_folder (ROOT/{train,test}/CLASS/*.png) or dataset.source=idx "
    "(MNIST-format idx files)"
)


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
        got = md5_file(path)
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


def stratified_subset(split: Split, per_class: int, seed: int) -> Split:
    """``per_class`` images of every class of ``split``, drawn without replacement by a generator
    seeded from ``(seed, "train_per_class")``, in their original order (a smaller training set
    with the class balance of a balanced dataset, the same on every machine)."""
    counts = np.bincount(split.labels, minlength=len(split.classes))
    short = {split.classes[c]: int(n) for c, n in enumerate(counts) if n < per_class}
    if short:
        raise DatasetError(
            f"config key dataset.train_per_class is {per_class}, but these classes of the training split have "
            f"fewer images: {short}; set it to at most {int(counts.min())} or to null (all images)"
        )
    rng = np.random.default_rng(derive_seed(seed, "train_per_class"))
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(split.labels == c), per_class, replace=False)
                                   for c in range(len(split.classes))]))
    return Split(split.images[keep], split.labels[keep], split.classes)


def prepare_dataset(dataset: Mapping[str, Any], train: str | Path, test: str | Path, manifest_path: str | Path) -> None:
    """Load the dataset the config's ``dataset`` keys describe and write the prepared splits and manifest.

    ``dataset`` has source, root, name, download, test_fraction, seed and checksums (as the
    schema defines them). The manifest records classes, counts, shapes, channel statistics and
    the sha256 of every input file. With ``train_per_class`` the training split is a
    :func:`stratified_subset` of that many images per class (the test split stays whole).
    """
    root = dataset.get("root") or None
    source = dataset.get("source")
    splits, inputs = load_dataset(
        source,
        root=Path(root) if root is not None else None,
        name=dataset.get("name"),
        download=bool(dataset.get("download", False)),
        test_fraction=dataset.get("test_fraction", 0.2),
        seed=dataset.get("seed", 0),
        checksums=dataset.get("checksums") or None,
    )
    if dataset.get("train_per_class"):
        full = len(splits["train"])
        splits["train"] = stratified_subset(splits["train"], int(dataset["train_per_class"]), dataset.get("seed", 0))
        log.info("training split: %d of %d images, %d per class (dataset.train_per_class)", len(splits["train"]),
                 full, dataset["train_per_class"])
    info = {**manifest(splits, inputs, source), "dataset": dict(dataset)}
    for split_name, desc in info["splits"].items():
        log.info("%s: %d images of shape %s (C, H, W), counts per class %s, mean %s, std %s", split_name, desc["n"],
                 desc["shape"], desc["counts"], desc["mean"], desc["std"])
    save_split(splits["train"], Path(train))
    save_split(splits["test"], Path(test))
    write_json(info, Path(manifest_path))
    log.info("wrote %s, %s, %s (%d input files hashed)", train, test, manifest_path, len(inputs))



def download_torchvision(name: str, root: str | Path, download: bool = True) -> list[Path]:
    """Download the official archives of ``name`` into ``root`` through torchvision and check them.

    torchvision verifies the md5 of what it downloads; the MNIST idx files are also checked
    against :data:`MNIST_RAW_MD5`. With ``download`` false nothing is fetched and missing files
    are an error naming them. Offline, the error names the sources that need no internet.
    Returns the files (:data:`nnprobe.core.naming.TORCHVISION_RAW_FILES`).
    """
    from .naming import TORCHVISION_RAW_FILES

    if name not in TORCHVISION_RAW_FILES:
        raise DatasetError(f"dataset.name must be one of {sorted(TORCHVISION_RAW_FILES)} for dataset.source=torchvision, "
                           f"got {name!r}")
    root = Path(root)
    files = [root / f for f in TORCHVISION_RAW_FILES[name]]
    missing = [f for f in files if not f.is_file()]
    if missing and not download:
        raise DatasetError(f"dataset.download is false and {len(missing)} file(s) of {name} are missing under {root}: "
                           f"{[str(f) for f in missing[:4]]}; set dataset.download=true, or {_OFFLINE_HINT}")
    splits, _ = load_torchvision(name, root, download=bool(missing))
    log.info("%s: %s", name, ", ".join(f"{k} {v.images.shape}" for k, v in splits.items()))
    still = [f for f in files if not f.is_file()]
    if still:
        raise DatasetError(f"torchvision did not leave the expected files of {name}: {[str(f) for f in still]}")
    return files
