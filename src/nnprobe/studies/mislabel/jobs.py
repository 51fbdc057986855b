"""The jobs of the mislabel study, one function per rule: read the rule's inputs, call the
study's science, write its outputs. ``scripts/mislabel/<rule>.py`` adapts Snakemake to them.

raw data -> prepared splits -> networks (weights, per-class metrics; trained as populations) ->
per-model class table -> Welch and information tables -> heatmaps, accuracy by pair, dendrogram.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.chance import at_chance, chance_threshold
from ...core.io import sha256_file, write_parquet
from ...core.naming import BASELINE, TrainingJob, network_name, parse_network_name
from ...core.splits import channel_stats, load_split
from ...core.weights import save_weights
from ...engines.population import PopulationTask, evaluate_population, init_population, resolve_layout
from ...engines.training import OptimizerSpec, TrainOptions, fit, remove_checkpoints
from ...models.keras_cnn import keras_cnn
from ...models.vgg_cnn import vgg_cnn
from .design import mislabel_members
from .plan import RESULT_KEYS
from .tables import per_model_class_table

__all__ = ["train_population", "population_architecture", "build_member", "RESULT_KEYS"]

log = logging.getLogger("nnprobe.mislabel")


def train_population(
    train_path: str,
    test_path: str,
    networks: Mapping[str, Mapping[str, str]],
    history: str,
    *,
    seed: int,
    num_classes: int,
    fraction: float | None,
    design: str = "independent",
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    speed: Mapping[str, Any],
    engine: Mapping[str, Any],
    checkpoints: str,
    device: torch.device,
) -> None:
    """Train and evaluate the networks of one job (a pack of pairs times a block of replicates) as one
    population; write each network's weights and per-class test metrics to its own files.

    ``networks`` maps every network's name (``"0-1/r003"``, :func:`~nnprobe.core.naming.network_name`)
    to its ``weights`` and ``metrics`` files; the job trains exactly those networks, each with
    the seeds, data order and labels of its (pair, replicate) alone, so its files are the same
    whichever job makes them. ``design`` (``independent`` or ``paired``: whether initialisation
    and data order are shared by replicate r of every pair, :func:`~.design.member_seeds`),
    ``model`` (architecture, padding) and ``train`` (epochs, batch size, optimizer, learning
    rate, epsilon, precision) change results, and each network's weights metadata and metrics
    rows record its design; ``speed`` (layout, compile) and ``engine`` (progress, checkpoints,
    determinism, the code version) do not.
    ``history`` is the job's epoch log as CSV.
    """
    names = list(networks)
    parsed = [parse_network_name(name) for name in names]
    pairs = list(dict.fromkeys(pair for pair, _ in parsed))
    replicates = sorted({r for _, r in parsed})
    if sorted(names) != sorted(network_name(p, r) for p in pairs for r in replicates):
        raise ValueError(f"a training job trains every replicate of every pair it names; got {names}")
    train_split, test_split = load_split(Path(train_path)), load_split(Path(test_path))
    if len(train_split.classes) != num_classes:
        raise ValueError(
            f"config key dataset.num_classes is {num_classes} but the prepared data has "
            f"{len(train_split.classes)} classes {list(train_split.classes)}; set dataset.num_classes "
            f"to {len(train_split.classes)}"
        )
    mean, std = channel_stats(train_split.images)
    if fraction is None and pairs != [BASELINE]:
        raise ValueError(f"the mislabel fraction is needed for the pairs {pairs}; only the baseline has none")
    members = mislabel_members(pairs, train_split.labels, num_classes, seed, replicates,
                               0.5 if fraction is None else fraction, design)
    architecture = population_architecture(model, train_split.images.shape[1:], num_classes)
    layout = resolve_layout(speed["layout"], device)
    population = init_population(lambda g: build_member(architecture, g), [m.init_seed for m in members],
                                 layout=layout)
    log.info("%s: %d networks of %s in the %s layout, %s design, %d training images %s, mean %s std %s",
             job_label(pairs, replicates), len(members), architecture["name"], layout, design, len(train_split.labels),
             train_split.images.shape[1:], mean.round(4), std.round(4))
    task = PopulationTask(
        population, train_split.images, np.stack([m.labels for m in members]), [m.order_seed for m in members],
        mean, std, train["batch_size"],
        OptimizerSpec(train["optimizer"], lr=train["lr"], eps=train["eps"]),
        compile_mode=None if speed["compile"] == "none" else speed["compile"],
    )
    settings = {"train": {k: train[k] for k in RESULT_KEYS}, "fraction": fraction, "model": dict(model),
                "design": design}
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=train["epochs"], device=device, precision=train["precision"],
        history=Path(history), name=f"population {job_label(pairs, replicates)}",
        fingerprint={"data": sha256_file(train_path), "seed": seed, "pairs": pairs, "replicates": replicates,
                     "layout": layout, "compile": speed["compile"], **settings},
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
    overall = metrics["accuracy"] @ metrics["n_images"] / metrics["n_images"].sum()
    chance = [at_chance(a, num_classes) for a in overall]
    for k, member in enumerate(members):
        pair, replicate = parse_network_name(member.name)
        table = per_model_class_table([pair], [replicate], [member.init_seed], test_split.classes,
                                      {key: value[k : k + 1] if key != "n_images" else value
                                       for key, value in metrics.items()}, design=design)
        table["at_chance"] = chance[k]
        write_parquet(table, networks[member.name]["metrics"])
        save_weights(networks[member.name]["weights"], trained.member_state(k), architecture=architecture,
                     config={**settings, "seed": seed},
                     seeds={"init_seed": member.init_seed, "order_seed": member.order_seed},
                     extra={"network": member.name, "pair": pair, "replicate": replicate,
                            "test_accuracy": float(overall[k])})
    log.info("test accuracy over networks: mean %.4f, sd %.4f", overall.mean(),
             overall.std(ddof=1) if len(overall) > 1 else 0.0)
    if any(chance):
        log.warning("%d of %d networks ended at chance (test accuracy below %.3f with %d classes): %s; the config keys "
                    "most likely at fault: train.lr, train.epochs, train.batch_size (and model.padding for small images)",
                    sum(chance), len(chance), chance_threshold(num_classes), num_classes,
                    [m.name for m, c in zip(members, chance) if c][:10])
    remove_checkpoints(options)


def job_label(pairs: Sequence[str], replicates: Sequence[int]) -> str:
    """How logs name a job: its first and last pair and its replicates (``"0-1..0-9/r0-9"``)."""
    return TrainingJob(tuple(pairs), tuple(replicates)).label


def population_architecture(model: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
    """The description (as weights files record it) of the network ``model`` (config section) names
    for images of ``image_shape`` ``(C, H, W)``: the Keras tutorial CNN (with its padding) or the
    deeper VGG-style CNN."""
    channels, height, width = (int(v) for v in image_shape)
    common = {"in_channels": channels, "num_classes": int(num_classes), "input_size": [height, width]}
    if model["architecture"] == "keras_cnn":
        return {"name": "keras_cnn", **common, "padding": {"valid": 0, "same": 1}[model["padding"]]}
    if model["architecture"] == "vgg_cnn":
        return {"name": "vgg_cnn", **common, "width": int(model.get("width", 32))}
    raise ValueError(f"config key model.architecture must be keras_cnn or vgg_cnn, got {model['architecture']!r}")


def build_member(architecture: Mapping[str, Any], generator: torch.Generator) -> torch.nn.Module:
    """One network of ``architecture``, initialised from ``generator`` (Glorot-uniform, as Keras)."""
    arguments = {k: v for k, v in architecture.items() if k != "name"}
    if architecture["name"] == "keras_cnn":
        return keras_cnn(generator=generator, **arguments)
    return vgg_cnn(generator=generator, **arguments)
