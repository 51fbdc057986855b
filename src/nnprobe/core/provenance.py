"""Which package code a rule runs, so that a rule reruns when that code changes, and only then.

A rule's results depend on its inputs, its params and the code it runs: its script and the
``nnprobe`` code the script calls. The rules list those module files as inputs
(``rules/common.smk``), so Snakemake reruns a rule whose code was edited after its outputs were
made, and only those rules (a file that is newer but has the checksum Snakemake recorded with the
outputs counts as unchanged): a change to a figure module reruns that figure, a change to the
training engine retrains every network, a change to one architecture reruns the jobs that build it.

The imports are read from the source (no module is executed, nothing imports torch), at the
granularity of what is imported: ``from nnprobe.studies.noise.jobs import train_resnet`` follows
the module-level imports of ``jobs`` (Python runs them) and the imports inside ``train_resnet``
and the functions of ``jobs`` it calls, not those of the module's other jobs. A job module
therefore imports what only one of its jobs runs inside that job's function. ``import x``, ``from x
import *`` and a name that is a submodule follow the whole module, imports inside functions
included.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["imported_package_files", "code_version"]

#: What an import statement asks of a module: the module's parts below ``nnprobe`` and the
#: names taken from it (None: the whole module).
_Request = tuple[list[str], frozenset[str] | None]


def _module_file(root: Path, parts: list[str]) -> Path | None:
    candidates = [root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")]
    return next((c for c in candidates if parts and c.is_file()), None)


def _statement_imports(nodes: Iterable[ast.AST], path: Path, root: Path) -> list[_Request]:
    """The ``nnprobe`` modules the import statements among ``nodes`` ask for."""
    package = list(path.relative_to(root).parent.parts) if path.is_relative_to(root) else None
    found: list[_Request] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level and package is not None:
            module = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nnprobe":
            module = node.module.split(".")[1:]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[1:], None) for alias in node.names if alias.name.split(".")[0] == "nnprobe"]
            continue
        else:
            continue
        names = {alias.name for alias in node.names}
        submodules = {n for n in names if _module_file(root, module + [n]) is not None}
        found += [(module + [n], None) for n in submodules]  # `from . import x`: x is a module
        rest = names - submodules
        if rest or not names:
            found.append((module, None if "*" in rest else frozenset(rest)))
    return found


class _Source:
    """What the import graph needs of one file, read once: its import statements at module level
    (what Python runs on import) and, per definition, its import statements and the names it uses."""

    def __init__(self, path: Path) -> None:
        tree = ast.parse(path.read_text(), filename=str(path))
        is_import = (ast.Import, ast.ImportFrom)
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        definitions = {node.name: node for node in tree.body if isinstance(node, kinds)}
        self.everywhere = [n for n in ast.walk(tree) if isinstance(n, is_import)]
        self.top_level = [n for node in tree.body if node not in definitions.values()
                          for n in ast.walk(node) if isinstance(n, is_import)]
        self.definitions: dict[str, tuple[list[ast.AST], set[str]]] = {}
        for name, node in definitions.items():
            walked = list(ast.walk(node))
            self.definitions[name] = ([n for n in walked if isinstance(n, is_import)],
                                      {n.id for n in walked if isinstance(n, ast.Name)})


@functools.lru_cache(maxsize=None)
def _source(path: Path, stamp: tuple[int, int]) -> _Source:  # noqa: ARG001 (stamp: a changed file is read again)
    return _Source(path)


@functools.lru_cache(maxsize=None)
def _imports_cached(path: Path, stamp: tuple[int, int], root: Path, names: frozenset[str] | None) -> list[_Request]:
    source = _source(path, stamp)
    if names is None:
        return _statement_imports(source.everywhere, path, root)
    wanted, todo = set(), [n for n in names if n in source.definitions]
    while todo:  # the definitions asked for and the ones of this module they use
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo += [n for n in source.definitions[name][1] if n in source.definitions and n not in wanted]
    nodes = source.top_level + [n for name in sorted(wanted) for n in source.definitions[name][0]]
    return _statement_imports(nodes, path, root)


def _imports(path: Path, root: Path, names: frozenset[str] | None) -> list[_Request]:
    """The ``nnprobe`` modules that importing ``names`` from the file at ``path`` runs (all its
    imports when ``names`` is None). Each file is parsed once per process (the rule files ask for
    the code of some fifty scripts that share most modules), again when its size or time changes."""
    stat = path.stat()
    return _imports_cached(path, (stat.st_mtime_ns, stat.st_size), root, names)


def imported_package_files(script: str | Path, package_root: str | Path) -> list[Path]:
    """The files of the ``nnprobe`` code that ``script`` runs (its imports, followed), sorted.

    ``package_root`` is the folder of the ``nnprobe`` package (``src/nnprobe``). The packages'
    ``__init__.py`` files along the way count too (Python runs them on import).
    """
    root = Path(package_root).resolve()
    covered: dict[Path, frozenset[str] | None] = {}
    todo: list[tuple[Path, frozenset[str] | None]] = [(Path(script).resolve(), None)]
    while todo:
        path, names = todo.pop()
        if path in covered:
            before = covered[path]
            if before is None or (names is not None and names <= before):
                continue
            names = None if names is None else names | before
        covered[path] = names
        for parts, taken in _imports(path, root, names):
            for depth in range(len(parts) + 1):  # the package's __init__.py files, then the module
                found = _module_file(root, parts[:depth]) if depth else _module_file(root, ["__init__"])
                if found is None:
                    continue
                todo.append((found, taken if depth == len(parts) and found.name != "__init__.py" else None))
    return sorted(p for p in covered if p != Path(script).resolve())


def code_version(files: Iterable[str | Path]) -> str:
    """A short hash of the package code ``files`` hold (their names below ``nnprobe/`` and their bytes).

    A training job's checkpoint records the version of the code inputs it was written under; a
    job resumed under other code starts over instead of finishing old epochs with new code. The
    names count from the package folder, so the same code in another checkout has the same version.
    """
    named = []
    for path in map(Path, files):
        parts = path.resolve().parts
        below = len(parts) - 1 - parts[::-1].index("nnprobe") if "nnprobe" in parts else len(parts) - 1
        named.append(("/".join(parts[below:]), path))
    digest = hashlib.sha256()
    for name, path in sorted(named):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
