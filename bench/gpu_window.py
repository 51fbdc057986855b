"""One prepared GPU window: the measurements the speed work owes, then mislabel blocks while time lasts.

Run through ``bench/gpu_window.sh`` (which sources ``.device-kit/activate`` on the device):

    bash bench/gpu_window.sh --out "$OUT"                 # one H200, at most --budget seconds (540)
    bash bench/gpu_window.sh --dry --out /tmp/gpu-window  # the same steps on the CPU, tiny (CI)

Steps, each in its own process with a time limit inside the budget; a failing step does not
stop the others, but the exit status is 1 and the summary says which failed and why:

1. ``prepare``: Snakemake prepares the data of ``config/config.yaml`` (the CIFAR-10 JPEG copy
   under ``$NNPROBE_DATA``) and the effective config (``results/config.yaml``).
2. ``population_K`` for K = 230, 1,150, 2,300: ``bench/population.py throughput``'s (d), the
   study's job path (``fit(PopulationTask)`` through Fabric) in the GPU recipe (gemm, bf16-mixed,
   compile default): model-images/s of the second epoch, peak GiB, and the first epoch's extra
   seconds (compilation) apart; one process per K.
3. ``resnet``: ``bench/resnet.py``, the noise study's recipe as config.yaml sets it (45 epochs,
   bf16-mixed, channels-last), seed 0: test accuracy (plain, flip TTA) and training seconds.
4. ``lbfgs``: ``bench/lbfgs.py --solvers torch``: the minimal L-BFGS attack's problems/s on
   900 real MNIST test images against FC100-100-10 (the device-kit's mnist archive).
5. ``blocks``: replicate blocks of the paper-scale mislabel study (config.yaml: all 45 pairs in
   one pack plus the baseline, R = 50, in the GPU recipe) through Snakemake, each written as an
   evidence folder (``python -m nnprobe.evidence``). A block starts only when its estimate
   (from step 2's rates, then from the blocks already run) fits in the time left, at the largest
   size up to ``--block-size`` that fits; replicates present in ``docs/runs`` evidence of the
   same networks are skipped, so windows add up (``python -m nnprobe.evidence rebuild``).
6. ``package``: ``OUT/summary.md``, ``OUT/summary.json`` and ``OUT/gpu_window.tar.gz`` (the
   evidence folders, every step's log and output, the training jobs' logs): three files.

``--dry`` runs all of it on the CPU in a few minutes: the digits of ``config/demo.yaml`` (269 of
them for training), K = 2 / 4 / 8, a width-4 ResNet for one epoch, 8 attack problems, two blocks
of one replicate (46 networks each) for one epoch, everything eager on one thread per process
(the compiled paths are tested in tests/studies/test_gpu_paths.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESERVE_S = 25  # what the evidence of the last block and the package need at the end

FULL = {
    "base_config": "config/config.yaml", "population_k": [230, 1150, 2300], "population_recipe": "gemm:{k}:bf16:default",
    "population_args": ["--steps", "40", "--images", "50000"],
    "resnet_args": ["--epochs", "45", "--seed", "0", "--precision", "bf16-mixed"],
    "lbfgs_args": ["--problems", "900", "--idx", "{data}/MNIST/raw", "--hidden", "100", "100", "--epochs", "10"],
    "replicates": 50, "block_size": 5, "epochs": 10,
    "train": {"layout": "gemm", "compile": "default", "precision": "bf16-mixed"},
    # each fixed step's longest run, and what the fixed steps after it need at least
    "caps": {"prepare": 240, "population": 150, "resnet": 300, "lbfgs": 120}, "floors": {"resnet": 150, "lbfgs": 45},
    "fallback_rate": 300_000.0, "step_overhead_s": 0.002, "job_overhead_s": 30.0,
}
DRY = {
    "base_config": "config/demo.yaml", "population_k": [2, 4, 8], "population_recipe": "gemm:{k}:bf16",
    "population_args": ["--steps", "5", "--images", "1280", "--device", "cpu"],
    "resnet_args": ["--epochs", "1", "--seed", "0", "--precision", "bf16-mixed", "--width", "4", "--batch-size", "64",
                    "--crop-padding", "1"],
    "lbfgs_args": ["--problems", "8", "--hidden", "16", "--epochs", "2", "--device", "cpu"],
    "replicates": 2, "block_size": 1, "epochs": 1,
    "train": {"layout": "gemm", "compile": "none", "precision": "bf16-mixed"},
    "caps": {"prepare": 120, "population": 60, "resnet": 90, "lbfgs": 60}, "floors": {"resnet": 20, "lbfgs": 10},
    "fallback_rate": 2_000.0, "step_overhead_s": 0.01, "job_overhead_s": 10.0,
}


# --------------------------------------------------------------------------- planning the blocks


def taken_replicates(folders: list[Path], networks: dict) -> set[int]:
    """Replicates that evidence ``folders`` of the same networks (``network_config``) already hold,
    for any pair: training them again would put a network in two folders."""
    import pandas as pd
    import yaml

    from nnprobe.evidence import network_config

    taken: set[int] = set()
    for folder in folders:
        config_file = folder / "config.yaml"
        if not config_file.is_file() or network_config(yaml.safe_load(config_file.read_text()), "mislabel") != networks:
            continue
        for table in (folder / "per_model").glob("*.parquet"):
            taken |= set(int(r) for r in pd.read_parquet(table, columns=["replicate"])["replicate"].unique())
    return taken


def next_block(taken: set[int], replicates: int, size: int) -> tuple[int, int] | None:
    """The first ``size`` consecutive replicates (fewer before a taken one or the end) not yet taken."""
    first = next((r for r in range(replicates) if r not in taken), None)
    if first is None:
        return None
    last = first
    while last + 1 < min(replicates, first + size) and last + 1 not in taken:
        last += 1
    return first, last


def job_seconds(members: int, images: int, epochs: int, batch: int, rates: dict[int, float], fallback: float,
                step_overhead: float, job_overhead: float, compile_s: float) -> float:
    """The estimated seconds of one training job of ``members`` networks: model-images at the rate
    measured at the nearest K (log scale), at least its steps at ``step_overhead`` each (a small
    population is bound by the per-step cost), plus compilation twice (the shorter last batch
    of an epoch recompiles) and the job's fixed cost (start, data, evaluation)."""
    rate = rates[min(rates, key=lambda k: abs(math.log(k / members)))] if rates else fallback
    steps = math.ceil(images / batch) * epochs
    return max(members * images * epochs / rate, steps * step_overhead) + 2 * compile_s + job_overhead


