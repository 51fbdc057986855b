"""The jobs of the mislabel study, one function per rule: read the rule's inputs, call the
study's science, write its outputs. ``scripts/mislabel/<rule>.py`` adapts Snakemake to them.

raw data -> prepared splits -> populations (weights, per-model tables) -> per-model class
table -> Welch and information tables -> heatmaps, accuracy by pair, dendrogram.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.io import sha256_file, write_parquet
from ...core.splits import channel_stats, load_split
from ...engines.population import (
    PopulationTask,
    evaluate_population,
    init_population,
    save_population,
)
from ...engines.training import OptimizerSpec, TrainOptions, fit, remove_checkpoints
from ...models.keras_cnn import keras_cnn
from ...stats import at_chance, chance_threshold
from .design import mislabel_members
from .tables import per_model_class_table

__all__ = ["train_population"]

log = logging.getLogger("nnprobe.mislabel")


def train_population(
    train_path: str,
    test_path: str,
    outputs: Mapping[str, str],
    *,
    pairs: Sequence[str],
    seed: int,
    num_classes: int,
    replicates: Sequence[int],
    fraction: float,
    padding: str,
    train: Mapping[str, Any],
    engine: Mapping[str, Any],
    checkpoints: str,
    device: torch.device,
) -> None:
    """Train and evaluate the population of a pack of pairs and a block of replicates: ``outputs``
    weights, metrics, history.

    Every member (pair, r) of the pack and block is trained together (one population) with the
    seeds, order and labels of (pair, r) alone. The per-model table holds every member's test
    metrics per class.
    """
    replicates = [int(r) for r in replicates]
    train_split, test_split = load_split(Path(train_path)), load_split(Path(test_path))
    if len(train_split.classes) != num_classes:
        raise ValueError(
            f"config key dataset.num_classes is {num_classes} but the prepared data has "
            f"{len(train_split.classes)} classes {list(train_split.classes)}; set dataset.num_classes "
            f"to {len(train_split.classes)}"
        )
    channels, height = train_split.images.shape[1], train_split.images.shape[2]
    mean, std = channel_stats(train_split.images)
    members = mislabel_members(pairs, train_split.labels, num_classes, seed, replicates, fraction)
    width = train_split.images.shape[3]
    architecture = {"name": "keras_cnn", "in_channels": int(channels), "num_classes": num_classes,
                    "input_size": [int(height), int(width)], "padding": {"valid": 0, "same": 1}[padding]}

    def make_model(generator: torch.Generator) -> torch.nn.Module:
        return keras_cnn(channels, num_classes, (height, width), architecture["padding"], generator)

    population = init_population(make_model, [m.init_seed for m in members], layout=train["layout"])
    log.info("pairs %s: %d members, %d training images %s, mean %s std %s", "+".join(pairs), len(members),
             len(train_split.labels), train_split.images.shape[1:], mean.round(4), std.round(4))
    task = PopulationTask(
        population, train_split.images, np.stack([m.labels for m in members]), [m.order_seed for m in members],
        mean, std, train["batch_size"],
        OptimizerSpec(train["optimizer"], lr=train["lr"], eps=train["eps"]),
        compile_mode=None if train["compile"] == "none" else train["compile"],
    )
    settings = {"train": dict(train), "fraction": fraction, "padding": padding}
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=train["epochs"], device=device, precision=train["precision"],
        history=Path(outputs["history"]), name=f"population {'+'.join(pairs)} r{replicates[0]}-{replicates[-1]}",
        fingerprint={"data": sha256_file(train_path), "seed": seed, "pairs": list(pairs), "replicates": replicates,
                     **settings},
    )
    started = time.perf_counter()
    fit(task, options)
    seconds = time.perf_counter() - started
    images_seen = len(members) * len(train_split.labels) * train["epochs"]
    log.info("trained in %.1f s: %.0f model-images/s", seconds, images_seen / seconds)
    if device.type == "cuda":
        log.info("peak GPU memory allocated: %.2f GiB", torch.cuda.max_memory_allocated(device) / 2**30)

    trained = task.trained()
    metrics = evaluate_population(trained, test_split.images, test_split.labels, mean, std, num_classes, device)
    table = per_model_class_table(
        [pair for pair in pairs for _ in replicates],
        [r for _ in pairs for r in replicates],
        [m.init_seed for m in members],
        test_split.classes,
        metrics,
    )
    overall = metrics["accuracy"] @ metrics["n_images"] / metrics["n_images"].sum()
    chance = [at_chance(a, num_classes) for a in overall]
    table["at_chance"] = np.repeat(chance, num_classes)
    write_parquet(table, outputs["metrics"])
    log.info("test accuracy over members: mean %.4f, sd %.4f", overall.mean(), overall.std(ddof=1) if len(overall) > 1 else 0.0)
    if any(chance):
        log.warning("%d of %d networks ended at chance (test accuracy below %.3f with %d classes): %s; the config keys "
                    "most likely at fault: train.lr, train.epochs, train.batch_size (and model.padding for small images)",
                    sum(chance), len(chance), chance_threshold(num_classes), num_classes,
                    [m.name for m, c in zip(members, chance) if c][:10])
    save_population(outputs["weights"], trained, members, architecture,
                    config={**settings, "seed": seed, "replicates": replicates})
    remove_checkpoints(options)
