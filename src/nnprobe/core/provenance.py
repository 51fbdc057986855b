"""Which package code a rule runs, so that a rule reruns when that code changes.

A rule's results depend on its inputs, its params and the code it runs: its script and the
``nnprobe`` modules the script imports, directly or through other modules. The rules list
those module files as inputs (``rules/common.smk``), so Snakemake reruns a rule whose code
was edited after its outputs were made, and only those rules (a file that is newer but has the
checksum Snakemake recorded with the outputs counts as unchanged): a change to a figure module reruns that
figure, a change to the training engine retrains every network. The imports are read from
the source (no module is executed, nothing imports torch), including imports inside
functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["imported_package_files"]


def _module_file(root: Path, parts: list[str]) -> Path | None:
    candidates = [root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")]
    return next((c for c in candidates if parts and c.is_file()), None)


def _imports(path: Path, root: Path) -> list[list[str]]:
    """The nnprobe modules a file imports, as parts below ``root`` (the nnprobe package folder)."""
    package = list(path.relative_to(root).parent.parts) if path.is_relative_to(root) else None
    found: list[list[str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level and package is not None:
            base = package[: len(package) - (node.level - 1)]
            module = base + (node.module.split(".") if node.module else [])
            found.append(module)
            found += [module + [alias.name] for alias in node.names]  # `from . import x`: x may be a module
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nnprobe":
            module = node.module.split(".")[1:]
            found.append(module)
            found += [module + [alias.name] for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name.split(".")[1:] for alias in node.names if alias.name.split(".")[0] == "nnprobe"]
    return found


def imported_package_files(script: str | Path, package_root: str | Path) -> list[Path]:
    """The files of every ``nnprobe`` module that ``script`` imports, directly or transitively, sorted.

    ``package_root`` is the folder of the ``nnprobe`` package (``src/nnprobe``). The packages'
    ``__init__.py`` files along the way count too (Python runs them on import).
    """
    root = Path(package_root).resolve()
    seen: set[Path] = set()
    todo = [Path(script).resolve()]
    while todo:
        path = todo.pop()
        for parts in _imports(path, root):
            for depth in range(len(parts) + 1):  # the package's __init__.py files, then the module
                found = _module_file(root, parts[:depth]) if depth else _module_file(root, ["__init__"])
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return sorted(seen)
