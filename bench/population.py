"""Benchmark of population training: model-images per second, measured in one run.

Mode ``throughput`` times, on the same device and the same data, (a) one model at a time in
a Lightning loop, (b) one model at a time in a plain PyTorch loop with the data on the
device, (c) the population engine's training step at several K, layouts, precisions and
torch.compile modes, and (d) the study's job path, ``fit(PopulationTask)`` through Lightning
Fabric as the rules train_population__* run it (epochs of ``--steps`` steps; the first epoch holds
compilation and warm-up and is reported apart); it prints every figure and its ratio
against (a).

Mode ``study`` runs the real mislabel study end to end through Snakemake (the command it
runs is printed) and prints its wall time, the training jobs' peak GPU memory and
throughput, and the fraction of the GPU's dense bf16 peak that the training FLOPs reached.

Examples::

    python bench/population.py throughput --data cifar10-jpeg   # needs NNPROBE_DATA
    python bench/population.py throughput --prepared results/data/train.npz --skip-single --variants \
        --jobs gemm:230:bf16:default --json k230.json   # a prepared split; (d) alone
    python bench/population.py throughput --synthetic --device cpu --variants vmap:4:fp32
    python bench/population.py study --pairs-per-job 23 --precision bf16-mixed --compile default
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnprobe.engines.population import PopulationTask, epoch_permutations, init_population, normalize, population_loss
from nnprobe.engines.training import OptimizerSpec, TrainOptions, fit, make_optimizer
from nnprobe.models.keras_cnn import keras_cnn

ROOT = Path(__file__).resolve().parents[1]
# Forward FLOPs of the 32x32x3 Keras CNN per image (multiply-adds x 2): conv 1.56M + 6.23M + 1.18M, dense 0.13M.
FORWARD_FLOPS = 2 * (30 * 30 * 32 * 27 + 13 * 13 * 64 * 288 + 4 * 4 * 64 * 576 + 1024 * 64 + 64 * 10)
TRAIN_FLOPS = 3 * FORWARD_FLOPS  # forward + backward (two products per layer)
H100_BF16_DENSE = 989e12  # H100 SXM dense bf16 tensor-core peak, FLOP/s (datasheet)


def load_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float]]:
    """The training images (uint8 on the CPU), labels and channel mean and std; sets the network to
    the images' shape (:func:`cnn`)."""
    global SHAPE
    if args.prepared:
        from nnprobe.core.splits import load_split

        split = load_split(Path(args.prepared))
        images, labels = split.images[: args.images], split.labels[: args.images]
    elif args.synthetic:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(args.images, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=args.images)
    else:
        from nnprobe.core.folders import load_image_folder

        root = Path(os.environ.get("NNPROBE_DATA", "")) / args.data
        splits, _ = load_image_folder(root)
        images, labels = splits["train"].images[: args.images], splits["train"].labels[: args.images]
    x = torch.as_tensor(images)
    SHAPE = (x.shape[1], x.shape[2], x.shape[3], int(labels.max()) + 1)
    mean = (x.float() / 255).mean(dim=(0, 2, 3)).tolist()
    std = (x.float() / 255).std(dim=(0, 2, 3)).tolist()
    return x, torch.as_tensor(labels), mean, std


SHAPE = (3, 32, 32, 10)  # channels, height, width, classes of the data (load_data sets it)
CPU_TIME = False  # --cpu-time: (d) on the CPU also times an epoch by the process's CPU time
CPU_RATES: dict[str, float] = {}


