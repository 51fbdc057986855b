"""The plan modules of the noise and visualize studies: what the workflow asks of each study,
torch-free, imported by the rules and by no job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from nnprobe.studies.noise import plan as noise_plan
from nnprobe.studies.visualize import plan as visualize_plan

REPO = Path(__file__).resolve().parents[2]
EXTS = [".parquet", ".csv", ".md"]


def test_noise_targets_follow_the_config():
    noise = {"seeds": 2, "population": True, "probe_sets": ["gaussian", "constant"], "probe_size": 10,
             "lowfreq_cutoff": 0.5}
    targets = noise_plan.targets(noise, "keras_cnn", EXTS)
    assert len(targets) == len(noise_plan.TABLES) * 3 + (2 + 2 + 4) * 2
    assert "results/noise/figures/predicted_classes_keras_cnn.png" in targets
    assert "results/noise/figures/mst_constant.pdf" in targets
    assert noise_plan.probe_folders(noise)[-1] == "results/noise/probes/population"
    alone = noise_plan.targets({**noise, "population": False}, "keras_cnn", EXTS)
    assert not any("keras_cnn" in t for t in alone)
    assert noise_plan.probe_folders({**noise, "population": False}) == [
        "results/noise/probes/multiclass/seed0", "results/noise/probes/multiclass/seed1",
        "results/noise/probes/binary/seed0", "results/noise/probes/binary/seed1"]


def test_visualize_targets_follow_the_config():
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["visualize"]
    targets = visualize_plan.targets(config, EXTS)
    assert len(targets) == 2 * 3 + (3 * len(config["feature_models"]) + 2) * 2
    assert visualize_plan.weights("results/mislabel/networks/none/r000/weights.safetensors")["mislabel"].endswith(
        "none/r000/weights.safetensors")


def test_plan_modules_import_no_torch():
    code = ("import sys; import nnprobe.studies.noise.plan, nnprobe.studies.visualize.plan; "
            "assert 'torch' not in sys.modules, 'a plan module imported torch'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