def choose_size(left: float, largest: int, estimate) -> int | None:
    """The largest block size up to ``largest`` whose ``estimate(size)`` fits in ``left`` seconds."""
    return next((size for size in range(largest, 0, -1) if estimate(size) <= left), None)


# --------------------------------------------------------------------------- running steps


class Window:
    """The budget, the steps run so far and where their logs go."""

    def __init__(self, out: Path, work: Path, budget: float, dry: bool) -> None:
        self.out, self.work, self.dry = out, work, dry
        # from the start of bench/gpu_window.sh (GPU_WINDOW_START, epoch seconds), which unpacks the kit first
        spent = max(0.0, time.time() - float(os.environ.get("GPU_WINDOW_START") or time.time()))
        self.deadline = time.monotonic() + budget - spent
        self.steps: list[dict] = []
        self.commit = "unknown"
        (work / "logs").mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, command: list[str], limit: float, env: dict | None = None) -> dict:
        """Run one step's command with ``limit`` seconds; record and return its row."""
        log = self.work / "logs" / f"{name}.log"
        row = {"step": name, "command": " ".join(command), "log": f"logs/{log.name}", "result": {}}
        if limit < 5:
            row.update(status="skipped: no time left", seconds=0.0)
            self.steps.append(row)
            return row
        started = time.monotonic()
        with open(log, "w") as stream:
            stream.write(f"$ {row['command']}\n")
            stream.flush()
            try:
                code = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, timeout=limit,
                                      env={**os.environ, **(env or {})}).returncode
                row["status"] = "ok" if code == 0 else f"failed: exit {code}"
            except subprocess.TimeoutExpired:
                row["status"] = f"failed: over its {limit:.0f} s"
        row["seconds"] = time.monotonic() - started
        if row["status"] != "ok":
            row["tail"] = log.read_text(errors="replace")[-1500:]
        self.steps.append(row)
        print(f"[{name}] {row['status']} in {row['seconds']:.1f} s ({self.left():.0f} s left)", flush=True)
        return row


