"""A rule's code inputs are the code it computes with: no training job depends on a statistics,
figure or report module (README, "What reruns"; ../shared/DESIGN.md).

A rule reruns when one of its code inputs changes (``code()`` in rules/common.smk: its script and
the package modules the script imports, nnprobe.core.provenance). A training job that imported a
function from :mod:`nnprobe.stats` would retrain every network when a statistics docstring was
edited. The workflow is parsed once on the demo config (no job runs) and every rule's code inputs
read from it; for every module of the package, the rules whose code inputs include it are listed
(the test ids), and the training rules among them must be ones whose layers train networks.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "nnprobe"
MODULES = sorted(str(p.relative_to(REPO)) for p in SRC.rglob("*.py"))

#: The rules that train networks (their jobs call the training engine's ``fit``).
TRAINING_RULES = {"train_population", "noise_train", "train_zoo_model", "visualize_train", "adversarial_training"}
#: Rules that hold a benchmark (as the training rules do) but optimise inputs of frozen networks.
INPUT_SPACE_RULES = {"attack_zoo_model", "visualize_features", "visualize_patterns"}
#: The layers a network is trained with: all of core, models and engines, and of its study the
#: modules that describe and train its networks (never its statistics, tables across networks,
#: figures or reports). The mislabel study's ``tables`` holds only the per-network table each
#: training job writes (and the concatenation of those tables).
TRAINING_LAYERS = ("core", "models", "engines")
STUDY_TRAINING_MODULES = {
    "train_population": {"mislabel": {"plan", "design", "jobs", "tables"}},
    "noise_train": {"noise": {"jobs", "training"}},
    "train_zoo_model": {"adversarial": {"jobs", "design", "training", "zoo"}},
    "visualize_train": {"visualize": {"jobs", "training", "backdoor"}},
    "adversarial_training": {"adversarial": {"plan", "design", "regimes", "training", "zoo", "pools", "perturbed",
                                             "monitor"}},
}

#: Parses the workflow with Snakemake's API (in a process of its own: the API changes the working
#: directory and logging) and prints every rule's code inputs, outputs and whether it has a benchmark.
_DUMP = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

snakefile, workdir, *configfiles = sys.argv[1:]
with SnakemakeApi(OutputSettings()) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles], replace_workflow_config=True),
        snakefile=Path(snakefile),
        workdir=Path(workdir),
    )
    workflow_api.dag(DAGSettings())
    workflow = workflow_api._workflow
    workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
    workflow._build_dag()  # which rules the config's DAG runs (a rule of another design is defined, not run)
    in_dag = {job.rule.name for job in workflow.dag.jobs}
    rules = {
        rule.name: {"code": [str(f) for f in rule.input.get("code", [])], "output": [str(f) for f in rule.output],
                    "benchmark": rule.benchmark is not None, "in_dag": rule.name in in_dag}
        for rule in workflow.rules
    }
print("RULES " + json.dumps(rules))
"""


def rule_name(name: str) -> str:
    """A rule made in a loop by the name of its family: ``train_population__0_1_to_1_4__r0_3`` is
    ``train_population`` (the README's contract names them so)."""
    return name.split("__", 1)[0]


@functools.cache
def workflow_rules(workdir: Path) -> dict[str, dict]:
    """Every rule of the workflow on the demo config: its code inputs (paths from the repository
    root), outputs and whether it has a benchmark; the rules of one family merged."""
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP, str(REPO / "Snakefile"), str(workdir), str(REPO / "config" / "demo.yaml")],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RULES ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    rules: dict[str, dict] = {}
    for name, rule in json.loads(lines[-1].removeprefix("RULES ")).items():
        merged = rules.setdefault(rule_name(name), {"code": set(), "output": [], "benchmark": False, "in_dag": False})
        merged["code"] |= {str((workdir / f).resolve().relative_to(REPO)) for f in rule["code"]}
        merged["output"] += rule["output"]
        merged["benchmark"] |= rule["benchmark"]
        merged["in_dag"] |= rule["in_dag"]
    return rules


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    """The workflow's rules, parsed in an empty working directory (no results of an earlier run)."""
    return workflow_rules(tmp_path_factory.mktemp("parse"))


@pytest.fixture(scope="module")
def module_rules(rules) -> dict[str, list[str]]:
    """For every module of the package, the rules whose code inputs include it."""
    return {module: sorted(name for name, rule in rules.items() if module in rule["code"]) for module in MODULES}


