"""The one weights format: safetensors with JSON metadata, one writer and one reader.

A weights file holds tensors only (nothing is unpickled when it is read) and, as safetensors
metadata, JSON strings that say what the tensors are:

``format``        ``"nnprobe-weights/1"``
``architecture``  the constructor of the network: ``{"name": ..., **arguments}`` (see
                  :func:`nnprobe.models.build_model`)
``config``        the slice of the configuration the network was trained with
``seeds``         the seeds it was initialised and trained from
``versions``      nnprobe, torch, Python
``extra``         anything else a study records (a population's members, training metrics)

A population stores every tensor stacked ``(K, ...)`` and its members in ``extra``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import atomic_write

__all__ = ["FORMAT", "Weights", "WeightsError", "save_weights", "read_weights"]

FORMAT = "nnprobe-weights/1"
_KEYS = ("architecture", "config", "seeds", "versions", "extra")


class WeightsError(ValueError):
    """A file is not a weights file of this format, or not the one a rule expected."""


@dataclass
class Weights:
    """The content of a weights file: tensors (on the CPU) and what they are."""

    tensors: dict[str, Any]
    architecture: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    import torch

    from .. import __version__

    return {"nnprobe": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save_weights(
    path: str | Path,
    tensors: Mapping[str, Any],
    *,
    architecture: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``tensors`` (a state dict) and their description to ``path``, atomically.

    ``architecture`` must name the constructor (``{"name": ...}``); every value must be JSON.
    Tensors are written contiguous, detached and on the CPU.
    """
    from safetensors.torch import save_file

    if "name" not in architecture:
        raise WeightsError(f"architecture must name its constructor ({{'name': ...}}), got {dict(architecture)}")
    metadata = {"format": FORMAT}
    for key, value in zip(_KEYS, (architecture, config or {}, seeds or {}, _versions(), extra or {})):
        metadata[key] = json.dumps(value, sort_keys=True)
    state = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata))


def read_weights(path: str | Path) -> Weights:
    """Read a file written by :func:`save_weights`; a file of any other kind is refused, saying why."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    hint = "Delete it and rerun the rule that makes it."
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; run the rule that makes it")
    try:
        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is not a safetensors file ({exc}). {hint}") from exc
    if metadata.get("format") != FORMAT:
        raise WeightsError(
            f"{path} has format {metadata.get('format')!r}, expected {FORMAT!r} (written by another tool or an "
            f"older nnprobe). {hint}"
        )
    described = {key: json.loads(metadata.get(key, "{}")) for key in _KEYS}
    return Weights(tensors, **described)
