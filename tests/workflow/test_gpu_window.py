"""bench/gpu_window.sh, the prepared GPU window: its --dry mode runs every step on the CPU, and
its planning of the mislabel blocks (what is left to train, what fits in the time left).

The dry run is the window of the device with a tiny config (the digits, K = 2 / 4 / 8, two blocks
of one replicate): if any step breaks, the script exits 1 and this test fails with its summary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from nnprobe.studies.mislabel.tables import combine_tables

REPO = Path(__file__).resolve().parents[2]
STEPS = ["prepare", "population_2", "population_4", "population_8", "resnet", "lbfgs", "block_r0-0", "block_r1-1",
         "blocks"]


def window_module():
    spec = importlib.util.spec_from_file_location("gpu_window", REPO / "bench" / "gpu_window.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_dry_window_runs_every_step_and_leaves_evidence_that_combines(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_window.sh"), "--dry", "--out", str(out), "--work",
                           str(tmp_path / "work")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=1200, env={**os.environ, "PYTHON": sys.executable})
    summary_md = (out / "summary.md").read_text() if (out / "summary.md").is_file() else "(no summary.md)"
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{summary_md}"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_window.tar.gz", "summary.json", "summary.md"]
    summary = json.loads((out / "summary.json").read_text())
    steps = {row["step"]: row for row in summary["steps"]}
    assert list(steps) == STEPS and all(row["status"] == "ok" for row in steps.values()), summary_md
    for k in (2, 4, 8):
        assert steps[f"population_{k}"]["result"]["model_images_per_s"] > 0
    assert 0 <= steps["resnet"]["result"]["test_accuracy"] <= 1 and steps["resnet"]["result"]["train_seconds"] > 0
    assert steps["lbfgs"]["result"]["problems_per_s"] > 0 and steps["lbfgs"]["result"]["successes"] == 8
    assert steps["blocks"]["result"] == {"stopped": "every replicate is trained"}
    with tarfile.open(out / "gpu_window.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    folders = sorted((tmp_path / "unpacked" / "evidence").iterdir())
    assert [f.name.rsplit("-", 2)[-2:] for f in folders] == [["r0", "0"], ["r1", "1"]]
    tables = []
    for folder in folders:
        assert "replicate blocks: r" in (folder / "README.md").read_text()
        assert [p.name for p in folder.glob("per_model/*")] == ["networks.parquet"]
        table = pd.read_parquet(folder / "per_model" / "networks.parquet")
        assert table["pair"].nunique() == 46 and table["replicate"].nunique() == 1  # this block's networks alone
        tables.append(table)
    both = combine_tables(tables)  # refuses a network present twice
    assert both.groupby("pair")["replicate"].nunique().eq(2).all() and both["pair"].nunique() == 46
    assert (tmp_path / "unpacked" / "logs" / "resnet.log").is_file()


def test_next_block_skips_replicates_already_trained():
    window = window_module()
    assert window.next_block(set(), 50, 5) == (0, 4)
    assert window.next_block({0, 1, 2}, 50, 5) == (3, 7)
    assert window.next_block({0, 1, 2, 5}, 50, 5) == (3, 4)  # stops before a taken replicate
    assert window.next_block(set(range(48)), 50, 5) == (48, 49)
    assert window.next_block(set(range(50)), 50, 5) is None


def test_a_block_starts_only_when_its_estimate_fits():
    window = window_module()
    estimate = {1: 100.0, 2: 160.0, 3: 220.0}.__getitem__
    assert window.choose_size(230, 3, estimate) == 3
    assert window.choose_size(200, 3, estimate) == 2
    assert window.choose_size(99, 3, estimate) is None
    # a population bound by its per-step cost: 1,563 steps of 2 ms, not 5 x 50,000 images at 800k/s
    small = window.job_seconds(5, 50_000, 1, 32, {230: 800_000.0}, 1.0, 0.002, 0.0, 0.0)
    assert small == pytest.approx(1563 * 0.002)
    big = window.job_seconds(225, 50_000, 10, 32, {230: 800_000.0, 2300: 900_000.0}, 1.0, 0.002, 30.0, 40.0)
    assert big == pytest.approx(225 * 500_000 / 800_000 + 80 + 30)  # the rate of the nearest K


def test_replicates_in_evidence_of_the_same_networks_are_taken(tmp_path):
    window = window_module()
    from nnprobe.evidence import network_config

    config = {"seed": 0, "dataset": {"source": "image_folder", "root": "/a"}, "model": {}, "train": {"epochs": 10},
              "mislabel": {"fraction": 0.5}}
    for name, train, replicates in (("same", {"epochs": 10}, [0, 1]), ("other", {"epochs": 3}, [7])):
        (tmp_path / name / "per_model").mkdir(parents=True)
        (tmp_path / name / "config.yaml").write_text(json.dumps({**config, "train": train}))
        pd.DataFrame({"replicate": replicates}).to_parquet(tmp_path / name / "per_model" / "none__r.parquet")
    found = window.taken_replicates([tmp_path / "same", tmp_path / "other", tmp_path / "missing"],
                                    network_config({**config, "dataset": {"source": "image_folder", "root": "/b"}},
                                                   "mislabel"))
    assert found == {0, 1}  # the other folder trained other networks (3 epochs); the data root does not matter


def test_a_failing_or_overlong_step_is_recorded_with_its_log(tmp_path):
    window = window_module()
    run = window.Window(tmp_path / "out", tmp_path / "work", budget=60, dry=True)
    failed = run.run("broken", [sys.executable, "-c", "print('about to fail'); raise SystemExit(3)"], 30)
    assert failed["status"] == "failed: exit 3" and "about to fail" in failed["tail"]
    slow = run.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"], 6)
    assert slow["status"] == "failed: over its 6 s"
    assert run.run("late", [sys.executable, "-c", "pass"], 2)["status"] == "skipped: no time left"
    assert [row["step"] for row in run.steps] == ["broken", "slow", "late"]
