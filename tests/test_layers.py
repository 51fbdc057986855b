"""The package's layering, checked on its source (../shared/DESIGN.md, "the house in layers").

Imports run one way: studies -> engines -> models -> core; stats and plotting are leaves that
use core only; the evidence command sits on top of the studies; no study imports another; no module is much over 500 lines; only the training
engine runs backward passes on a network's parameters (two input-space optimisations run
backward on images and masks, with the network frozen); ``core.naming`` and ``core.config``,
which ``rules/common.smk`` imports wherever Snakemake runs, and the report jobs import no torch.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nnprobe"
MODULES = sorted(p for p in SRC.rglob("*.py"))

#: Layer of every top-level part of the package, and the layers each may import.
LAYER = {"core": 0, "models": 1, "engines": 2, "studies": 3, "stats": 1, "plotting": 1, "evidence": 4}
MAY_IMPORT = {
    "core": {"core"},
    "models": {"core", "models"},
    "engines": {"core", "models", "engines"},
    "studies": {"core", "models", "engines", "stats", "plotting", "studies"},
    "stats": set(),
    "plotting": {"core"},
    "evidence": {"core", "studies"},  # rebuilds a study's tables from committed evidence, on a CPU
}
#: Files besides the engine that call backward, each optimising inputs of a frozen network.
INPUT_SPACE = {"engines/features.py", "studies/visualize/patterns.py"}


def part(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def nnprobe_imports(path: Path) -> list[tuple[str, ...]]:
    """The nnprobe modules ``path`` imports, as parts below nnprobe (relative imports resolved)."""
    package = list(path.relative_to(SRC).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            found.append(tuple(base + (node.module.split(".") if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnprobe."):
            found.append(tuple(node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            found += [tuple(a.name.split(".")[1:]) for a in node.names if a.name.startswith("nnprobe.")]
    return [f for f in found if f]


@pytest.mark.parametrize("path", [p for p in MODULES if part(p) in LAYER], ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_one_way(path):
    here = part(path)
    for target in nnprobe_imports(path):
        assert target[0] in MAY_IMPORT[here], f"{path.relative_to(SRC)} ({here}) imports nnprobe.{'.'.join(target)}"
        if here == "studies" and target[0] == "studies":
            assert target[1] == path.relative_to(SRC).parts[1], (
                f"{path.relative_to(SRC)} imports another study, nnprobe.{'.'.join(target)}: "
                "what one study needs from another is a file made by a rule"
            )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_500_lines(path):
    assert len(path.read_text().splitlines()) <= 500


def test_only_the_engine_trains_networks():
    calls = re.compile(r"\.backward\(|\.zero_grad\(")
    callers = {str(p.relative_to(SRC)) for p in MODULES if calls.search(p.read_text())}
    assert callers == {"engines/training.py", *INPUT_SPACE}
    for name in INPUT_SPACE:  # they optimise inputs: the network's parameters are frozen first
        assert "requires_grad_(False)" in (SRC / name).read_text()


@pytest.mark.parametrize("module", ["nnprobe.core.naming", "nnprobe.core.config", "nnprobe.core.runtime",
                                    "nnprobe.stats", "nnprobe.plotting", "nnprobe.studies.mislabel.reports",
                                    "nnprobe.studies.adversarial.reports", "nnprobe.studies.noise.reports",
                                    "nnprobe.studies.visualize.reports", "nnprobe.evidence"])
def test_torch_free_modules_import_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"importing {module} imports torch"
