"""Files: the one atomic writer, and the table, JSON and array formats built on it.

Every output of the workflow is written through :func:`atomic_write`: to a temporary name in
the destination folder, then renamed into place, so a killed job never leaves a half-written
file that Snakemake (or a person) could mistake for a result. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write",
    "remove_stale_temporaries",
    "write_text",
    "write_json",
    "read_json",
    "write_parquet",
    "write_tables",
    "write_npz",
    "sha256_file",
    "md5_file",
]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``, durably.

    The temporary file is flushed to the disk (``fsync``) before the rename, and the folder
    after it, so that after a crash of the machine (which the SLURM profile retries) ``path``
    holds either its old content or the whole new one, never an empty or partial file. The rename
    is atomic (same folder, same filesystem). On any error, KeyboardInterrupt included, the
    temporary file is removed and an existing ``path`` is left untouched; a temporary file left
    by a killed process is removed when its job starts again (:func:`remove_stale_temporaries`).
    Parent folders are created; the file gets the usual permissions (not mkstemp's 0600).
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


#: The suffix of :func:`atomic_write`'s temporary files (named ``.NAME.PID.RANDOM.tmp`` beside NAME).
TEMPORARY_SUFFIX = ".tmp"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some filesystems refuse fsync on folders; the rename itself is still atomic
        pass
    finally:
        os.close(descriptor)


def remove_stale_temporaries(places: Iterable[str | Path]) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left beside the files of ``places`` (and in the
    folders of ``places`` that are folders) when a killed process could not remove them.

    Call it when a job starts, before anything of the job writes: every temporary file there
    is then a leftover. Only names of :func:`atomic_write`'s pattern are touched. Returns the
    files removed.
    """
    pattern = re.compile(r"^\..+\.[0-9]+\.[0-9a-f]{8}" + re.escape(TEMPORARY_SUFFIX) + "$")
    candidates: set[Path] = set()
    for place in map(Path, places):
        if place.is_dir():  # a folder of the job's own (its checkpoints): everything below it
            candidates.update(place.rglob(".*" + TEMPORARY_SUFFIX))
        elif place.parent.is_dir():  # an output: the temporaries beside it, of its name
            candidates.update(place.parent.glob(f".{place.name}.*{TEMPORARY_SUFFIX}"))
    removed = []
    for candidate in sorted(candidates):
        if pattern.match(candidate.name) and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays and Paths allowed; no NaN)."""
    return write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n", path)


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(table, path: str | Path) -> Path:
    """Write a pandas DataFrame as Parquet (no index) atomically."""
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False, engine="pyarrow"))


def write_tables(table, stem: str | Path, markdown=None) -> list[Path]:
    """Write a DataFrame to ``stem.parquet`` (machine), ``stem.csv`` and ``stem.md`` (people).

    The suffixes are appended to the full name (``a/welch.cvc`` -> ``a/welch.cvc.csv``).
    Markdown via ``to_markdown(index=False, floatfmt=".4g")`` of ``table``, or of ``markdown``
    when given (a DataFrame laid out for people: e.g. rates with their intervals in one cell).
    Each file is written atomically.
    """
    stem = Path(stem)

    def named(suffix: str) -> Path:
        return stem.with_name(stem.name + suffix)

    markdown = (table if markdown is None else markdown).to_markdown(index=False, floatfmt=".4g") + "\n"
    return [
        write_parquet(table, named(".parquet")),
        atomic_write(named(".csv"), lambda tmp: table.to_csv(tmp, index=False)),
        write_text(markdown, named(".md")),
    ]


def write_npz(arrays: Mapping[str, np.ndarray], path: str | Path, compressed: bool = False) -> Path:
    """Write arrays to an ``.npz`` archive atomically (no pickled objects: read with ``allow_pickle=False``)."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as stream:  # a file object: np.savez would append ".npz" to a path
            save(stream, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, write)


def _hash_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """The hex sha256 digest of the file at ``path`` (read in 1 MiB blocks)."""
    return _hash_file(Path(path), "sha256")


def md5_file(path: str | Path) -> str:
    """The hex md5 digest of the file at ``path`` (the checksum torchvision and MNIST publish)."""
    return _hash_file(Path(path), "md5")
