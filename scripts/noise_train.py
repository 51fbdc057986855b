"""Snakemake script of rule noise_train: one CIFAR ResNet-18 of the noise study, timed.

Task ``multiclass`` trains on every class; ``binary`` on the two classes of
``noise.binary_classes`` only (output 0 is the first of them, e.g. cat).
"""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import safetensors.torch
import torch

from nnprobe.data import channel_stats, load_split
from nnprobe.resnet import TrainConfig, accuracy, embed, resnet18_cifar, train_resnet
from nnprobe.seeds import derive_seed
from nnprobe.workflow import logged


def binary_subset(classes: tuple[str, ...], names: list[str]) -> list[int]:
    missing = [n for n in names if n not in classes]
    if missing:
        raise ValueError(
            f"config key noise.binary_classes names {missing}, which the prepared data does not have; "
            f"its classes are {list(classes)}: pick two of them"
        )
    return [classes.index(n) for n in names]


def main(inputs, outputs, task: str, seed_index: int, seed: int, width: int, train_config: dict,
         binary_classes: list[str], accelerator: str, log) -> None:
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    images, labels, output_names = train.images, train.labels, list(train.classes)
    test_images, test_labels = test.images, test.labels
    if task == "binary":
        keep = binary_subset(train.classes, binary_classes)
        remap = np.full(len(train.classes), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))  # output 0 is the first binary class
        mask, test_mask = np.isin(labels, keep), np.isin(test_labels, keep)
        images, labels = images[mask], remap[labels[mask]]
        test_images, test_labels = test_images[test_mask], remap[test_labels[test_mask]]
        output_names = list(binary_classes)
    mean, std = channel_stats(images)
    run_seed = derive_seed(seed, "noise_train", task, seed_index)
    device = torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")
    if accelerator == "gpu" and device.type != "cuda":
        raise RuntimeError("config key noise.accelerator is gpu but CUDA is not available; use auto or cpu")
    config = TrainConfig(**train_config)
    model = resnet18_cifar(len(output_names), images.shape[1], width, seed=run_seed)
    log.info("task %s seed %d (run seed %d): %d training images %s, classes %s, %d parameters, device %s, %s",
             task, seed_index, run_seed, len(labels), images.shape[1:], output_names,
             sum(p.numel() for p in model.parameters()), device, config)
    started = time.perf_counter()
    history = train_resnet(model, images, labels, mean, std, config, run_seed, device, log=log.info)
    seconds = time.perf_counter() - started
    logits, _ = embed(model.features, model.fc, test_images, mean, std, device, bf16=config.bf16,
                      channels_last=config.channels_last)
    tta = None  # flip test-time augmentation: mean softmax of the image and its mirror image
    if config.flip:
        flipped, _ = embed(model.features, model.fc, test_images[..., ::-1].copy(), mean, std, device,
                           bf16=config.bf16, channels_last=config.channels_last)
        tta = accuracy(logits.softmax(1) + flipped.softmax(1), test_labels)
    metrics = {
        "task": task, "seed": seed_index, "run_seed": run_seed, "classes": output_names,
        "train_images": int(len(labels)), "test_images": int(len(test_labels)),
        "test_accuracy": accuracy(logits, test_labels),
        "test_accuracy_flip_tta": tta,
        "train_seconds": seconds, "epochs": config.epochs, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mean": [float(m) for m in mean], "std": [float(s) for s in std],
    }
    log.info("test accuracy %.4f (with flip TTA %s), trained in %.1f s", metrics["test_accuracy"], tta, seconds)
    Path(outputs.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
    pd.DataFrame(history).to_csv(outputs.history, index=False)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"architecture": json.dumps({"name": "resnet18_cifar", "width": width,
                                            "in_channels": int(images.shape[1]), "num_classes": len(output_names)}),
                "metrics": json.dumps(metrics)}
    safetensors.torch.save_file(state, outputs.weights, metadata)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.input,  # noqa: F821
            snakemake.output,  # noqa: F821
            snakemake.wildcards.task,  # noqa: F821
            int(snakemake.wildcards.seed),  # noqa: F821
            log=log,
            **snakemake.params,  # noqa: F821
        )
