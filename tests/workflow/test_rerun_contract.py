"""What reruns is what changed: the README's contract, walked on a finished demo.

README.md's "What reruns" table names, for each config change or edited module, the jobs that
read it; this test applies each row to the finished demo (the demo runs in a checkout of the
workflow, tests/conftest.py) and checks the dry run: every job it plans for a reason of its own
(params, code inputs, missing outputs) is named by the row, every job the row names is planned,
and every other planned job is downstream of them ("input files updated by another job"). It
also moves and clones the finished demo: a run in another folder plans nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.yaml"
#: Jobs every config change reruns: the copy of the config (and the target rule around it).
CONFIG_COPY = {"effective_config", "all"}

pytestmark = pytest.mark.slow


@dataclass
class Job:
    rule: str
    outputs: list[str]
    wildcards: dict[str, str]
    reasons: list[str] = field(default_factory=list)

    @property
    def by_itself(self) -> bool:
        """Whether the job reruns for a reason of its own, not only because a job before it reruns."""
        return any(not r.startswith("Input files updated by another job") for r in self.reasons)

    def attribute(self, key: str) -> str | None:
        """A wildcard value; for the mislabel training jobs (generated rules, no wildcards) the
        pseudo-wildcards ``pack`` ("none" for the baseline's job) and ``block`` ("r4-7")."""
        if key in self.wildcards:
            return self.wildcards[key]
        if self.rule.startswith("train_population__"):
            if key == "pack":
                return "none" if all("/networks/none/" in f"/{o}" for o in self.outputs) else "pairs"
            if key == "block":
                return self.rule.rsplit("__", 1)[1].replace("_", "-")
        return None


def planned_jobs(output: str) -> list[Job]:
    """Every job of a dry run's listing: its rule, outputs, wildcards and reasons."""
    jobs = []
    for rule, body in re.findall(r"^(?:local)?rule (\S+):\n(.*?)(?=^\[|^Job stats|\Z)", output,
                                 flags=re.MULTILINE | re.DOTALL):
        def field_of(name: str) -> str:
            found = re.search(rf"^\s+{name}: (.*)$", body, flags=re.MULTILINE)
            return found.group(1) if found else ""

        wildcards = dict(item.split("=", 1) for item in field_of("wildcards").split(", ") if "=" in item)
        jobs.append(Job(rule, [o.strip() for o in field_of("output").split(",") if o.strip()], wildcards,
                        [r.strip() for r in field_of("reason").split("; ") if r.strip()]))
    return jobs


@dataclass
class Row:
    change: str
    reruns: list[str]

    @property
    def module(self) -> str | None:
        return self.change if self.change.startswith(("src/", "scripts/")) else None

    def overrides(self) -> dict:
        """The row's config change as a nested mapping (``a.b: v; c: w``)."""
        config: dict = {}
        for item in self.change.split("; "):
            key, value = item.split(": ", 1)
            *parents, leaf = key.split(".")
            target = config
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = yaml.safe_load(value)
        return config


def contract_rows() -> list[Row]:
    text = (REPO / "README.md").read_text()
    table = text[text.index("<!-- rerun-contract -->"):text.index("<!-- /rerun-contract -->")]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        change = re.match(r"`([^`]+)`", cells[0]).group(1)
        reruns = [] if cells[1] == "nothing" else [i.strip() for i in re.split(r",\s*(?![^\[]*\])", cells[1])]
        rows.append(Row(change, reruns))
    return rows


def matches(job: Job, item: str) -> bool:
    rule, _, condition = item.partition("[")
    if not (job.rule == rule or job.rule.startswith(f"{rule}__")):
        return False
    if not condition:
        return True
    key, op, value = re.fullmatch(r"(\w+)(!=|=)([^\]]+)\]", condition).groups()
    return (job.attribute(key) == value) == (op == "=")


@contextlib.contextmanager
def edited(path: Path):
    """``path`` looks just edited inside the block (new content, newer than every output); its
    content and times are restored after. Touching alone is not an edit: Snakemake compares the
    checksum of a small input recorded with the outputs and ignores a newer file with the same content."""
    stat, text = path.stat(), path.read_text()
    path.write_text(text + "\n# edited by tests/workflow/test_rerun_contract.py\n")
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


ROWS = contract_rows()


def test_the_readme_holds_a_contract():
    assert len(ROWS) >= 25
    assert sum(not row.reruns for row in ROWS) >= 10  # the speed and display keys
    assert any(row.module for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.change for row in ROWS])
def test_a_change_reruns_exactly_what_the_readme_says(row, demo_run, run_snakemake, tmp_path):
    configfiles = [DEMO]
    if row.module:
        context = edited(demo_run / row.module)
    else:
        override = tmp_path / "change.yaml"
        override.write_text(yaml.safe_dump(row.overrides()))
        configfiles.append(override)
        context = contextlib.nullcontext()
    with context:
        proc = run_snakemake(["-n"], directory=demo_run, configfiles=configfiles)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = planned_jobs(proc.stdout)
    allowed = set() if row.module else CONFIG_COPY
    # No job reruns for a reason of its own unless the row names it, and every job the row names
    # reruns (by itself, or because a job before it does: Snakemake then gives only that reason).
    roots = {f"{j.rule} {j.wildcards or ''}" for j in jobs if j.by_itself and j.rule not in allowed}
    named = {f"{j.rule} {j.wildcards or ''}" for j in jobs if any(matches(j, item) for item in row.reruns)}
    assert roots <= named, (f"{row.change}: rerun by themselves but not in the README: {sorted(roots - named)}\n"
                            + "\n".join(f"{j.rule}: {j.reasons}" for j in jobs if j.by_itself)[:3000])
    for item in row.reruns:
        assert any(matches(j, item) for j in jobs), f"{row.change}: nothing of {item} is planned"
    if not row.reruns:
        assert {j.rule for j in jobs} <= allowed, [j.rule for j in jobs]


def test_a_finished_run_moved_or_cloned_plans_nothing(demo_run, run_snakemake, tmp_path):
    """The finished demo checkout copied elsewhere (times kept, as cp -a or a move would), then
    with every code file newer than the results (as a fresh clone with the results copied in):
    a dry run plans nothing; an edited script reruns its rule."""
    copy = tmp_path / "moved" / "nnprobe"
    shutil.copytree(demo_run, copy, symlinks=True)
    proc = run_snakemake(["-n"], directory=copy)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-4000:]
    now = time.time() + 60
    for folder in ("src", "scripts", "rules", "config"):
        for path in (copy / folder).rglob("*"):
            if path.is_file():
                os.utime(path, (now, now))
    os.utime(copy / "Snakefile", (now, now))
    proc = run_snakemake(["-n"], directory=copy)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-4000:]
    with edited(copy / "scripts" / "mislabel" / "accuracy_by_pair.py"):
        proc = run_snakemake(["-n"], directory=copy)
    assert [j.rule for j in planned_jobs(proc.stdout) if j.by_itself] == ["accuracy_by_pair"], proc.stdout[-3000:]