def snakemake_command(window: Window, settings: dict, override: Path, targets: list[str]) -> list[str]:
    beside = Path(sys.executable).parent / "snakemake"  # a venv's own; on the device, the kit's on PATH
    snakemake = str(beside) if beside.is_file() else (shutil.which("snakemake") or "snakemake")
    command = [snakemake, *targets, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(window.work),
               "--configfile", str(ROOT / settings["base_config"]), str(override)]
    if window.dry:
        command.append("--replace-workflow-config")
    return command + ["--cores", str(os.cpu_count() or 2), "--resources", "gpu=1"]


def write_override(window: Window, settings: dict) -> Path:
    """The config the window runs: the base config with the blocks' recipe (a YAML file, so numbers stay numbers).

    A job is a pack of all 45 pairs times one replicate (45 networks at once on the GPU): a block
    of any size at any offset is then whole jobs, and its networks' files are its targets."""
    override = {"mislabel": {"replicates": settings["replicates"], "pairs_per_job": 45, "replicates_per_job": 1},
                "train": {**settings["train"], "epochs": settings["epochs"]}, "engine": {"progress": False}}
    if window.dry:  # 269 training digits instead of 1,347: a dry block trains 46 networks in seconds
        override["dataset"] = {"test_fraction": 0.85}
    else:
        override["dataset"] = {"source": "image_folder", "root": str(Path(os.environ["NNPROBE_DATA"]) / "cifar10-jpeg")}
    path = window.work / "window-override.yaml"
    path.write_text(json.dumps(override, indent=1))
    return path


def device_tag() -> str:
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name()
    return next((m.lower() for m in re.findall(r"[A-Z]\d{2,4}", name)), "gpu")


