"""Prepared splits: uint8 images and int64 labels, their files, channel statistics and manifest.

A :class:`Split` holds ``uint8`` images ``(N, C, H, W)``, ``int64`` labels in
``[0, len(classes))`` and the class names. Prepared splits are uncompressed ``.npz`` files (no
pickle), written atomically; the manifest records counts, shapes, channel statistics and the
sha256 of every raw input file, so every prepared tensor can be traced to its raw bytes.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import sha256_file, write_npz

__all__ = ["DatasetError", "Split", "save_split", "load_split", "channel_stats", "manifest"]


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


def save_split(split: Split, path: Path) -> None:
    """Save a split atomically as an uncompressed ``.npz`` (keys images, labels, classes).

    ``classes`` is stored as a numpy unicode array, so :func:`load_split` needs no
    pickle. Parent folders are created; on any error no file is left behind.
    """

    write_npz({"images": split.images, "labels": split.labels, "classes": np.asarray(split.classes, dtype=np.str_)}, path)


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
