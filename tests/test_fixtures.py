"""The unit tests' shared data comes from tests/conftest.py: no test module redefines one of its
fixtures or loads the digits into a fixture of its own (a copied fixture drifts apart from the
original, and every copy reads the data again)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: Calls that read the digits; tests/core/test_sources.py tests the loaders themselves.
LOADERS = {"load_digits", "load_sklearn_digits", "prepare_dataset"}


def _fixtures(path: Path) -> list[ast.FunctionDef]:
    def is_fixture(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Attribute) and target.attr == "fixture"

    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            and any(is_fixture(d) for d in node.decorator_list)]


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_no_test_module_redefines_or_copies_a_shared_fixture():
    shared = {f.name for f in _fixtures(TESTS / "conftest.py")}
    assert {"digit_images", "digit_vectors", "digit_vector_split", "prepared_digits"} <= shared
    problems = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for fixture in _fixtures(path):
            where = f"{path.relative_to(TESTS)}::{fixture.name}"
            if fixture.name in shared:
                problems.append(f"{where} redefines tests/conftest.py's fixture")
            loaded = _calls(fixture) & LOADERS
            if loaded:
                problems.append(f"{where} loads the digits itself ({sorted(loaded)}): use a fixture of tests/conftest.py")
    assert not problems, "\n".join(problems)