def run_blocks(window: Window, settings: dict, override: Path, rates: dict[int, float], compile_s: float) -> None:
    """Train blocks while they fit (the config ``override`` of :func:`write_override`); write each
    as an evidence folder under work/evidence."""
    import yaml

    from nnprobe.core.naming import BASELINE, network_name, pair_packs, population_pairs
    from nnprobe.evidence import network_config, write_evidence

    from nnprobe.core.splits import load_split

    config = yaml.safe_load((window.work / "results" / "config.yaml").read_text())
    train = load_split(window.work / "results" / "data" / "train.npz")
    images, num_classes, batch = len(train.labels), len(train.classes), config["train"]["batch_size"]
    pairs = population_pairs(num_classes)  # dataset.num_classes may be "auto": the prepared data's count
    packs = [BASELINE] + pair_packs(pairs[1:], 45)
    taken = taken_replicates(sorted((ROOT / "docs" / "runs").glob("*mislabel*")), network_config(config, "mislabel"))
    measured: list[tuple[int, float]] = []  # (block size, seconds) of the blocks run here

    def estimate(size: int) -> float:  # size jobs of each pack
        model = size * sum(job_seconds(len(pack.split("+")), images, settings["epochs"], batch, rates,
                                settings["fallback_rate"], settings["step_overhead_s"], settings["job_overhead_s"],
                                compile_s) for pack in packs)
        seen = [seconds * size / done for done, seconds in measured]
        return max([model, *seen]) + 10  # + the block's evidence folder

    tag = "dry-cpu" if window.dry else device_tag()
    while True:
        left = window.left() - RESERVE_S
        block = next_block(taken, settings["replicates"], settings["block_size"])
        size = None if block is None else choose_size(left, block[1] - block[0] + 1, estimate)
        if block is None or size is None:
            window.steps.append({"step": "blocks", "status": "ok", "seconds": 0.0, "result": {
                "stopped": "every replicate is trained" if block is None else
                f"the next block needs about {estimate(1):.0f} s, {max(left, 0):.0f} s were left"}})
            return
        name = f"r{block[0]}-{block[0] + size - 1}"
        targets = [f"results/mislabel/networks/{network_name(pair, r)}/metrics.parquet"
                   for pair in pairs for r in range(block[0], block[0] + size)]
        command = snakemake_command(window, settings, override, targets)
        row = window.run(f"block_{name}", command, left)
        row["result"] = {"block": name, "estimate_s": estimate(size)}
        if row["status"] != "ok":
            return
        measured.append((size, row["seconds"]))
        taken |= set(range(block[0], block[0] + size))
        folder = window.work / "evidence" / f"{datetime.date.today().isoformat()}-mislabel-{tag}-{name}"
        shown = " ".join(command).replace(str(window.work), "$WORK").replace(str(ROOT), ".")
        write_evidence("mislabel", window.work, folder, command=f"bash bench/gpu_window.sh: {shown}",
                       wall_seconds=row["seconds"], blocks=[name],
                       notes=(f"Replicate block {name} of the paper-scale mislabel study, trained by "
                              f"bench/gpu_window.sh (code of commit {window.commit}) in one GPU window (a dry run on "
                              "the CPU if the device says cpu). Combine blocks with `python -m nnprobe.evidence "
                              "rebuild`."))
        row["result"]["evidence"] = folder.name


# --------------------------------------------------------------------------- the window


def fixed_limit(window: Window, settings: dict, step: str, later: list[str]) -> float:
    """A fixed step's time limit: its cap, leaving the steps after it their floors and the reserve."""
    floors = sum(settings["floors"].get(s, 0) for s in later)
    return min(settings["caps"][step], window.left() - floors - RESERVE_S)


def measure(window: Window, settings: dict) -> tuple[dict[int, float], float]:
    """Steps 2-4; returns the population rates by K and the largest first-epoch extra seconds."""
    env = {"OMP_NUM_THREADS": "1"} if window.dry else {}
    python = sys.executable
    prepared = str(window.work / "results" / "data" / "train.npz")
    rates, compile_s = {}, 0.0
    for k in settings["population_k"]:
        result = window.work / f"population_{k}.json"
        command = [python, "bench/population.py", "throughput", "--prepared", prepared, "--skip-single",
                   "--variants", "--jobs", settings["population_recipe"].format(k=k), *settings["population_args"],
                   "--json", str(result)]
        row = window.run(f"population_{k}", command, fixed_limit(window, settings, "population", ["resnet", "lbfgs"]),
                         env)
        if row["status"] == "ok":
            (job,) = json.loads(result.read_text())
            row["result"] = {"model_images_per_s": job["images_per_s"], "peak_gib": job["peak_gib"],
                             "first_epoch_extra_s": job["first_epoch_extra_s"]}
            rates[k] = job["images_per_s"]
            compile_s = max(compile_s, job["first_epoch_extra_s"])
    result = window.work / "resnet.json"
    row = window.run("resnet", [python, "bench/resnet.py", "--data", str(window.work / "results" / "data"),
                                *settings["resnet_args"], "--json", str(result)],
                     fixed_limit(window, settings, "resnet", ["lbfgs"]), env)
    if row["status"] == "ok":
        found = json.loads(result.read_text())
        row["result"] = {k: found[k] for k in ("test_accuracy", "test_accuracy_flip_tta", "train_seconds", "device")}
    result = window.work / "lbfgs.json"
    lbfgs_args = [a.format(data=os.environ.get("NNPROBE_DATA", "")) for a in settings["lbfgs_args"]]
    row = window.run("lbfgs", [python, "bench/lbfgs.py", *lbfgs_args, "--solvers", "torch", "--json", str(result)],
                     fixed_limit(window, settings, "lbfgs", []), env)
    if row["status"] == "ok":
        found = json.loads(result.read_text())
        row["result"] = {"device": found["device"], **found["solvers"]["torch"]}
    return rates, compile_s or (5.0 if window.dry else 60.0)