def cnn(generator: torch.Generator) -> nn.Module:
    """The Keras CNN for the data's shape: 'valid' padding as in the tutorial, 'same' for images
    under 18 pixels (the digits of a dry run)."""
    channels, height, width, classes = SHAPE
    return keras_cnn(channels, classes, (height, width), 0 if min(height, width) >= 18 else 1, generator)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_plain_module(images, labels, mean, std, device, steps: int, batch: int) -> float:
    """(b) One ordinary nn.Module, data on the device, Adam, no Lightning: model-images/s."""
    model = cnn(torch.Generator().manual_seed(0)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    images, labels = images.to(device), labels.to(device)
    mean_t, std_t = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    perm = epoch_permutations([1], 0, images.shape[0], device)[0]

    def run(n: int) -> None:
        for s in range(n):
            idx = perm[(s * batch) % (perm.numel() - batch) :][:batch]
            loss = nn.functional.cross_entropy(model(normalize(images[idx], mean_t, std_t, torch.float32)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(20)
    sync(device)
    start = time.perf_counter()
    run(steps)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def time_lightning_single(images, labels, mean, std, device, steps: int, batch: int) -> float:
    """(a) One model at a time through the training engine (Lightning Fabric; K=1, eager, vmap)."""
    n = steps * batch
    sub_x, sub_y = images[:n], labels[:n].unsqueeze(0)

    def task(count: int) -> PopulationTask:
        pop = init_population(cnn, [0])
        return PopulationTask(pop, sub_x[:count], sub_y[:, :count], [1], mean, std, batch)

    fit(task(20 * batch), TrainOptions(1, device=device, progress=False))  # warm-up
    sync(device)
    start = time.perf_counter()
    fit(task(n), TrainOptions(1, device=device, progress=False))
    sync(device)
    return n / (time.perf_counter() - start)


def time_population(images, labels, mean, std, device, k: int, layout: str, precision: str,
                    compile_mode: str | None, steps: int, batch: int) -> tuple[float, float]:
    """(c) The engine's training step (loss, backward, fused Adam) for K members: model-images/s, peak GiB."""
    pop = init_population(cnn, range(k), device=device, layout=layout)
    x = images.to(device)
    y = labels.to(device).to(torch.uint8).unsqueeze(0).expand(k, -1).contiguous()
    mean_t = torch.tensor(mean, dtype=torch.float64, device=device)
    std_t = torch.tensor(std, dtype=torch.float64, device=device)
    opt = make_optimizer(list(pop.params.values()), OptimizerSpec(), fused=device.type == "cuda")
    loss_fn = population_loss if compile_mode is None else torch.compile(population_loss, mode=compile_mode)
    perms = epoch_permutations(range(k), 0, x.shape[0], device)
    starts = range(0, x.shape[0] - batch + 1, batch)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    # tf32: float32 tensors, matrix products on tensor cores in TF32 (cuDNN convolutions use TF32 by default).
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"

    def run(n: int) -> None:
        for s in range(n):
            start = starts[s % len(starts)]
            with autocast:
                loss, _ = loss_fn(pop, x, y, perms[:, start : start + batch], mean_t, std_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run(max(10, steps // 5))
    sync(device)
    begin = time.perf_counter()
    run(steps)
    sync(device)
    rate = steps * batch * k / (time.perf_counter() - begin)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return rate, peak


def time_study_job(images, labels, mean, std, device, k: int, layout: str, precision: str,
                   compile_mode: str | None, steps: int, batch: int) -> tuple[float, float, float]:
    """(d) The study's job path for K members: model-images/s of the second epoch, peak GiB, and the
    extra seconds of the first epoch (compilation, warm-up) over the second."""
    pop = init_population(cnn, range(k), layout=layout)
    n = steps * batch
    y = labels[:n].to(torch.uint8).unsqueeze(0).expand(k, -1).contiguous()
    task = PopulationTask(pop, images[:n], y, list(range(k)), mean, std, batch, compile_mode=compile_mode)
    lightning = {"fp32": "32-true", "bf16": "bf16-mixed", "tf32": "32-true"}[precision]
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = fit(task, TrainOptions(2, device=device, precision=lightning, progress=False))
    first, second = history[0]["seconds"], history[1]["seconds"]
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    if CPU_TIME and device.type == "cpu":  # one more epoch, per second of this process's CPU time
        started = time.process_time()
        fit(task, TrainOptions(1, device=device, precision=lightning, progress=False))
        print(f"{layout} K={k} {precision}{' compile=' + compile_mode if compile_mode else ''}: "
              f"{n * k / (time.process_time() - started):,.0f} model-images per CPU-second "
              f"(wall-clock: {n * k / second:,.0f}/s)", flush=True)
        CPU_RATES[f"{layout}:{k}:{precision}" + (f":{compile_mode}" if compile_mode else "")] = (
            n * k / (time.process_time() - started))
    return n * k / second, peak, first - second


def throughput(args: argparse.Namespace) -> None:
    global CPU_TIME
    CPU_TIME = args.cpu_time
    device = torch.device(args.device)
    images, labels, mean, std = load_data(args)
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"{images.shape[0]} images, batch {args.batch} per model", flush=True)
    rows, failed = [], []
    if not args.skip_single:
        rows.append(("(a) engine (Lightning Fabric), one model", time_lightning_single(images, labels, mean, std, device,
                                                                     args.single_steps, args.batch), float("nan"),
                     float("nan")))
        print(rows[-1], flush=True)
        rows.append(("(b) plain loop, one model", time_plain_module(images, labels, mean, std, device,
                                                                    args.single_steps, args.batch), float("nan"),
                     float("nan")))
        print(rows[-1], flush=True)
    for spec in args.variants:
        layout, k, precision, *compile_mode = spec.split(":")
        mode = compile_mode[0] if compile_mode else None
        label = f"(c) {layout} K={k} {precision}" + (f" compile={mode}" if mode else "")
        try:
            rate, peak = time_population(images, labels, mean, std, device, int(k), layout, precision, mode,
                                         args.steps, args.batch)
        except Exception as error:  # report and go on: one failing variant must not hide the others
            print(f"{label}: failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
            failed.append(label)
            continue
        rows.append((label, rate, peak, float("nan")))
        print(rows[-1], flush=True)
    for spec in args.jobs:
        layout, k, precision, *compile_mode = spec.split(":")
        mode = compile_mode[0] if compile_mode else None
        label = f"(d) job path {layout} K={k} {precision}" + (f" compile={mode}" if mode else "")
        try:
            rate, peak, warmup = time_study_job(images, labels, mean, std, device, int(k), layout, precision, mode,
                                                args.steps, args.batch)
        except Exception as error:  # report and go on, as for (c)
            print(f"{label}: failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
            failed.append(label)
            continue
        rows.append((label, rate, peak, warmup))
        print(rows[-1], f"first epoch {warmup:+.1f} s over the second (compilation, warm-up)", flush=True)
    if not rows:
        sys.exit(f"every variant failed: {failed}")
    reference = rows[0][1]
    print(f"\n{'variant':55s} {'model-images/s':>15s} {'x (a)':>8s} {'peak GiB':>9s} {'bf16 peak %':>11s}")
    for label, rate, peak, _ in rows:
        print(f"{label:55s} {rate:15,.0f} {rate / reference:8.1f} {peak:9.2f} "
              f"{100 * rate * TRAIN_FLOPS / H100_BF16_DENSE:11.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps([{"variant": r[0], "images_per_s": r[1], "peak_gib": r[2],
                                                "first_epoch_extra_s": r[3]} for r in rows]
                                              + [{"variant": f"(d) {key} per CPU-second", "images_per_cpu_s": rate}
                                                 for key, rate in CPU_RATES.items()]))
    if failed:
        sys.exit(f"{len(failed)} variant(s) failed: {failed}")


def profile(args: argparse.Namespace) -> None:
    """Top CUDA kernels of the engine's training step for each variant (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    device = torch.device(args.device)
    images, labels, mean, std = load_data(args)
    for spec in args.variants:
        layout, k, precision, *compile_mode = spec.split(":")
        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
            rate, _ = time_population(images, labels, mean, std, device, int(k), layout, precision,
                                      compile_mode[0] if compile_mode else None, args.steps, args.batch)
        print(f"\n== {spec}: {rate:,.0f} model-images/s (under the profiler)")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=70))


def study(args: argparse.Namespace) -> None:
    """Time the real study end to end through Snakemake."""
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    override = workdir / "bench-override.yaml"  # a YAML file keeps numbers numbers (--config k={...} does not)
    override.write_text(json.dumps({
        "dataset": {"source": "image_folder", "root": str(Path(os.environ["NNPROBE_DATA"]) / args.data)},
        "mislabel": {"pairs_per_job": args.pairs_per_job, "replicates": args.replicates},
        "train": {"precision": args.precision, "compile": args.compile, "layout": args.layout, "epochs": args.epochs},
        "engine": {"progress": False},
    }))
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    cmd = [snakemake, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(ROOT / "config/config.yaml"), str(override),
           "--cores", str(args.cores), "--resources", "gpu=1"]
    if args.targets:
        cmd += args.targets
    print("running:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    logs = sorted((workdir / "results/logs/mislabel/train_population").rglob("*.log"))
    peaks, rates, trained = [], [], []
    for log in logs:
        text = log.read_text()
        peaks += [float(v) for v in re.findall(r"peak GPU memory allocated: ([\d.]+) GiB", text)]
        rates += [float(v) for v in re.findall(r"trained in [\d.]+ s: (\d+) model-images/s", text)]
        trained += [float(v) for v in re.findall(r"trained in ([\d.]+) s", text)]
    n_train = 50000 if not args.images else args.images
    pairs = math.comb(10, 2) + 1
    model_images = pairs * args.replicates * args.epochs * n_train
    print(f"\nstudy: {len(logs)} training jobs, {pairs * args.replicates} networks, {args.epochs} epochs")
    print(f"wall time end to end: {wall:.1f} s; training time summed over jobs: {sum(trained):.1f} s")
    print(f"peak GPU memory of a training job: {max(peaks, default=float('nan')):.2f} GiB")
    print(f"training throughput per job: {', '.join(f'{r:,.0f}' for r in rates)} model-images/s")
    print(f"end-to-end rate: {model_images / wall:,.0f} model-images/s; fraction of bf16 dense peak "
          f"(training FLOPs / wall / {H100_BF16_DENSE:.3g}): {100 * model_images * TRAIN_FLOPS / wall / H100_BF16_DENSE:.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--data", default="cifar10-jpeg", help="image folder under $NNPROBE_DATA")
    t.add_argument("--synthetic", action="store_true", help="random uint8 images instead of real data")
    t.add_argument("--prepared", help="a prepared split (train.npz of rule prepare_dataset) instead of --data")
    t.add_argument("--images", type=int, default=50000)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=60, help="timed steps per population variant")
    t.add_argument("--single-steps", type=int, default=400, help="timed steps of the one-model loops")
    t.add_argument("--skip-single", action="store_true")
    t.add_argument("--variants", nargs="*", default=[
        "vmap:1:fp32", "vmap:10:fp32", "vmap:50:fp32", "vmap:230:fp32", "grouped:50:fp32", "grouped:230:fp32",
        "grouped:230:bf16", "grouped:230:fp32:default", "grouped:230:bf16:default", "grouped:1150:bf16:default",
    ], help="LAYOUT:K:PRECISION[:COMPILE_MODE]")
    t.add_argument("--jobs", nargs="*", default=["grouped:230:bf16:default", "grouped:1150:bf16:default",
                                                 "grouped:2300:bf16:default"],
                   help="(d) the study's job path, LAYOUT:K:PRECISION[:COMPILE_MODE]")
    t.add_argument("--json", help="also write the rows as JSON here")
    t.add_argument("--cpu-time", action="store_true",
                   help="(d) on the CPU: one more epoch, timed by this process's CPU time (what an idle core gives; "
                        "the wall-clock rate of a loaded machine is lower)")
    p = sub.add_parser("profile", parents=[], add_help=True)
    for action in t._actions[1:]:
        if action.dest not in ("json", "skip_single", "single_steps", "jobs"):
            p._add_action(action)
    s = sub.add_parser("study")
    s.add_argument("--data", default="cifar10-jpeg")
    s.add_argument("--workdir", default="bench-study")
    s.add_argument("--pairs-per-job", type=int, default=23)
    s.add_argument("--replicates", type=int, default=50)
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--images", type=int, default=0, help="training images per epoch (0: all 50,000)")
    s.add_argument("--precision", default="bf16-mixed")
    s.add_argument("--compile", default="default")
    s.add_argument("--layout", default="grouped")
    s.add_argument("--cores", type=int, default=4)
    s.add_argument("targets", nargs="*")
    args = parser.parse_args()
    {"throughput": throughput, "profile": profile, "study": study}[args.mode](args)


if __name__ == "__main__":
    main()
