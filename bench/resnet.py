"""One timed training run of the noise study's ResNet-18 recipe on prepared splits.

    python bench/resnet.py --data results/data --epochs 45 --seed 0
    python bench/resnet.py --data results/data --epochs 26 --batch-size 500 --compile

It trains through the study's own task (``nnprobe.studies.noise.training.ResNetTask``) and
the engine, on the GPU when there is one, and prints the test accuracy (plain and with flip
test-time augmentation) and the training seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from nnprobe.core.splits import channel_stats, load_split
from nnprobe.engines.evaluation import embed, logit_accuracy
from nnprobe.engines.training import PRECISIONS, TrainOptions, fit
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.studies.noise.training import ResNetTask, TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with train.npz and test.npz (rule prepare_dataset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=64)
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.type in ("int", "float"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                                default=getattr(defaults, f.name))
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--precision", default="bf16-mixed", choices=PRECISIONS, help="the engine's precision")
    parser.add_argument("--contiguous", action="store_true", help="no channels-last memory layout")
    parser.add_argument("--json", help="also write the accuracies, seconds and settings here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train, test = load_split(f"{args.data}/train.npz"), load_split(f"{args.data}/test.npz")
    mean, std = channel_stats(train.images)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    numbers = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.type in ("int", "float")}
    config = TrainConfig(**numbers, compile=args.compile, precision=args.precision, channels_last=not args.contiguous)
    model = resnet18_cifar(len(train.classes), train.images.shape[1], args.width, seed=args.seed)
    task = ResNetTask(model, train.images, train.labels, mean, std, config, args.seed,
                      channels_last=config.channels_last)
    started = time.perf_counter()
    history = fit(task, TrainOptions(config.epochs, device=device, precision=config.precision, progress=False,
                                     name="resnet18"))
    seconds = time.perf_counter() - started

    def logits(images: np.ndarray) -> torch.Tensor:
        return embed(model.features, model.fc, images, mean, std, device, precision=config.precision,
                     channels_last=config.channels_last)[0]

    plain = logits(test.images)
    flipped = logits(test.images[..., ::-1].copy())
    accuracy = logit_accuracy(plain, test.labels)
    tta = logit_accuracy(plain.softmax(1) + flipped.softmax(1), test.labels)
    print(f"seed {args.seed}: test accuracy {accuracy:.4f}, with flip TTA {tta:.4f}; training {seconds:.1f} s on "
          f"{device} ({config.epochs} epochs, batch {config.batch_size}, lr {config.lr})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "width": args.width, "test_accuracy": accuracy, "test_accuracy_flip_tta": tta,
            "train_seconds": seconds, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "config": asdict(config), "epoch_seconds": [row["seconds"] for row in history]}, indent=1))


if __name__ == "__main__":
    main()
