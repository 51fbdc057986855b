"""Snakemake script of rule train_population: train and evaluate the populations of a pack of pairs.

A pack ("none+0-1+0-2") trains the members of all its pairs as one population; every member's
seeds, data order and labels are those of its pair alone, so results do not depend on packing.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from nnprobe.data import channel_stats, load_split
from nnprobe.mislabel import per_model_class_table
from nnprobe.mislabel_population import mislabel_members
from nnprobe.models import keras_cnn
from nnprobe.population import init_population
from nnprobe.training import default_device, evaluate_population, fit_population
from nnprobe.workflow import logged

PRECISION_DTYPES = {"64-true": torch.float64}


def main(inputs, outputs, pairs: list[str], seed: int, num_classes: int, mislabel: dict, model: dict, train: dict, log) -> None:
    train_split, test_split = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    if len(train_split.classes) != num_classes:
        raise ValueError(
            f"config key dataset.num_classes is {num_classes} but the prepared data has "
            f"{len(train_split.classes)} classes {list(train_split.classes)}; set dataset.num_classes "
            f"to {len(train_split.classes)}"
        )
    channels, height = train_split.images.shape[1], train_split.images.shape[2]
    mean, std = channel_stats(train_split.images)
    replicates = mislabel["replicates"]
    members = mislabel_members(pairs, train_split.labels, num_classes, seed, replicates, mislabel["fraction"])
    padding = {"valid": 0, "same": 1}[model["padding"]]

    def make_model(generator: torch.Generator) -> torch.nn.Module:
        return keras_cnn(channels, num_classes, height, padding, generator)

    dtype = PRECISION_DTYPES.get(train["precision"], torch.float32)
    population = init_population(make_model, [m.init_seed for m in members], dtype=dtype, layout=train["layout"])
    log.info("pairs %s: %d members, %d training images %s, mean %s std %s", "+".join(pairs), len(members),
             len(train_split.labels), train_split.images.shape[1:], mean.round(4), std.round(4))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trained = fit_population(
            population,
            train_split.images,
            np.stack([m.labels for m in members]),
            [m.order_seed for m in members],
            mean,
            std,
            epochs=train["epochs"],
            batch_size=train["batch_size"],
            optimizer=train["optimizer"],
            lr=train["lr"],
            eps=train["eps"],
            precision=train["precision"],
            accelerator=train["accelerator"],
            log_dir=Path(tmp),
            progress=train["progress"],
            compile_mode=None if train["compile"] == "none" else train["compile"],
        )
        shutil.copyfile(Path(tmp) / "metrics.csv", outputs.history)
    seconds = time.perf_counter() - started
    images_seen = len(members) * len(train_split.labels) * train["epochs"]
    log.info("trained in %.1f s: %.0f model-images/s", seconds, images_seen / seconds)
    if torch.cuda.is_available():
        log.info("peak GPU memory allocated: %.2f GiB", torch.cuda.max_memory_allocated() / 2**30)

    metrics = evaluate_population(trained, test_split.images, test_split.labels, mean, std, num_classes,
                                  default_device(train["accelerator"]))
    table = per_model_class_table(
        [pair for pair in pairs for _ in range(replicates)],
        [r for _ in pairs for r in range(replicates)],
        [m.init_seed for m in members],
        test_split.classes,
        metrics,
    )
    table.to_parquet(outputs.metrics, index=False)
    overall = metrics["accuracy"] @ metrics["n_images"] / metrics["n_images"].sum()
    log.info("test accuracy over members: mean %.4f, sd %.4f", overall.mean(), overall.std(ddof=1))

    metadata = {
        "pairs": json.dumps(pairs),
        "architecture": json.dumps({"name": model["architecture"], "in_channels": channels,
                                    "num_classes": num_classes, "input_size": height, "padding": padding}),
        "members": json.dumps([{"name": m.name, "init_seed": m.init_seed, "order_seed": m.order_seed} for m in members]),
    }
    safetensors.torch.save_file({k: v.contiguous() for k, v in trained.params.items()}, outputs.weights, metadata)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.input,  # noqa: F821
            snakemake.output,  # noqa: F821
            snakemake.wildcards.pairs.split("+"),  # noqa: F821
            log=log,
            **snakemake.params,  # noqa: F821
        )
