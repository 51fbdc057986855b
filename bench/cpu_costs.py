"""Seconds per training step of the noise and visualize studies' networks, and what config.yaml's
training then costs on this machine; measured through the studies' own tasks and the engine.

    OMP_NUM_THREADS=1 python bench/cpu_costs.py --data /work/prep/cifar   # train.npz of rule prepare_dataset

For each network of ``config/config.yaml`` (noise: the ResNet-18 recipe at its batch size, in
float32 and bf16-mixed, channels-last; visualize: the standard CNN trained naturally and with PGD,
the top-down network), it trains an epoch of ``--steps`` steps to warm up, times another by
this process's CPU time (what an idle core gives) and the wall clock, and multiplies the CPU
seconds per step by the steps config.yaml trains (every seed, every epoch). The mislabel populations' rate comes from ``bench/population.py`` and the
adversarial study's from its evidence (docs/performance.md). Training only: probes, attacks,
patterns and figures are not counted.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
import yaml

from nnprobe.core.splits import channel_stats, load_split
from nnprobe.engines.pgd import PGD
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.models.topdown import Normalized, standard_cnn, topdown_net
from nnprobe.studies.noise.training import ResNetTask, TrainConfig
from nnprobe.studies.visualize.training import VisualizeTask

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_step(task, steps: int, precision: str = "32-true") -> tuple[float, float]:
    """CPU seconds (of this process) and wall seconds per step of an epoch cut to ``steps`` steps,
    after one such epoch of warm-up. CPU seconds are what an idle core gives; on a loaded machine
    the wall-clock seconds are longer."""
    options = TrainOptions(1, precision=precision, progress=False, steps_per_epoch=steps)
    fit(task, options)
    cpu, wall = time.process_time(), time.perf_counter()
    fit(task, options)
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with the prepared train.npz (CIFAR-10)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per network")
    parser.add_argument("--cores", type=int, default=2, help="jobs run side by side, one thread each")
    args = parser.parse_args()
    logging.getLogger("nnprobe").setLevel(logging.WARNING)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train = load_split(Path(args.data) / "train.npz")
    images, labels = train.images, train.labels
    mean, std = channel_stats(images)
    n, binary_n = len(labels), 2 * len(labels) // len(train.classes)
    rows = []  # (study, network, precision, s/step, steps in config.yaml)

    noise = config["noise"]
    recipe = {k: v for k, v in noise["train"].items() if k in TrainConfig.__dataclass_fields__}
    for precision in ("32-true", "bf16-mixed"):
        cfg = TrainConfig(**{**recipe, "precision": precision})
        model = resnet18_cifar(10, 3, noise["width"], seed=0)
        task = ResNetTask(model, images, labels, mean, std, cfg, seed=0, channels_last=cfg.channels_last)
        per_step = seconds_per_step(task, args.steps, precision)
        steps = noise["seeds"] * cfg.epochs * (n // cfg.batch_size + binary_n // cfg.batch_size)
        rows.append(("noise", f"ResNet-18 x {noise['seeds']} seeds x 2 tasks, batch {cfg.batch_size}", precision,
                     per_step, steps))

    vis = config["visualize"]["train"]
    adversarial = config["visualize"]["adversarial"]
    steps = vis["epochs"] * -(-n // vis["batch_size"])
    for name, builder, attack in (
        ("standard CNN, natural (x2: natural, backdoor)", standard_cnn, None),
        ("standard CNN, PGD adversarial training", standard_cnn,
         PGD(adversarial["train_epsilon"] / 255, adversarial["train_steps"], adversarial["train_step_size"] / 255)),
        ("top-down network", topdown_net, None),
    ):
        model = Normalized(builder(3, 10, vis["width"], torch.Generator().manual_seed(0)), mean, std)
        task = VisualizeTask(model, images, labels, batch_size=vis["batch_size"], lr=vis["lr"],
                             weight_decay=vis.get("weight_decay", 0.0), seed=0, flip=vis["flip"], adversarial=attack)
        count = 2 if name.startswith("standard CNN, natural") else 1
        rows.append(("visualize", name, "32-true", seconds_per_step(task, args.steps), count * steps))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.steps} timed steps per network; "
          f"config.yaml's training steps; core-hours at one thread per job, days on {args.cores} cores\n")
    print("| study | network | precision | CPU s/step | wall s/step | steps | core-hours | days on the machine |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for study, name, precision, (per_step, wall), steps in rows:
        hours = per_step * steps / 3600
        print(f"| {study} | {name} | {precision} | {per_step:.3f} | {wall:.3f} | {steps:,} | {hours:.1f} | "
              f"{hours / 24 / args.cores:.2f} |")


if __name__ == "__main__":
    main()
