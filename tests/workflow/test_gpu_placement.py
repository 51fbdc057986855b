"""GPUs placed right: on SLURM every GPU job goes to the GPU partition with a GPU request; on one
machine as many GPU jobs run at once as it has GPUs, each on a GPU of its own.

No GPU is needed: the SLURM routing is read from a dry run through profiles/slurm, and the
local placement fakes the GPU count (CUDA_VISIBLE_DEVICES) for the workflow profile and the
devices' identities for nnprobe.core.devices.claim_gpu.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def jobs_of(dry_run: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's listing."""
    jobs = []
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", dry_run, flags=re.MULTILINE | re.DOTALL):
        found = re.search(r"^\s+resources: (.*)$", body, flags=re.MULTILINE)
        pairs = [item.split("=", 1) for item in found.group(1).split(", ")] if found else []
        jobs.append((rule, {k: v for k, v in pairs}))
    return jobs


def slurm_dry_run(folder: Path, run_snakemake, *configfiles: Path, model: str = "") -> str:
    """The paper config through profiles/slurm (conda off: none here), with a CPU and a GPU partition."""
    (folder / "noconda").mkdir(exist_ok=True)
    (folder / "noconda" / "config.yaml").write_text("use-conda: false\n")
    proc = run_snakemake(["-n", "--profile", REPO / "profiles" / "slurm", "--profile", folder / "noconda"],
                         directory=folder, configfiles=(REPO / "config" / "config.yaml", *configfiles),
                         env={"NNPROBE_SLURM_PARTITION": "cpu", "NNPROBE_SLURM_GPU_PARTITION": "gpu",
                              "NNPROBE_SLURM_GPU_MODEL": model})
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def test_slurm_routes_every_gpu_job_to_the_gpu_partition(tmp_path, run_snakemake):
    jobs = jobs_of(slurm_dry_run(tmp_path, run_snakemake, model="h100"))
    assert len(jobs) > 100
    gpu_jobs = [(rule, res) for rule, res in jobs if int(res.get("gpu", 0)) > 0]
    assert len(gpu_jobs) >= 100  # the paper config's training, attack and probe jobs
    misrouted = Counter(rule for rule, res in gpu_jobs if res.get("slurm_partition") != "gpu" or res.get("gpu_model") != "h100")
    assert not misrouted, f"GPU jobs outside the GPU partition or without the GPU model: {dict(misrouted)}"
    cpu_elsewhere = Counter(rule for rule, res in jobs if int(res.get("gpu", 0)) == 0
                            and (res.get("slurm_partition") != "cpu" or "gpu_model" in res))
    assert not cpu_elsewhere, f"CPU jobs outside the CPU partition or with a GPU model: {dict(cpu_elsewhere)}"
    studies = {"train_zoo_model", "noise_train", "visualize_train"}
    assert studies <= {rule for rule, _ in gpu_jobs}
    assert any(rule.startswith("train_population__") for rule, _ in gpu_jobs)


def test_without_gpus_no_job_goes_to_the_gpu_partition(tmp_path, run_snakemake):
    """resources.train_gpu 0 with the GPU partition and model set: the routing follows what each job
    asks for (nothing), not a list of rule names."""
    cpu_only = tmp_path / "cpu.yaml"
    cpu_only.write_text("resources:\n  train_gpu: 0\n")
    jobs = jobs_of(slurm_dry_run(tmp_path, run_snakemake, cpu_only, model="h100"))
    assert len(jobs) > 100
    assert all(int(res.get("gpu", 0)) == 0 for _, res in jobs)
    elsewhere = Counter(rule for rule, res in jobs if res.get("slurm_partition") != "cpu" or "gpu_model" in res)
    assert not elsewhere, f"jobs in the GPU partition or with a GPU model although none asks for a GPU: {dict(elsewhere)}"


SPELLINGS = {  # command lines that all run on a cluster, however the executor is named
    "profile": ["--profile", "profiles/slurm"],
    "profile=": ["--profile=profiles/slurm"],
    "-e": ["-e", "slurm", "-j", "4"],
    "--executor=": ["--executor=slurm"],
}


@pytest.mark.parametrize("argv", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_the_workflow_profile_caps_gpu_jobs_on_one_machine_only(argv, monkeypatch):
    """profiles/default caps GPU jobs at this machine's GPUs, and not when the run goes to a
    cluster, whichever way the command line (or SNAKEMAKE_PROFILE) names the executor."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    for local in (["-n"], ["--profile", "profiles/local", "-n"]):
        monkeypatch.setattr(sys, "argv", ["snakemake", *local])
        _, args = parse_args(local)
        assert args.resources.get("gpu") is not None and args.resources["gpu"].value == 3, args.resources
    monkeypatch.setattr(sys, "argv", ["snakemake", *argv])
    _, args = parse_args(argv)
    assert args.executor == "slurm" and "gpu" not in args.resources, args.resources
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "profiles/slurm")
    monkeypatch.setattr(sys, "argv", ["snakemake", "-n"])
    _, args = parse_args(["-n"])
    assert args.executor == "slurm" and "gpu" not in args.resources, args.resources


JOB = textwrap.dedent("""
    import json, sys, time
    from nnprobe.core.devices import claim_gpu
    index = claim_gpu([f"fake-gpu-{i}" for i in range(4)], sys.argv[1])
    start = time.time()
    time.sleep(2)
    print(json.dumps({"gpu": index, "start": start, "end": time.time()}))
""")


def test_n_gpus_run_n_gpu_jobs_at_once_each_on_its_own(tmp_path, snakemake_exe):
    """Eight jobs that each reserve a GPU, on a machine faked to have 4 (CUDA_VISIBLE_DEVICES):
    the workflow profile lets 4 run at once, and each of those holds a different GPU."""
    work = tmp_path / "work"
    (work / "profiles").mkdir(parents=True)
    os.symlink(REPO / "profiles" / "default", work / "profiles" / "default")
    (work / "job.py").write_text(JOB)
    (work / "Snakefile").write_text(textwrap.dedent(f"""
        rule all:
            input: expand("out/{{i}}.json", i=range(8))

        rule gpu_job:
            output: "out/{{i}}.json"
            resources: gpu=1
            shell: "{sys.executable} job.py {tmp_path / 'locks'} > {{output}}"
    """))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    proc = subprocess.run([str(snakemake_exe), "--cores", "8"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'gpu=Resource("gpu", 4)' in proc.stdout + proc.stderr
    runs = [json.loads((work / "out" / f"{i}.json").read_text()) for i in range(8)]
    most = max(sum(r["start"] < t["end"] and t["start"] < r["end"] for r in runs) for t in runs)
    assert most == 4, f"{most} GPU jobs overlapped on 4 GPUs"
    for run in runs:  # jobs running at the same time hold different GPUs
        overlapping = [r["gpu"] for r in runs if r["start"] < run["end"] and run["start"] < r["end"]]
        assert len(overlapping) == len(set(overlapping)), runs


def test_without_a_gpu_the_profile_still_runs_one_gpu_job(tmp_path, snakemake_exe):
    """No GPU here: one GPU job at a time, which then fails itself with a clear message (or falls back)."""
    work = tmp_path / "work"
    (work / "profiles").mkdir(parents=True)
    os.symlink(REPO / "profiles" / "default", work / "profiles" / "default")
    (work / "Snakefile").write_text('rule a:\n    output: "a"\n    resources: gpu=1\n    shell: "touch {output}"\n')
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: it may have a GPU")
    proc = subprocess.run([str(snakemake_exe), "--cores", "2"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'gpu=Resource("gpu", 1)' in proc.stdout + proc.stderr

