"""Datasets on disk in folders: an image-folder tree and MNIST-format idx files.

``image_folder``
    A tree ``ROOT/{train,test}/CLASS/*.{png,jpg,jpeg}``.
``idx``
    The four MNIST-format idx files (optionally gzipped) in a folder.

Each loader returns ``({"train": Split, "test": Split}, inputs)``, ``inputs`` the files read.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from .splits import DatasetError, Split

__all__ = ["IMAGE_SUFFIXES", "IDX_FILES", "load_image_folder", "load_idx"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

# idx file names per split: (images, labels)
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sub-folders of ROOT searched for idx files, in order
_IDX_SUBDIRS: tuple[str, ...] = (".", "MNIST/raw", "FashionMNIST/raw", "raw")
_IDX_MAGIC_IMAGES = 2051  # 0x00000803: unsigned byte, 3 dimensions
_IDX_MAGIC_LABELS = 2049  # 0x00000801: unsigned byte, 1 dimension


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
    names = [n for pair in IDX_FILES.values() for n in pair]
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
    for split, (img_name, lab_name) in IDX_FILES.items():
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
    inputs = [files[n] for pair in IDX_FILES.values() for n in pair]
    return splits, inputs
