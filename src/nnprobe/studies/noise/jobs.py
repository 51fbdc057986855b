"""The jobs of the noise study, one function per rule: read the rule's inputs, call the
study's science, write its outputs. ``scripts/noise/<rule>.py`` adapts Snakemake to them.

prepared splits -> ResNet-18s (all classes; two classes) and the mislabel baseline CNNs ->
probe tables per network -> tables across networks -> figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...core.chance import at_chance, chance_threshold
from ...core.io import sha256_file, write_json, write_parquet
from ...core.naming import BASELINE
from ...core.seeds import derive_seed
from ...core.splits import channel_stats, load_split
from ...core.weights import save_weights

# Each job imports the code only it runs inside its function: a job's code inputs (the modules
# it imports, nnprobe.core.provenance) are then exactly what it runs, so editing the probes does
# not retrain a ResNet, nor editing the Keras CNN rerun the ResNets' probes.

__all__ = ["train_resnet", "probe_resnet", "probe_population"]

log = logging.getLogger("nnprobe.noise")


def train_resnet(train_path: str, test_path: str, outputs: Mapping[str, str], *, task: str, seed_index: int,
                 seed: int, width: int, train: Mapping[str, Any], binary_classes: Sequence[str],
                 engine: Mapping[str, Any], checkpoints: str, device: torch.device) -> None:
    """Train one ResNet-18 of the noise study (``task`` multiclass: every class; binary: the two
    ``binary_classes``, output 0 the first) and measure its test accuracy, also with flip TTA."""
    from ...engines.evaluation import embed, logit_accuracy
    from ...engines.training import TrainOptions, fit, remove_checkpoints
    from ...models import count_parameters
    from ...models.resnet import resnet18_cifar
    from .training import ResNetTask, TrainConfig, binary_subset

    train_split, test = load_split(Path(train_path)), load_split(Path(test_path))
    images, labels, output_names = train_split.images, train_split.labels, list(train_split.classes)
    test_images, test_labels = test.images, test.labels
    if task == "binary":
        images, labels = binary_subset(images, labels, train_split.classes, binary_classes)
        test_images, test_labels = binary_subset(test_images, test_labels, test.classes, binary_classes)
        output_names = list(binary_classes)
    mean, std = channel_stats(images)
    run_seed = derive_seed(seed, "noise_train", task, seed_index)
    config = TrainConfig(**train)
    cuda = device.type == "cuda"
    model = resnet18_cifar(len(output_names), images.shape[1], width, seed=run_seed)
    log.info("task %s seed %d (run seed %d): %d training images %s, classes %s, %d parameters, %s",
             task, seed_index, run_seed, len(labels), images.shape[1:], output_names, count_parameters(model), config)
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=config.epochs, device=device, precision=config.precision,
        history=Path(outputs["history"]), name=f"resnet18 {task} seed {seed_index}",
        fingerprint={"data": sha256_file(train_path), "task": task, "seed": run_seed, "width": width, **dict(train)},
    )
    started = time.perf_counter()
    fit(ResNetTask(model, images, labels, mean, std, config, run_seed, channels_last=config.channels_last), options)
    seconds = time.perf_counter() - started

    def predict(images_u8: np.ndarray) -> torch.Tensor:
        logits, _ = embed(model.features, model.fc, images_u8, mean, std, device,
                          precision=config.precision, channels_last=config.channels_last)
        return logits

    logits = predict(test_images)
    tta = None  # flip test-time augmentation: mean softmax of the image and its mirror image
    if config.flip:
        tta = logit_accuracy(logits.softmax(1) + predict(test_images[..., ::-1].copy()).softmax(1), test_labels)
    metrics = {
        "task": task, "seed": seed_index, "run_seed": run_seed, "classes": output_names,
        "train_images": int(len(labels)), "test_images": int(len(test_labels)),
        "test_accuracy": logit_accuracy(logits, test_labels), "test_accuracy_flip_tta": tta,
        "train_seconds": seconds, "epochs": config.epochs, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "parameters": count_parameters(model), "mean": [float(m) for m in mean], "std": [float(s) for s in std],
    }
    metrics["at_chance"] = at_chance(metrics["test_accuracy"], len(output_names))
    log.info("test accuracy %.4f (with flip TTA %s), trained in %.1f s", metrics["test_accuracy"], tta, seconds)
    if metrics["at_chance"]:
        log.warning("this network ended at chance (test accuracy %.4f with %d classes, below %.3f); the config keys "
                    "most likely at fault: noise.train.lr, noise.train.epochs, noise.train.batch_size",
                    metrics["test_accuracy"], len(output_names), chance_threshold(len(output_names)))
    write_json(metrics, outputs["metrics"])
    architecture = {"name": "cifar_resnet", "blocks": [2, 2, 2, 2], "width": width,
                    "in_channels": int(images.shape[1]), "num_classes": len(output_names)}
    save_weights(outputs["weights"], model.state_dict(), architecture=architecture,
                 config={"task": task, "width": width, "train": dict(train),
                         "binary_classes": list(binary_classes) if task == "binary" else None},
                 seeds={"run": run_seed}, extra={"metrics": metrics})
    remove_checkpoints(options)


def _probe_sets(train_images: np.ndarray, test_images: np.ndarray, seed: int, probe: Mapping[str, Any]):
    from .probes import probe_sets

    mean, std = channel_stats(train_images)  # the probe sets follow the whole training set
    return probe_sets(probe["sets"], probe["size"], mean, std, test_images, derive_seed(seed, "noise_probe_sets"),
                      probe["lowfreq_cutoff"])


def _write_probe_tables(tables: Sequence[pd.DataFrame], outputs: Mapping[str, str]) -> None:
    for table, key in zip(tables, ("groups", "distances", "mst"), strict=True):
        write_parquet(table, outputs[key])


def probe_resnet(train_path: str, test_path: str, weights: str, outputs: Mapping[str, str], *, task: str,
                 seed_index: int, seed: int, probe: Mapping[str, Any], device: torch.device) -> None:
    """Probe one ResNet-18 with every probe set: predictions, features, distances, MST, bias split."""
    from ...engines.evaluation import embed
    from ...models import load_model
    from ...models import resnet as _resnet  # noqa: F401  (the architecture it loads)
    from .tables import probe_tables

    train, test = load_split(Path(train_path)), load_split(Path(test_path))
    model, saved = load_model(weights, device)
    metrics = saved.extra["metrics"]
    sets = _probe_sets(train.images, test.images, seed, probe)

    def run(images):
        logits, features = embed(model.features, model.fc, images, metrics["mean"], metrics["std"], device)
        return logits.numpy(), features.numpy()

    test_logits, test_features = run(test.images)
    classes = list(test.classes)
    in_distribution = [classes.index(c) for c in metrics["classes"]] if task == "binary" else None
    tables = probe_tables(
        test_logits, test_features, test.labels, classes, metrics["classes"],
        {name: run(images) for name, images in sets.items()},
        model.fc.weight.detach().cpu().numpy(), model.fc.bias.detach().cpu().numpy(), in_distribution,
    )
    source = "resnet18_binary" if task == "binary" else "resnet18"
    for table in tables:
        table.insert(0, "model", f"seed{seed_index}")
        table.insert(0, "source", source)
    _write_probe_tables(tables, outputs)
    groups = tables[0]
    for row in groups[groups["kind"] == "noise"].itertuples():
        log.info("%s: dominant %s (%.3f), mean confidence %.3f, AUROC %.3f, bias argmax %s", row.group,
                 row.dominant_name, row.dominant_fraction, row.mean_confidence, row.auroc,
                 metrics["classes"][row.bias_argmax])


def probe_population(train_path: str, test_path: str, weights: Sequence[str], outputs: Mapping[str, str], *,
                     seed: int, probe: Mapping[str, Any], device: torch.device) -> None:
    """Probe every baseline network (pair "none") of the mislabel study (``weights``: one file per
    network), like the ResNets."""
    from ...engines.evaluation import embed
    from ...models import keras_cnn as _keras_cnn  # noqa: F401  (the architectures of the networks it loads)
    from ...models import load_model
    from ...models import vgg_cnn as _vgg_cnn  # noqa: F401
    from .tables import probe_tables

    train, test = load_split(Path(train_path)), load_split(Path(test_path))
    networks = []
    for path in weights:
        network, saved = load_model(path, device)
        if saved.extra.get("pair") != BASELINE:
            raise ValueError(f"{path} holds network {saved.extra.get('network')!r}, not one of the mislabel "
                             f"study's baseline {BASELINE!r}")
        networks.append((saved.extra["network"], network, saved.architecture["name"]))
    mean, std = channel_stats(train.images)  # as rule train_population normalised
    sets = _probe_sets(train.images, test.images, seed, probe)
    classes = list(test.classes)
    collected: list[list[pd.DataFrame]] = [[], [], []]
    for name, model, architecture in networks:

        def run(images, model=model):
            logits, features = embed(model.penultimate, model.fc2, images, mean, std, device)
            return logits.numpy(), features.numpy()

        test_logits, test_features = run(test.images)
        tables = probe_tables(test_logits, test_features, test.labels, classes, classes,
                              {name: run(images) for name, images in sets.items()},
                              model.fc2.weight.detach().cpu().numpy(), model.fc2.bias.detach().cpu().numpy())
        for into, table in zip(collected, tables, strict=True):
            table.insert(0, "model", name)
            table.insert(0, "source", architecture)
            into.append(table)
        gaussian = tables[0].set_index("group")
        log.info("%s: test accuracy %.4f; dominant class of each probe set %s", name,
                 (test_logits.argmax(1) == test.labels).mean(), gaussian.loc[list(sets), "dominant_name"].to_dict())
    _write_probe_tables([pd.concat(c, ignore_index=True) for c in collected], outputs)
