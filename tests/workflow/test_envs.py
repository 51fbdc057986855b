"""Static checks of the per-rule conda environments (envs/*.yaml).

Conda cannot run here, so these tests read the files instead of building the envs:
channels and pins, that every rule names an env, that each env holds every third-party
package its rules' scripts import (following the nnprobe modules they import, and the
pandas I/O that needs an optional package), and that the pins agree with pyproject.toml.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
PACKAGE_SRC = REPO / "src" / "nnprobe"

#: Import name -> the conda-forge / PyPI package names that provide it (when they differ
#: from the import name).
IMPORT_PACKAGES: dict[str, set[str]] = {
    "PIL": {"pillow"},
    "sklearn": {"scikit-learn"},
    "yaml": {"pyyaml"},
    "pytorch_lightning": {"pytorch-lightning", "lightning"},
    "lightning_fabric": {"pytorch-lightning", "lightning-fabric", "lightning"},
    "lightning": {"lightning"},
    "torch": {"pytorch", "torch"},
    "matplotlib": {"matplotlib-base", "matplotlib"},
    "skimage": {"scikit-image"},
    "cv2": {"opencv", "opencv-python", "opencv-python-headless"},
}
#: Conda-forge name -> the PyPI name pyproject.toml uses for the same package.
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib", "pytorch": "torch"}
#: Imports that need no package in the env: Snakemake's script preamble puts its own
#: module on sys.path, and envs/*.post-deploy.sh installs nnprobe.
PROVIDED = {"snakemake", "nnprobe"}
#: pandas methods whose engine is an optional package that no import statement names.
IMPLICIT_IMPORTS = {"read_parquet": "pyarrow", "to_parquet": "pyarrow", "to_markdown": "tabulate"}
#: Calendar-versioned packages, whose full releases are YY.N (pip 25.3).
CALVER = {"pip"}
#: Directives that make a rule run something (a rule with none of them, like `all`, runs
#: no code and needs no env).
ACTIONS = ("script", "shell", "run", "notebook", "wrapper", "cwl")


@dataclass
class Env:
    path: Path
    spec: dict
    conda: dict[str, str] = field(default_factory=dict)  # name -> version after '='
    pip: dict[str, str] = field(default_factory=dict)  # name -> version after '=='
    raw_conda: list[str] = field(default_factory=list)
    raw_pip: list[str] = field(default_factory=list)
    unpinned_pip: list[str] = field(default_factory=list)  # pip lines that are not name==version

    def packages(self) -> set[str]:
        return {canonicalize_name(n) for n in [*self.conda, *self.pip]}


@cache
def load_env(path: Path) -> Env:
    spec = yaml.safe_load(path.read_text())
    env = Env(path, spec)
    for dep in spec.get("dependencies") or []:
        if isinstance(dep, dict):
            for line in dep.get("pip") or []:
                env.raw_pip.append(str(line))
                match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^=<>!~*,;\s]+)", str(line).strip())
                if match:
                    env.pip[match.group(1)] = match.group(3)
                else:
                    env.unpinned_pip.append(str(line))
        else:
            env.raw_conda.append(str(dep))
            name, _, version = str(dep).partition("=")
            env.conda[name.strip()] = version
    return env


@dataclass
class Rule:
    name: str
    file: Path
    directives: dict[str, str]  # directive -> first value (string literals unquoted)


def parse_rules(path: Path) -> list[Rule]:
    """Rules of a Snakefile or .smk file and their one-value directives (conda:, script:).

    A rule made in a loop (``rule:`` with a ``name: f"download_{dataset}"`` directive) is named by
    the pattern of its name, ``download_*``.
    """
    rules: list[Rule] = []
    current: Rule | None = None
    indent = 4  # of the current rule's directives
    pending: str | None = None  # a directive whose value is on the next line
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        match = re.match(r"\s*(?:rule|checkpoint)\s*(\w*)\s*:", line)
        if match and depth in (0, 4):  # a rule at the top level, or in a loop
            current = Rule(match.group(1) or "", path, {})
            rules.append(current)
            indent, pending = depth + 4, None
            continue
        if depth < indent:  # the end of the current rule
            current, pending = None, None
            continue
        if current is None:
            continue
        directive = re.fullmatch(rf"\s{{{indent}}}(\w+):\s*(.*?)\s*", line)
        if directive:
            key, value = directive.groups()
            current.directives[key] = _unquote(value) if value else ""
            pending = None if value else key
        elif pending is not None:
            current.directives[pending] = _unquote(stripped.rstrip(","))
            pending = None
        if pending is None and "name" in current.directives and not current.name:
            current.name = re.sub(r"\{[^}]*\}", "*", _unquote(current.directives["name"].removeprefix("f")))
    return rules


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value


@cache
def all_rules() -> tuple[Rule, ...]:
    return tuple(rule for path in RULE_FILES for rule in parse_rules(path))


def acting_rules() -> list[Rule]:
    return [rule for rule in all_rules() if any(a in rule.directives for a in ACTIONS)]


def rule_env(rule: Rule) -> Env:
    return load_env((rule.file.parent / rule.directives["conda"]).resolve())


@dataclass
class Imports:
    third_party: dict[str, set[str]] = field(default_factory=dict)  # top-level name -> files
    implicit: dict[str, set[str]] = field(default_factory=dict)  # package -> files


def _module_file(module: str) -> Path | None:
    """The source file of an nnprobe module (``nnprobe.stats`` -> src/nnprobe/stats.py)."""
    parts = module.split(".")[1:]
    candidates = [PACKAGE_SRC.joinpath(*parts).with_suffix(".py"), PACKAGE_SRC.joinpath(*parts, "__init__.py")]
    return next((c for c in candidates if c.is_file()), None)


def _package_of(path: Path) -> list[str] | None:
    """The package a module file belongs to (src/nnprobe/stats.py -> ["nnprobe"]), or None."""
    if not path.is_relative_to(PACKAGE_SRC):
        return None
    parts = ["nnprobe", *path.relative_to(PACKAGE_SRC).with_suffix("").parts]
    return parts[:-1]  # drops the module name, or "__init__" for a package


def collect_imports(script: Path) -> Imports:
    """Third-party imports of ``script`` and, transitively, of the nnprobe modules it imports.

    Imports inside functions count (a rule may take that code path); so do the optional
    engines of pandas I/O calls (``to_parquet`` needs pyarrow, ``to_markdown`` tabulate).
    """
    found = Imports()
    seen: set[Path] = set()
    todo = [script]
    stdlib = set(sys.stdlib_module_names)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        package = _package_of(path)
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside the package
                    assert package is not None, f"relative import outside nnprobe in {path}"
                    base = package[: len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                modules = [module]
                # `from nnprobe import stats` imports the submodule nnprobe.stats
                modules += [f"{module}.{alias.name}" for alias in node.names if module.split(".")[0] == "nnprobe"]
            elif isinstance(node, ast.Attribute) and node.attr in IMPLICIT_IMPORTS:
                found.implicit.setdefault(IMPLICIT_IMPORTS[node.attr], set()).add(path.name)
            for module in modules:
                top = module.split(".")[0]
                if top == "nnprobe":
                    # the package and each parent module run on import
                    parts = module.split(".")
                    for i in range(1, len(parts) + 1):
                        target = _module_file(".".join(parts[:i])) if i > 1 else PACKAGE_SRC / "__init__.py"
                        if target is not None:
                            todo.append(target)
                elif top and top not in stdlib and top != "__future__":
                    found.third_party.setdefault(top, set()).add(path.name)
    return found


def required_packages(import_name: str) -> set[str]:
    return {canonicalize_name(p) for p in IMPORT_PACKAGES.get(import_name, {import_name.replace("_", "-")})}


@cache
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pyproject_requirements() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, pyproject()["project"]["dependencies"])}


# ---------------------------------------------------------------------------------------


def test_there_are_envs_and_rules():
    assert {p.name for p in ENVS} >= {"torch.yaml", "analysis.yaml"}
    assert len(acting_rules()) >= 9, [r.name for r in acting_rules()]


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_channels_are_conda_forge_and_nodefaults(path: Path):
    assert load_env(path).spec.get("channels") == ["conda-forge", "nodefaults"], (
        f"{path.name}: channels must be exactly [conda-forge, nodefaults] (no defaults channel, "
        f"no channel mixing); got {load_env(path).spec.get('channels')}"
    )


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_dependency_is_pinned(path: Path):
    env = load_env(path)
    assert env.raw_conda, f"{path.name} lists no conda dependency"
    for dep in env.raw_conda:
        name, sep, version = dep.partition("=")
        assert sep and re.fullmatch(r"\d+(\.\d+)+", version), (
            f"{path.name}: conda dependency {dep!r} is not pinned as name=x.y.z"
        )
        if name not in CALVER:
            assert version.count(".") >= 2, (
                f"{path.name}: {dep!r} names a release series, not a release (conda reads "
                f"{name}={version} as {version}.*); pin the full x.y.z version"
            )
    assert not env.unpinned_pip, (
        f"{path.name}: pip entries {env.unpinned_pip} are not 'package==version' pins. A local "
        "path such as '-e ..' breaks under Snakemake, which copies the yaml into "
        ".snakemake/conda/ before conda reads it; install the package in the env's "
        "post-deploy script instead"
    )
    if env.raw_pip:
        assert "pip" in env.conda, f"{path.name} has a pip section but does not pin pip itself"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_post_deploy_script_installs_the_package_without_dependencies(path: Path):
    """Rules import nnprobe, so every env installs it: editable, with no dependency pulled in."""
    script = path.with_name(path.stem + ".post-deploy.sh")
    assert script.is_file(), f"{path.name} has no {script.name} to install the nnprobe package"
    text = script.read_text()
    assert text.startswith("#!"), f"{script.name} needs a shebang (Snakemake runs it with that interpreter)"
    install = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(install) == 1 and "--no-deps" in install[0] and "--editable" in install[0], (
        f"{script.name} must run one `pip install --no-deps --editable <checkout>`, got {install}"
    )


def test_rule_parser_sees_every_rule_snakemake_sees():
    """The text parser above must not miss a rule: compare with `snakemake --list-rules`."""
    exe = Path(sys.executable).parent / "snakemake"
    if not exe.is_file():
        pytest.skip(f"no snakemake next to {sys.executable}")
    proc = subprocess.run(
        [str(exe), "--list-rules", "--configfile", str(REPO / "config" / "demo.yaml"), "--replace-workflow-config"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    parsed = {rule.name for rule in all_rules()}
    assert not any("*" in name and name.strip("*") == "" for name in parsed), parsed
    for name in listed:
        assert any(fnmatch.fnmatchcase(name, pattern) for pattern in parsed), f"the parser misses rule {name}"
    for pattern in parsed:
        assert any(fnmatch.fnmatchcase(name, pattern) for name in listed), f"no rule of Snakemake's is {pattern}"


@pytest.mark.parametrize("rule", acting_rules(), ids=lambda r: r.name)
def test_every_rule_has_an_existing_env(rule: Rule):
    assert "conda" in rule.directives, f"rule {rule.name} ({rule.file.name}) has no conda: directive"
    env_path = (rule.file.parent / rule.directives["conda"]).resolve()
    assert env_path in ENVS, f"rule {rule.name}: conda: {rule.directives['conda']} is not one of envs/*.yaml"


@pytest.mark.parametrize("rule", [r for r in acting_rules() if "script" in r.directives], ids=lambda r: r.name)
def test_env_holds_every_package_the_rule_imports(rule: Rule):
    script = (rule.file.parent / rule.directives["script"]).resolve()
    assert script.is_file(), f"rule {rule.name}: script {script} does not exist"
    env = rule_env(rule)
    have = env.packages()
    imports = collect_imports(script)
    missing = {
        name: sorted(files)
        for name, files in imports.third_party.items()
        if name not in PROVIDED and not required_packages(name) & have
    }
    missing |= {
        f"{package} (pandas engine)": sorted(files)
        for package, files in imports.implicit.items()
        if canonicalize_name(package) not in have
    }
    assert not missing, (
        f"rule {rule.name} runs {script.name} in {env.path.name}, which lacks the packages for "
        f"these imports (import name: files importing it): {missing}"
    )


def test_import_scan_finds_the_known_imports():
    """Guard the scanner itself on two scripts whose imports are known."""
    train = collect_imports(REPO / "scripts" / "mislabel" / "train_population.py")
    assert {"torch", "numpy", "safetensors", "lightning_fabric"} <= set(train.third_party)
    assert "pyarrow" in train.implicit  # per-model metrics are written as Parquet
    welch = collect_imports(REPO / "scripts" / "mislabel" / "welch_table.py")
    assert {"pandas", "scipy", "numpy"} <= set(welch.third_party)
    assert {"pyarrow", "tabulate"} <= set(welch.implicit)  # core.io.write_tables
    assert "torch" not in welch.third_party


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_pins_agree_with_pyproject(path: Path):
    """Same version where pyproject pins ==; inside pyproject's range where it gives one."""
    env = load_env(path)
    requirements = pyproject_requirements()
    pins = {**env.conda, **env.pip}
    checked = 0
    for name, version in pins.items():
        if name == "python":
            requires = SpecifierSet(pyproject()["project"]["requires-python"])
            assert Version(version) in requires, f"{path.name}: python={version} outside requires-python {requires}"
            continue
        requirement = requirements.get(canonicalize_name(CONDA_TO_PYPI.get(name, name)))
        if requirement is None:
            continue
        checked += 1
        exact = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
        if exact:
            assert Version(version) == Version(exact[0]), (
                f"{path.name} pins {name} {version}, pyproject.toml pins {requirement}"
            )
        else:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{path.name} pins {name} {version}, outside pyproject.toml's {requirement}"
            )
    assert checked, f"{path.name} shares no package with pyproject.toml's dependencies"
