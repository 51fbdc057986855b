"""A training job killed by a signal and run again resumes from its last epoch checkpoint and
ends with exactly the weights of an uninterrupted run (bitwise, on the CPU), for every family of
network the studies train. Each job is a process of its own (resume_job.py) that is really
killed (SIGKILL; SIGTERM as from a SLURM time limit; SIGINT as from Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

#: Minutes in all (a real process per job, killed and run again): ``make test`` runs them, not ``make test-fast``.
pytestmark = pytest.mark.slow

JOB = Path(__file__).with_name("resume_job.py")
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}

# (family, signal, stage whose epoch-2 checkpoint triggers the kill): every family once with
# SIGKILL; the two other signals on the population; the autoencoder in its second stage.
CASES = [
    ("population", "KILL", "-"),
    ("population", "TERM", "-"),
    ("population", "INT", "-"),
    ("zoo", "KILL", "-"),
    ("autoencoder", "KILL", "classifier"),
    ("pool", "KILL", "-"),
    ("resnet", "KILL", "-"),
    ("visualize", "KILL", "-"),
]


def interactive_signals() -> None:
    """SIGINT as in an interactive shell: a suite started in the background (``pytest &``) hands
    its children SIGINT ignored, and a process that ignores SIGINT cannot be Ctrl-C'd."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_job(family: str, out: Path, checkpoints: Path, *kill: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(JOB), family, str(out), str(checkpoints), *kill], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
                          preexec_fn=interactive_signals)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    """Each family trained once without interruption (4 epochs)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    states = {}
    for family in sorted({case[0] for case in CASES}):
        proc = run_job(family, folder / f"{family}.pt", folder / f"{family}-checkpoints")
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "resuming" not in proc.stdout
        states[family] = torch.load(folder / f"{family}.pt", weights_only=True)
    return states


@pytest.mark.parametrize(("family", "signame", "stage"), CASES)
def test_a_killed_job_resumes_to_the_same_weights(family, signame, stage, tmp_path, uninterrupted):
    out, checkpoints = tmp_path / "state.pt", tmp_path / "checkpoints"
    killed = run_job(family, out, checkpoints, signame, stage, "2")
    assert killed.returncode != 0, f"the job was not killed:\n{killed.stdout[-2000:]}"
    # the status of the signal, not of a crash: a Ctrl-C'd Python job ends by SIGINT too
    assert killed.returncode == -getattr(signal, f"SIG{signame}"), killed.stdout[-2000:]
    assert not out.exists()
    where = checkpoints if stage == "-" else checkpoints / stage
    assert torch.load(where / "last.ckpt", weights_only=True)["epoch"] == 2

    resumed = run_job(family, out, checkpoints)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "after epoch 2 of 4" in resumed.stdout, resumed.stdout[-3000:]
    if stage != "-":  # the finished first stage is restored from its last checkpoint, not trained again
        assert "nothing left to train" in resumed.stdout
    state = torch.load(out, weights_only=True)
    expected = uninterrupted[family]
    assert state.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), f"{family}: {name} differs from the uninterrupted run"
