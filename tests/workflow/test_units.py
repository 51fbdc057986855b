"""Long runs in units (nnprobe.units): a unit of the demo run lands as evidence, a fresh checkout
restores it so that Snakemake counts it done, and restore refuses what this checkout would not
compute the same way (other code, other params).

One unit of config/units/demo.yaml (a binary ResNet of the noise study on the digits, seconds)
is run once in a checkout; each test restores it into a fresh checkout of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnprobe.units import load_run, record_path

REPO = Path(__file__).resolve().parents[2]

UNIT = "binary-seed0"
LANDED = "results/noise/models/binary/seed0/weights.safetensors"
NOT_LANDED = "results/noise/models/binary/seed1/weights.safetensors"


def units(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m nnprobe.units ARGS`` in ``checkout``, running the checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "nnprobe.units", *args], cwd=checkout, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(checkout / "src")}, timeout=600,
    )


def planned(checkout: Path, snakemake_exe: Path, *targets: str, config: str | None = None) -> list[str]:
    """The jobs a dry run of the demo in ``checkout`` plans, as ``rule[wildcards]``."""
    cmd = [str(snakemake_exe), *targets, "-n", "--configfile", "config/demo.yaml", "--replace-workflow-config"]
    cmd += ["--config", config] if config else []
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(checkout / "src")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs, rule = [], None
    for line in done.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = m.group(1)
            jobs.append(rule)
        elif rule and line.strip().startswith("wildcards:"):
            jobs[-1] = f"{rule}[{line.split(':', 1)[1].strip()}]"
    return sorted(jobs)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory, new_checkout) -> Path:
    """The evidence folder of unit binary-seed0 of the demo run, run in a checkout of its own."""
    checkout = new_checkout(tmp_path_factory.mktemp("unit_run"))
    done = units(checkout, "run", "demo", UNIT, "--date", "2026-01-01")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"unit demo/{UNIT} done in" in done.stdout
    return checkout / "docs" / "runs" / "2026-01-01-demo" / UNIT


@pytest.fixture
def fresh_checkout(tmp_path: Path, landed: Path, new_checkout) -> Path:
    """A checkout of the workflow with nothing run, holding the landed unit's evidence."""
    checkout = new_checkout(tmp_path / "clone")
    shutil.copytree(landed, checkout / "docs" / "runs" / landed.parent.name / landed.name)
    return checkout


def test_a_landed_unit_holds_its_evidence(landed: Path):
    record = json.loads((landed / "unit.json").read_text())
    assert record["run"] == "demo" and record["unit"] == UNIT and record["targets"] == [LANDED]
    assert "snakemake" in record["command"] and "config/demo.yaml" in record["command"]
    assert record["wall_seconds"] > 0 and record["cpu_seconds"] > 0 and record["machine"]
    # the prepared data is not kept but its checksums are, to be checked on restore
    assert set(record["prepared"]) == {"results/data/train.npz", "results/data/test.npz", "results/data/manifest.json"}
    assert not (landed / "results" / "data").exists()
    for name in (LANDED, "results/noise/models/binary/seed0/metrics.json",
                 "results/logs/noise/noise_train/binary/seed0.log",
                 "results/benchmarks/noise/noise_train/binary/seed0.tsv"):
        assert (landed / name).is_file(), name
        assert name in record["files"]
    assert {job["output"] for job in record["jobs"]} == {
        LANDED, "results/noise/models/binary/seed0/metrics.json", "results/noise/models/binary/seed0/history.csv"}
    assert all(job["record"]["rule"] == "noise_train" for job in record["jobs"])
    assert (landed / "config.yaml").read_text() == (REPO / "config" / "demo.yaml").read_text()
    assert str(landed.parents[3]) not in record["command"]  # paths in the checkout are relative


def test_the_run_readme_tells_each_unit_and_what_remains(landed: Path):
    checkout = landed.parents[3]
    done = units(checkout, "readme", "demo")
    assert done.returncode == 0, done.stderr
    readme = (landed.parent / "README.md").read_text()
    record = json.loads((landed / "unit.json").read_text())
    assert re.search(rf"\| {UNIT} \| `{LANDED}` \| {record['started']} \| {record['wall_seconds']:.0f} \|", readme)
    assert "Not landed yet: `binary-seed1`, `noise`, `adversarial-networks`." in readme