def package(window: Window, started: str, budget: float) -> None:
    """summary.json, summary.md and one tarball of the evidence, logs and step outputs, under OUT."""
    import torch

    summary = {"started": started, "budget_s": budget, "dry": window.dry, "commit": window.commit,
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "python": sys.version.split()[0], "steps": window.steps}
    window.out.mkdir(parents=True, exist_ok=True)
    (window.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    lines = [f"# GPU window {started}{' (dry run on the CPU)' if window.dry else ''}", "",
             f"device {summary['device']}, torch {summary['torch']}, commit {summary['commit']}, budget {budget:.0f} s",
             "", "| step | status | seconds | result |", "|---|---|---:|---|"]
    for row in window.steps:
        lines.append(f"| {row['step']} | {row['status']} | {row['seconds']:.1f} | "
                     f"{json.dumps(row.get('result', {}), default=str)} |")
    for row in window.steps:
        if "tail" in row:
            lines += ["", f"## {row['step']}: end of its log", "", "```", row["tail"], "```"]
    (window.out / "summary.md").write_text("\n".join(lines) + "\n")
    with tarfile.open(window.out / "gpu_window.tar.gz", "w:gz") as tar:
        for name in ("evidence", "logs", "results/logs/mislabel", "results/benchmarks", "window-override.yaml"):
            if (window.work / name).exists():
                tar.add(window.work / name, arcname=name)
        for result in sorted(window.work.glob("*.json")):
            tar.add(result, arcname=result.name)
        tar.add(window.out / "summary.json", arcname="summary.json")


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="the same steps on the CPU with a tiny config")
    parser.add_argument("--out", required=True, help="where summary.md, summary.json and gpu_window.tar.gz go")
    parser.add_argument("--work", help="the working directory (default: a new temporary one)")
    parser.add_argument("--budget", type=float, help="seconds for everything (default 540; dry 600)")
    parser.add_argument("--block-size", type=int, help="largest replicate block (default 5; dry 1)")
    parser.add_argument("--commit", help="the commit of this code (the device's copy may have no .git)")
    args = parser.parse_args(argv)
    settings = dict(DRY if args.dry else FULL)
    if args.block_size:
        settings["block_size"] = args.block_size
    budget = args.budget or (600.0 if args.dry else 540.0)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-window-")).resolve()
    window = Window(Path(args.out).resolve(), work, budget, args.dry)
    window.commit = args.commit or _commit()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    if not args.dry and not os.environ.get("NNPROBE_DATA"):
        parser.error("NNPROBE_DATA is not set: source .device-kit/activate first (bench/gpu_window.sh does)")
    override = write_override(window, settings)
    prepare = window.run("prepare", snakemake_command(window, settings, override, [
        "results/data/train.npz", "results/data/test.npz", "results/data/checks.json", "results/config.yaml"]),
        fixed_limit(window, settings, "prepare", ["population", "resnet", "lbfgs"]))
    if prepare["status"] == "ok":
        rates, compile_s = measure(window, settings)
        try:
            run_blocks(window, settings, override, rates, compile_s)
        except Exception as error:  # noqa: BLE001  (the package must still be written)
            window.steps.append({"step": "blocks", "status": f"failed: {type(error).__name__}: {error}",
                                 "seconds": 0.0, "result": {}})
    package(window, started, budget)
    failed = [row["step"] for row in window.steps if not row["status"].startswith("ok")]
    print(f"summary: {window.out / 'summary.md'}; {'failed: ' + ', '.join(failed) if failed else 'every step ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
