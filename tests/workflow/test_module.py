"""The workflow used from another Snakefile as a Snakemake module, as the Snakemake workflow catalog
and snakedeploy set it up (config/README.md): the host's ``workflow/Snakefile`` names this
workflow's Snakefile in a ``module`` and uses all of its rules, its ``config/config.yaml`` is the
config. The workflow must find its own files (schema, scripts, package) from its own folder, not
from the host's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.yaml"

#: What ``snakedeploy deploy-workflow`` writes as the host's workflow/Snakefile, with a local path.
HOST_SNAKEFILE = """\
configfile: "config/config.yaml"


module nnprobe:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from nnprobe
"""


def planned(output: str) -> set[tuple[str, str]]:
    """Every job of a dry run as (rule, its outputs)."""
    jobs = set()
    for rule, body in re.findall(r"^(?:local)?rule (\S+):\n((?:[ \t]+\S.*\n)*)", output, flags=re.MULTILINE):
        found = re.search(r"^\s+output: (.*)$", body, flags=re.MULTILINE)
        jobs.add((rule, found.group(1) if found else ""))
    return jobs


def test_the_workflow_used_as_a_module_plans_the_demo_s_jobs(snakemake_exe, run_snakemake, tmp_path):
    host = tmp_path / "host"
    (host / "workflow").mkdir(parents=True)
    (host / "config").mkdir()
    shutil.copy(DEMO, host / "config" / "config.yaml")
    (host / "workflow" / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    proc = subprocess.run([str(snakemake_exe), "-n", "--cores", "1"], cwd=host, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]

    (tmp_path / "direct").mkdir()
    direct = run_snakemake(["-n", "--cores", "1"], directory=tmp_path / "direct")
    assert direct.returncode == 0, direct.stdout[-4000:]
    jobs, expected = planned(proc.stdout), planned(direct.stdout)
    rules = {rule.split("__")[0] for rule, _ in jobs}
    assert {"train_population", "noise_train", "train_zoo_model", "adversarial_training", "visualize_train",
            "welch_table", "all"} <= rules
    assert len(expected) > 90 and jobs == expected
    # The code inputs are the module's own files (README, "What reruns"), named from the host's folder.
    code = {p for line in re.findall(r"^\s+input: (.*)$", proc.stdout, flags=re.MULTILINE)
            for p in map(str.strip, line.split(",")) if p.endswith(".py")}
    assert code and all((host / p).resolve().is_relative_to(REPO) and (host / p).is_file() for p in code), sorted(code)[:5]
    assert (REPO / "src" / "nnprobe" / "engines" / "training.py") in {(host / p).resolve() for p in code}