def allowed_for_training(module: str, rule: str) -> bool:
    parts = Path(module).relative_to("src/nnprobe").parts
    if parts[-1] == "__init__.py" or parts[0] in TRAINING_LAYERS:
        return True
    if parts[0] == "studies" and len(parts) == 3:
        return Path(parts[2]).stem in STUDY_TRAINING_MODULES[rule].get(parts[1], set())
    return False


def test_the_rules_are_parsed_with_their_code_inputs(rules):
    assert TRAINING_RULES | INPUT_SPACE_RULES <= set(rules)
    assert "src/nnprobe/engines/training.py" in rules["train_population"]["code"]
    assert "scripts/mislabel/train_population.py" in rules["train_population"]["code"]
    assert len([name for name, rule in rules.items() if rule["code"]]) >= 40


def test_every_rule_that_trains_networks_is_a_training_rule(rules):
    """A new rule that trains networks (it writes weights, or it has a benchmark as the training rules
    do) must be classified here, so that its code inputs are held to the training layers."""
    for name, rule in rules.items():
        if any(output.endswith(".safetensors") for output in rule["output"]):
            assert name in TRAINING_RULES, f"rule {name} writes weights: add it to TRAINING_RULES"
        if rule["benchmark"]:
            assert name in TRAINING_RULES | INPUT_SPACE_RULES, (
                f"rule {name} has a benchmark: add it to TRAINING_RULES (it trains networks) or INPUT_SPACE_RULES")


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.removeprefix("src/nnprobe/"))
def test_no_training_rule_depends_on_a_module_outside_the_training_layers(module, module_rules):
    """Each id is a module of the package; the message lists the rules whose code inputs hold it."""
    wrong = [rule for rule in module_rules[module] if rule in TRAINING_RULES and not allowed_for_training(module, rule)]
    assert not wrong, (
        f"{module} is a code input of the training rule(s) {wrong}: editing it would retrain their networks. "
        f"Move what they use into core, models, engines or the study's training modules, or import it inside "
        f"the job that needs it (rules whose code inputs include it: {module_rules[module]})"
    )


@pytest.mark.parametrize("module", ["src/nnprobe/stats.py", "src/nnprobe/plotting.py"])
def test_statistics_and_figure_modules_are_code_inputs_of_statistics_and_figure_jobs_only(module, module_rules):
    assert module_rules[module], f"no rule runs {module}"
    assert not set(module_rules[module]) & (TRAINING_RULES | INPUT_SPACE_RULES), module_rules[module]


def contract_file_rows() -> list[tuple[str, list[str]]]:
    """The rows of README's rerun contract whose change is an edited file: (path, rules)."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("<!-- rerun-contract -->"):text.index("<!-- /rerun-contract -->")]
    rows = []
    for line in table.splitlines():
        found = re.fullmatch(r"\|\s*`((?:src|scripts)/[^`]+)`\s*\|(.*)\|", line.strip())
        if found:
            rows.append((found.group(1), [r.strip() for r in found.group(2).split(",") if r.strip()]))
    return rows


def test_the_readme_contract_has_rows_for_stats_and_plotting():
    files = {path for path, _ in contract_file_rows()}
    assert {"src/nnprobe/stats.py", "src/nnprobe/plotting.py"} <= files


@pytest.mark.parametrize("path, listed", contract_file_rows(), ids=[p for p, _ in contract_file_rows()])
def test_a_contract_row_for_a_file_names_every_rule_that_runs_it(path, listed, rules):
    """An edit to a file reruns by itself every rule whose code inputs include it: the row names
    each of them (it may name a rule downstream of them too, which reruns with them; the
    finished-demo walk of tests/workflow/test_rerun_contract.py checks the rows by dry runs). Only
    the rules of the demo's DAG count: the contract is walked on the demo, and a rule of another
    setting (the paired design's tables) is not run there."""
    running = {name for name, rule in rules.items() if path in rule["code"] and rule["in_dag"]}
    assert running, f"README's row for {path}: no rule runs it"
    assert running <= set(listed), f"README's row for {path} misses {sorted(running - set(listed))}"
    assert set(listed) <= set(rules), f"README's row for {path} names no rule {sorted(set(listed) - set(rules))}"
