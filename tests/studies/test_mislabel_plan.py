"""The mislabel study's name lists (nnprobe.studies.mislabel.plan) are written once: the rules,
the statistics, the jobs and the evidence rebuild read them from there, and no other file of the
workflow spells one of them out again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnprobe.studies.mislabel import plan

REPO = Path(__file__).resolve().parents[2]
LISTS = {"COMPARISONS": plan.COMPARISONS, "INFORMATION_VALUES": plan.INFORMATION_VALUES,
         "RESULT_KEYS": plan.RESULT_KEYS}


def workflow_files() -> list[Path]:
    return sorted([REPO / "Snakefile", *(REPO / "rules").glob("*.smk"), *(REPO / "src").rglob("*.py"),
                   *(REPO / "scripts").rglob("*.py")])


@pytest.mark.parametrize("name", LISTS)
def test_a_name_list_is_spelled_out_in_the_plan_alone(name):
    items = LISTS[name]
    # the items one after another, as a Python or YAML list or tuple spells them
    spelled = re.compile(r"""["']\s*,\s*["']""".join(re.escape(item) for item in items))
    found = [str(path.relative_to(REPO)) for path in workflow_files() if spelled.search(path.read_text())]
    others = [f for f in found if f != "src/nnprobe/studies/mislabel/plan.py"]
    assert not others, f"{name} {items} is spelled out again in {others}: import it from nnprobe.studies.mislabel.plan"


def test_the_statistics_and_the_rules_use_the_plan():
    from nnprobe.studies.mislabel import statistics

    assert statistics.COMPARISONS is plan.COMPARISONS
    common = (REPO / "rules" / "common.smk").read_text()
    assert "from nnprobe.studies.mislabel.plan import COMPARISONS, INFORMATION_VALUES, RESULT_KEYS" in common