def test_restore_plans_only_the_units_not_run(fresh_checkout: Path, snakemake_exe: Path):
    checkout = fresh_checkout
    assert planned(checkout, snakemake_exe, LANDED, NOT_LANDED) == [
        "check_dataset", "noise_train[task=binary, seed=0]", "noise_train[task=binary, seed=1]", "prepare_dataset"]
    # a job of the landed output killed here before: Snakemake marked it incomplete
    marker = record_path(LANDED, checkout / ".snakemake" / "incomplete")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}")
    done = units(checkout, "restore", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 outputs restored from 1 landed units" in done.stdout
    assert not marker.exists()
    assert planned(checkout, snakemake_exe, LANDED, NOT_LANDED) == ["noise_train[task=binary, seed=1]"]
    # a param changed after the restore: Snakemake plans the landed job again (its record came back)
    assert planned(checkout, snakemake_exe, LANDED, config='noise={"train": {"epochs": 5}}') == [
        "noise_train[task=binary, seed=0]"]
    status = units(checkout, "status", "demo")
    assert re.search(rf"{UNIT}\s+docs/runs/2026-01-01-demo/{UNIT}", status.stdout)
    assert re.search(r"binary-seed1\s+not landed", status.stdout)


def test_restore_refuses_other_code(fresh_checkout: Path, landed: Path, snakemake_exe: Path):
    checkout = fresh_checkout
    record = json.loads((landed / "unit.json").read_text())
    module = next(p for p in record["jobs"][0]["record"]["input"] if p.startswith("src/nnprobe/studies/noise/"))
    with open(checkout / module, "a") as f:
        f.write("\n# an edit after the unit ran\n")
    done = units(checkout, "restore", "demo")
    assert done.returncode == 1
    assert f"{LANDED}: {module} differs from the code the unit ran" in done.stderr
    assert not (checkout / LANDED).exists() and not record_path(LANDED, checkout / ".snakemake/metadata").exists()
    assert "noise_train[task=binary, seed=0]" in planned(checkout, snakemake_exe, LANDED)


def test_restore_refuses_other_params(fresh_checkout: Path):
    checkout = fresh_checkout
    config = checkout / "config" / "demo.yaml"
    config.write_text(config.read_text().replace("    epochs: 12\n", "    epochs: 11\n", 1))
    done = units(checkout, "restore", "demo")
    assert done.returncode == 1
    assert f"{LANDED}: Snakemake: params changed" in done.stderr
    assert not (checkout / LANDED).exists()


def test_unknown_runs_and_units_are_named(tmp_path: Path, new_checkout):
    with pytest.raises(SystemExit, match="no run 'nope'.*runs: .*cifar-cpu.*demo"):
        load_run("nope", REPO)
    done = units(new_checkout(tmp_path / "c"), "run", "demo", "nope")
    assert done.returncode != 0 and "run 'demo' has no unit 'nope'; its units: binary-seed0" in done.stderr


def test_every_run_names_existing_configs():
    for spec in (REPO / "config" / "units").glob("*.yaml"):
        run = load_run(spec.stem, REPO)
        assert all((REPO / c).is_file() for c in run.config), spec


def test_the_adversarial_study_rebuilds_from_a_landed_unit_without_training_or_attacking(
        demo_run: Path, tmp_path: Path, new_checkout, snakemake_exe: Path):
    """Issue 26: every table and figure of the adversarial study from committed evidence. The
    finished demo's networks and examples are kept as one unit (adversarial_networks); a fresh
    checkout restores it, and the study's dry run then plans tables and figures only."""
    finished = tmp_path / "finished"
    shutil.copytree(demo_run, finished, symlinks=True)
    done = units(finished, "run", "demo", "adversarial-networks", "--date", "2026-01-02", "--since", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    landed = finished / "docs" / "runs" / "2026-01-02-demo" / "adversarial-networks"
    record = json.loads((landed / "unit.json").read_text())
    assert {job["record"]["rule"] for job in record["jobs"]} == {"train_zoo_model", "attack_zoo_model",
                                                                  "adversarial_training"}
    checkout = new_checkout(tmp_path / "clone")
    shutil.copytree(landed, checkout / "docs" / "runs" / landed.parent.name / landed.name)
    done = units(checkout, "restore", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    rules = {job.split("[")[0] for job in planned(checkout, snakemake_exe, "adversarial")}
    assert rules and not rules & {"train_zoo_model", "attack_zoo_model", "adversarial_training",
                                  "prepare_adversarial_dataset"}, rules
    assert {"zoo_table", "cross_model_table", "adversarial_training_table"} <= rules
