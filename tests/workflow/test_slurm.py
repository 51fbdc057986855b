"""The SLURM profile, for real: a one-node SLURM cluster on this machine runs the demo.

The test installs Debian's slurmctld, slurmd and munge when they are missing (root and
apt-get needed, else it skips), starts munged, slurmctld and slurmd on a configuration of
its own in a temporary folder (no accounting database; a node with two GPUs as a GRES on two
stand-in device files, which needs no real GPU, and a CPU and a GPU partition), runs the first
replicate of every network of config/demo.yaml's mislabel study (their files as targets, in jobs
of one replicate: ``mislabel.replicates_per_job: 1`` is a speed key) and a training job of every
other study through ``--profile profiles/slurm`` with ``resources.train_gpu: 1`` (and
``allow_cpu``: the GPUs are not real), and then checks

* from SLURM's own records (``squeue --states=all``, ``scontrol show job`` and the
  slurmctld log) that every job Snakemake did not run locally went through sbatch, one
  SLURM job per Snakemake job, with the rule's memory and time limit, every GPU rule's job
  in the GPU partition with a GPU request and every other job in the CPU partition;
* that the networks equal those of the local demo run (the ``demo_run`` fixture) exactly:
  the same seeds give bit-identical weights and per-class metrics, though the local run trained
  them in jobs of four replicates, because a network's arithmetic on the CPU is its own
  whatever its job (tests/studies/test_mislabel_jobs.py) and both executors run each job with
  the rule's thread count (Snakemake sets OMP_NUM_THREADS etc. to it: 1 here).

Every daemon it started is stopped in the fixture's teardown, pass or fail. Because it installs
system packages and starts daemons as root, it runs only when asked: NNPROBE_SLURM_TEST=1
(.ci/run sets it); without it the test skips, naming the variable. Set NNPROBE_REQUIRE_SLURM=1
(which also asks for the test) to turn the skips (not root, no apt-get, install failed) into
failures, e.g. in CI where the test must run.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import APT_GET, apt_lock
from nnprobe.core.naming import population_pairs

#: The test runs only when one of these is 1: it installs packages and starts daemons as root.
OPT_IN = ("NNPROBE_SLURM_TEST", "NNPROBE_REQUIRE_SLURM")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(
        not any(os.environ.get(name) == "1" for name in OPT_IN),
        reason="the SLURM test installs Debian's slurm and munge packages (apt-get, as root) and starts "
               "their daemons: set NNPROBE_SLURM_TEST=1 to run it (.ci/run does)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "config" / "demo.yaml"
#: The executor plugin, pinned to the version this test was written against.
PLUGIN_REQUIREMENT = "snakemake-executor-plugin-slurm==2.8.0"
DEBIAN_PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
SLURM_TOOLS = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munged"]
#: Where SLURM commands look for their configuration when SLURM_CONF is unset. The
#: plugin's job step runs `srun` with every SLURM_* variable removed from its environment,
#: so the test links its configuration here for the duration of the run.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
#: Part of the temporary folder's name: a link at SYSTEM_CONF into such a folder is ours.
MARKER = "nnprobe-slurm"
PARTITION = "debug"
GPU_PARTITION = "gpu"
#: A training job of every study besides the mislabel study (which runs whole).
OTHER_STUDIES = [
    "results/adversarial/models/full/fc10_1.json",
    "results/noise/models/multiclass/seed0/metrics.json",
    "results/visualize/models/natural/metrics.parquet",
]
#: What the run asks of SLURM besides the demo: a GPU for every network job; jobs of one replicate.
GPU_CONFIG = {"resources": {"train_gpu": 1, "allow_cpu": True}, "mislabel": {"replicates_per_job": 1}}
#: The first replicate of every network of the demo's mislabel study (10 digits: 45 pairs and the baseline).
FIRST_REPLICATE = [f"results/mislabel/networks/{pair}/r000/{name}" for pair in population_pairs(10)
                   for name in ("weights.safetensors", "metrics.parquet")]
RUN_TIMEOUT = 20 * 60
#: Overrides of profiles/slurm for this one-node cluster (the test's second --profile).
OVERRIDES = {
    "use-conda": False,  # no conda channel is reachable here; the venv has every package
    "slurm-status-command": "squeue",  # no accounting database, so no sacct
    "slurm-init-seconds-before-status-checks": 2,  # jobs take seconds here: poll soon
    "slurm-keep-successful-logs": True,  # keep each job's SLURM log for the checks below
}


def _skip(reason: str) -> None:
    if os.environ.get("NNPROBE_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason} (and NNPROBE_REQUIRE_SLURM=1 forbids skipping)")
    pytest.skip(reason)


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _read_tail(path: Path, lines: int = 40) -> str:
    return f"--- {path} ---\n" + (_tail(path.read_text(errors="replace"), lines) if path.exists() else "(missing)")


def ensure_slurm_installed() -> None:
    """Install Debian's SLURM and munge packages unless their programs are all there."""
    missing = [tool for tool in SLURM_TOOLS if _which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        _skip(f"SLURM is not installed ({', '.join(missing)} missing) and installing it needs root")
    apt = _which("apt-get")
    if apt is None:
        _skip(f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*APT_GET, "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES]
    with apt_lock():
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run([*APT_GET, "update", "-q"], env=env, capture_output=True, text=True, timeout=900)
            proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    missing = [tool for tool in SLURM_TOOLS if _which(tool) is None]
    if proc.returncode != 0 or missing:
        _skip(f"`apt-get install {' '.join(DEBIAN_PACKAGES)}` failed (exit {proc.returncode}, "
              f"missing {missing}):\n{_tail(proc.stdout + proc.stderr, 15)}")


def ensure_plugin_installed() -> None:
    """pip-install snakemake-executor-plugin-slurm into this venv unless it is there."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None:
        return
    proc = subprocess.run([sys.executable, "-m", "pip", "install", PLUGIN_REQUIREMENT],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        _skip(f"`pip install {PLUGIN_REQUIREMENT}` failed:\n{_tail(proc.stdout + proc.stderr, 15)}")
    importlib.invalidate_caches()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_memory_mb() -> int:
    """Memory SLURM may hand out: MemTotal less a margin for the system and the daemons."""
    kib = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1))
    total = kib // 1024
    return total - max(1024, total // 10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def _stop(pid: int, name: str) -> None:
    """SIGTERM the process `pid` if it is still `name`, then SIGKILL it after 15 s."""
    try:
        if name not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return  # gone, and the pid reused by something else
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        return
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Cluster:
    root: Path
    conf: Path
    host: str
    env: dict[str, str]
    munge_dir: Path

    @property
    def ctld_log(self) -> Path:
        return self.root / "slurmctld.log"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(_read_tail(self.root / name) for name in ("slurmctld.log", "slurmd.log", "munged.log"))

    def job_records(self, name: str) -> list[dict[str, str]]:
        """`scontrol show job` of every job named `name` (the plugin names jobs by run ID)."""
        proc = self.run("squeue", "--states=all", "--noheader", f"--name={name}", "--format=%i")
        assert proc.returncode == 0, proc.stderr
        records = []
        for job_id in proc.stdout.split():
            show = self.run("scontrol", "show", "job", "--oneliner", job_id)
            assert show.returncode == 0, show.stderr
            records.append(dict(re.findall(r"(\w+)=(\S*)", show.stdout)))
        return records


def _slurm_conf(root: Path, munge_socket: Path, host: str, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
# A one-node SLURM cluster for tests/workflow/test_slurm.py: no accounting, no cgroups; two
# GPUs as a GRES on stand-in device files (gres.conf), so that GPU requests are scheduled
# without a real GPU.
ClusterName=nnprobetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour: the plugin reads their final
# state with squeue, and the test reads every job's record after the run.
MinJobAge=3600
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))} RealMemory={_real_memory_mb()} Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName={GPU_PARTITION} Nodes={host} MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running one-node SLURM cluster (munged, slurmctld, slurmd); stopped afterwards."""
    if not sys.platform.startswith("linux"):
        _skip("the SLURM test needs Linux")
    ensure_slurm_installed()
    ensure_plugin_installed()
    if os.geteuid() != 0:
        _skip("the one-node SLURM cluster runs its daemons as root")
    if _real_memory_mb() < 9000:
        _skip(f"the demo asks SLURM for up to 8000 MB per job; this machine offers {_real_memory_mb()} MB")
    ours = SYSTEM_CONF.is_symlink() and MARKER in os.readlink(SYSTEM_CONF)
    if (SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink()) and not ours:
        _skip(f"{SYSTEM_CONF} exists: this machine has a SLURM configuration of its own, which the "
              "test will not replace")

    root = tmp_path_factory.mktemp(MARKER)
    # munged wants every folder above its socket searchable by all, unlike pytest's tmp.
    munge_dir = Path(tempfile.mkdtemp(prefix=f"{MARKER}-munge-", dir="/tmp"))
    munge_dir.chmod(0o755)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = Cluster(root, conf, host, env, munge_dir)
    daemons = [("munged", root / "munged.pid"), ("slurmctld", root / "slurmctld.pid"), ("slurmd", root / "slurmd.pid")]
    try:
        (root / "state").mkdir()
        (root / "spool").mkdir()
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        conf.write_text(_slurm_conf(root, munge_dir / "munge.socket", host, _free_port(), _free_port()))
        # slurmd drops a GPU GRES without device files and refuses files that are not devices:
        # two character devices with /dev/null's numbers stand in for the GPUs.
        for index in range(2):
            os.mknod(root / f"gpu{index}", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File={root}/gpu[0-1]\n")
        if ours:
            SYSTEM_CONF.unlink()
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(conf)

        starts = {
            "munged": [_which("munged"), f"--key-file={key}", f"--socket={munge_dir}/munge.socket",
                       f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
                       f"--seed-file={root}/munged.seed"],
            "slurmctld": [_which("slurmctld"), "-f", str(conf)],
            "slurmd": [_which("slurmd"), "-f", str(conf), "-N", host],
        }
        for name, pid_file in daemons:  # each daemonizes once it is up
            proc = subprocess.run(starts[name], env=env, capture_output=True, text=True, timeout=60)
            deadline = time.monotonic() + 30
            while not pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if proc.returncode != 0 or not pid_file.exists():
                pytest.fail(f"{name} did not start (exit {proc.returncode}): {proc.stdout}{proc.stderr}\n{cluster.logs()}")

        deadline = time.monotonic() + 90
        state = ""
        while time.monotonic() < deadline:
            # one line per partition the node is in
            state = cluster.run("sinfo", "--noheader", "--Node", "--format=%T").stdout.strip()
            if set(state.split()) == {"idle"}:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the SLURM node never became idle (sinfo: {state!r})\n{cluster.logs()}")
        yield cluster
    finally:
        _teardown(cluster, daemons)


def _teardown(cluster: Cluster, daemons: list[tuple[str, Path]]) -> None:
    """Cancel every job, stop the daemons by their pid files, remove the config link.

    Every step runs even when an earlier one fails; the first error is raised at the end.
    """
    errors: list[BaseException] = []

    def step(action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001 - finish the teardown, report afterwards
            errors.append(e)

    def cancel_jobs() -> None:
        ctld_pid = cluster.root / "slurmctld.pid"
        if not (ctld_pid.exists() and _alive(int(ctld_pid.read_text().split()[0]))):
            return
        cluster.run("scancel", f"--user={os.getuid()}", timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            active = cluster.run("squeue", "--noheader", "--states=PD,R,CG", "--format=%i", timeout=30)
            if active.returncode != 0 or not active.stdout.strip():
                return
            time.sleep(1)

    def stop_job_steps() -> None:
        """slurmstepd processes left by a cancelled run, of this cluster only."""
        marker = f"SLURM_CONF={cluster.conf}".encode()
        for proc_dir in Path("/proc").glob("[0-9]*"):
            try:
                if (proc_dir / "comm").read_text().strip() == "slurmstepd" and marker in (proc_dir / "environ").read_bytes():
                    _stop(int(proc_dir.name), "slurmstepd")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue

    def remove_links() -> None:
        if SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF) == str(cluster.conf):
            SYSTEM_CONF.unlink()
        shutil.rmtree(cluster.munge_dir, ignore_errors=True)

    step(cancel_jobs)
    for name, pid_file in reversed(daemons):
        if pid_file.exists():
            step(lambda: _stop(int(pid_file.read_text().split()[0]), name))
    step(stop_job_steps)
    step(remove_links)
    if errors:
        raise errors[0]


def test_demo_runs_through_slurm_and_matches_the_local_run(demo_run: Path, slurm_cluster: Cluster, run_snakemake, tmp_path: Path):
    override = tmp_path / "override"
    override.mkdir()
    (override / "config.yaml").write_text(yaml.safe_dump(OVERRIDES))
    workdir = tmp_path / "run"
    workdir.mkdir()
    gpu_config = tmp_path / "gpu.yaml"
    gpu_config.write_text(yaml.safe_dump(GPU_CONFIG))
    try:
        proc = run_snakemake(
            # A replicate of every mislabel network and one training job of every other study:
            # the whole demo twice would not fit the CI's time budget.
            [*FIRST_REPLICATE, *OTHER_STUDIES, "--profile", REPO / "profiles" / "slurm", "--profile", override],
            directory=workdir,
            configfiles=(DEMO_CONFIG, gpu_config),
            timeout=RUN_TIMEOUT,
            env={**slurm_cluster.env, "NNPROBE_SLURM_PARTITION": PARTITION, "NNPROBE_SLURM_GPU_PARTITION": GPU_PARTITION},
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the SLURM run took over {RUN_TIMEOUT} s\n{_tail(str(e.output or ''))}\n{slurm_cluster.logs()}")
    out = proc.stdout
    (workdir / "snakemake.out").write_text(out)
    assert proc.returncode == 0, f"the SLURM run failed in {workdir}:\n{_tail(out, 60)}\n{slurm_cluster.logs()}"

    # -- every non-local job went through sbatch, one SLURM job each ---------------------
    submitted = collections.Counter(re.findall(r"^rule (\w+):$", out, re.M))
    local = collections.Counter(re.findall(r"^localrule (\w+):$", out, re.M))
    # a job asks for a GPU by its own resources (rules/common.smk, gpu_job()): which rules did
    asking = {rule for rule, resources in re.findall(r"^(?:local)?rule (\w+):\n(?:\s+.*\n)*?\s+resources: (.*)$", out, re.M)
              if re.search(r"\bgpu=[1-9]", resources)}
    assert any(r.startswith("train_population__") for r in asking) and "train_zoo_model" in asking, asking
    total = int(re.search(r"^total\s+(\d+)$", out, re.M).group(1))
    assert sum(submitted.values()) + sum(local.values()) == total, (submitted, local, total)
    assert submitted["prepare_dataset"] == 1 and sum(n for r, n in submitted.items() if r.startswith("train_population__")) >= 2, submitted
    logged_ids = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    assert len(logged_ids) == sum(submitted.values()), (logged_ids, submitted)

    run_id = re.search(r"^SLURM run ID: (\S+)$", out, re.M).group(1)
    records = slurm_cluster.job_records(run_id)
    assert len(records) == sum(submitted.values()), (
        f"SLURM knows {len(records)} jobs of run {run_id}; Snakemake submitted {sum(submitted.values())}"
    )
    assert {r["JobId"] for r in records} == logged_ids
    ctld_log = slurm_cluster.ctld_log.read_text()
    config = yaml.safe_load(DEMO_CONFIG.read_text())["resources"]
    slurm_rules = collections.Counter()
    for record in records:
        job_id = record["JobId"]
        rule = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", record["Comment"]).group(1)
        slurm_rules[rule] += 1
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        gpus = [v for k, v in record.items() if k.startswith("Tres") and "gpu" in v]
        if rule in asking:  # a GPU request, in the GPU partition, as SLURM recorded it
            assert record["Partition"] == GPU_PARTITION and gpus, record
        else:
            assert record["Partition"] == PARTITION and not gpus, record
        # started by the main scheduler ("sched: Allocate JobId=N") or by backfill ("Started JobId=N")
        assert re.search(rf"\b(?:Allocate|Started) JobId={job_id}\b", ctld_log), f"slurmctld never started job {job_id}"
        assert re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS 0\b", ctld_log), job_id
        slurm_log = Path(record["StdOut"])
        assert slurm_log.is_relative_to(workdir / ".snakemake" / "slurm_logs") and slurm_log.is_file(), record
        assert f"rule {rule}:" in slurm_log.read_text(), f"{slurm_log} does not run rule {rule}"
        if rule.startswith("train_population__"):  # the config's training resources reach sbatch
            assert record["MinMemoryNode"] == f"{config['train_mem_mb']}M", record
            hours, minutes = divmod(config["train_runtime"], 60)
            assert record["TimeLimit"] == f"{hours:02d}:{minutes:02d}:00", record
    assert slurm_rules == submitted, (slurm_rules, submitted)
    studies = {"train_zoo_model", "noise_train", "visualize_train"}
    assert studies <= set(slurm_rules) and any(r.startswith("train_population__") for r in slurm_rules), slurm_rules
    for target in OTHER_STUDIES:  # no real GPU on the node: the jobs said so and ran on the CPU
        assert (workdir / target).is_file(), target
    assert "runs on the CPU (resources.allow_cpu is true)" in (
        workdir / "results" / "logs" / "noise" / "noise_train" / "multiclass" / "seed0.log").read_text()

    # -- the results equal the local run's -------------------------------------------------
    local_results, slurm_results = demo_run / "results", workdir / "results"
    produced = {p.relative_to(slurm_results) for p in (slurm_results / "mislabel").rglob("*") if p.is_file()}
    expected = {Path(t).relative_to("results") for t in FIRST_REPLICATE}
    assert produced == expected, produced ^ expected
    for table in sorted(local_results.glob("mislabel/networks/*/r000/metrics.parquet")):
        pd.testing.assert_frame_equal(
            pd.read_parquet(slurm_results / table.relative_to(local_results)), pd.read_parquet(table), check_exact=True,
            obj=str(table.relative_to(local_results)),
        )
    from safetensors.numpy import load_file

    other = [Path(t).relative_to("results") for t in OTHER_STUDIES]
    networks = [*local_results.glob("mislabel/networks/*/r000/weights.safetensors"),
                local_results / "adversarial/models/full/fc10_1.safetensors",
                local_results / "noise/models/multiclass/seed0/weights.safetensors",
                local_results / "visualize/models/natural/weights.safetensors"]
    assert all((slurm_results / o).is_file() for o in other)
    for weights in sorted(networks):
        mine = load_file(slurm_results / weights.relative_to(local_results))
        theirs = load_file(weights)
        assert mine.keys() == theirs.keys(), weights
        for name, tensor in theirs.items():
            assert np.array_equal(mine[name], tensor), f"{weights.parent.name}: {name} differs"
