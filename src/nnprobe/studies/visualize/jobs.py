"""The jobs of the visualize study, one function per rule: read the rule's inputs, call the
study's science, write its outputs. ``scripts/visualize/<rule>.py`` adapts Snakemake to them.

prepared splits -> four networks (natural, backdoor, adversarial, topdown) -> evaluation,
class-wise patterns, feature visualisations (also of the mislabel baseline) -> tables, figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...core.chance import at_chance, chance_threshold
from ...core.io import sha256_file, write_npz, write_parquet
from ...core.seeds import derive_seed, seeded_subset
from ...core.splits import channel_stats, load_split
from ...core.weights import save_weights
from .backdoor import badnets_poison, trigger_region, trigger_success

# Each job imports the code only it runs inside its function: a job's code inputs (the modules
# it imports, nnprobe.core.provenance) are then exactly what it runs, so editing the feature
# visualisations does not retrain a network.

__all__ = ["TRAINED", "train_network", "class_patterns_of", "features_of"]

log = logging.getLogger("nnprobe.visualize")

TRAINED = ("natural", "backdoor", "adversarial", "topdown")
"""The study's own networks: the standard CNN trained naturally, on BadNets-poisoned data and with
PGD, and the top-down network."""


def _poisoned(images: torch.Tensor, labels: torch.Tensor, backdoor: Mapping[str, Any], seed: int):
    """The training set exactly as the backdoor network sees it (seeded by the config seed alone)."""
    return badnets_poison(images, labels, fraction=backdoor["poison_fraction"], target=backdoor["target_class"],
                          size=backdoor["trigger_size"], margin=backdoor["trigger_margin"],
                          seed=derive_seed(seed, "visualize_train", "backdoor", "poison"))


def train_network(train_path: str, test_path: str, outputs: Mapping[str, str], *, name: str, seed: int,
                  train: Mapping[str, Any], backdoor: Mapping[str, Any], adversarial: Mapping[str, Any],
                  engine: Mapping[str, Any], checkpoints: str, device: torch.device) -> None:
    """Train one network of the study and evaluate it: clean accuracy, the trigger's success rate
    (a control for all but the backdoor network) and PGD robust accuracy per radius."""
    from ...engines.evaluation import accuracy
    from ...engines.pgd import PGD, robust_accuracy
    from ...engines.training import TrainOptions, fit, remove_checkpoints
    from ...models import count_parameters
    from ...models.init import Normalized
    from ...models.topdown import standard_cnn, topdown_net
    from .training import VisualizeTask

    train_split, test = load_split(Path(train_path)), load_split(Path(test_path))
    channels, num_classes = train_split.images.shape[1], len(train_split.classes)
    if backdoor["target_class"] >= num_classes:
        raise ValueError(f"config key visualize.backdoor.target_class is {backdoor['target_class']}, but the data has "
                         f"{num_classes} classes; choose a class in [0, {num_classes - 1}]")
    mean, std = channel_stats(train_split.images)
    images = torch.from_numpy(train_split.images).to(device)
    labels = torch.from_numpy(train_split.labels).to(device)
    if name == "backdoor":
        images, labels, poisoned = _poisoned(images, labels, backdoor, seed)
        log.info("BadNets: %d of %d training images carry the trigger, relabelled %s", int(poisoned.sum()),
                 len(labels), train_split.classes[backdoor["target_class"]])
    kind = "topdown" if name == "topdown" else "standard"
    architecture = {"name": f"{kind}_{'net' if kind == 'topdown' else 'cnn'}", "in_channels": int(channels),
                    "num_classes": num_classes, "width": train["width"],
                    "input": {"mean": mean.tolist(), "std": std.tolist()}}
    builder = topdown_net if kind == "topdown" else standard_cnn
    generator = torch.Generator().manual_seed(derive_seed(seed, "visualize_train", name, "init"))
    model = Normalized(builder(channels, num_classes, train["width"], generator), mean, std).to(device)
    attack = None
    if name == "adversarial":
        attack = PGD(adversarial["train_epsilon"] / 255, adversarial["train_steps"], adversarial["train_step_size"] / 255)
    log.info("%s: %s, %d parameters, %d training images %s", name, type(model.net).__name__, count_parameters(model),
             len(labels), tuple(images.shape[1:]))
    order_seed = derive_seed(seed, "visualize_train", name, "order")
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=train["epochs"], device=device, history=Path(outputs["history"]),
        name=name, fingerprint={"data": sha256_file(train_path), "network": name, "seed": order_seed,
                                "train": dict(train), "backdoor": dict(backdoor), "adversarial": dict(adversarial)},
    )
    started = time.perf_counter()
    fit(VisualizeTask(model, images, labels, batch_size=train["batch_size"], lr=train["lr"],
                      weight_decay=train["weight_decay"], seed=order_seed, flip=train["flip"], adversarial=attack),
        options)
    train_seconds = time.perf_counter() - started

    test_images = torch.from_numpy(test.images).to(device)
    test_labels = torch.from_numpy(test.labels).to(device)
    target = backdoor["target_class"]
    rows = [{"metric": "clean_accuracy", "epsilon": 0.0, "value": accuracy(model, test_images, test_labels),
             "n_images": len(test_labels)},
            {"metric": "trigger_success", "epsilon": 0.0,
             "value": trigger_success(model, test_images, test_labels, target, backdoor["trigger_size"],
                                      backdoor["trigger_margin"]),
             "n_images": int((test_labels != target).sum())}]
    attacked = torch.from_numpy(seeded_subset(len(test_labels), adversarial["eval_images"] or len(test_labels),
                                              derive_seed(seed, "visualize_train", "pgd_images"))).to(device)
    for eps in adversarial["eval_epsilons"]:
        value = robust_accuracy(model, test_images[attacked], test_labels[attacked],
                                PGD.madry(eps / 255, adversarial["eval_steps"]),
                                derive_seed(seed, "visualize_train", name, "pgd", eps))
        rows.append({"metric": "robust_accuracy", "epsilon": float(eps), "value": value,
                     "n_images": len(attacked)})
    eval_seconds = time.perf_counter() - started - train_seconds
    chance = at_chance(rows[0]["value"], num_classes)
    metrics = pd.DataFrame(rows).assign(model=name, architecture=kind, parameters=count_parameters(model),
                                        train_seconds=train_seconds, eval_seconds=eval_seconds, at_chance=chance)
    write_parquet(metrics, outputs["metrics"])
    for row in rows:
        log.info("%s (eps %g/255): %.4f", row["metric"], row["epsilon"], row["value"])
    log.info("trained in %.1f s, evaluated in %.1f s", train_seconds, eval_seconds)
    if chance:
        keys = ["visualize.train.lr", "visualize.train.epochs", "visualize.train.batch_size"]
        keys += ["visualize.adversarial.train_epsilon", "visualize.adversarial.train_steps"] if name == "adversarial" else []
        log.warning("%s ended at chance (clean test accuracy %.4f with %d classes, below %.3f): its patterns and "
                    "visualisations show an untrained network; the config keys most likely at fault: %s",
                    name, rows[0]["value"], num_classes, chance_threshold(num_classes), ", ".join(keys))
    save_weights(outputs["weights"], model.state_dict(), architecture=architecture,
                 config={"network": name, "train": dict(train), "backdoor": dict(backdoor),
                         "adversarial": dict(adversarial), "classes": list(train_split.classes)},
                 seeds={"order": order_seed})
    remove_checkpoints(options)


def class_patterns_of(train_path: str, test_path: str, weights: str, outputs: Mapping[str, str], *, name: str,
                      seed: int, patterns: Mapping[str, Any], backdoor: Mapping[str, Any], progress: bool,
                      device: torch.device) -> None:
    """The class-wise patterns of one network (Zhao et al. 2021), searched on training images the
    network saw clean and scored on test images; where they lie relative to the BadNets trigger."""
    from ...engines.evaluation import to_unit
    from ...models import load_model
    from ...models import topdown as _topdown  # noqa: F401  (the architectures it loads)
    from .patterns import choose_canvases, class_patterns, predictive_power, region_overlap, top_k_mask
    from .tables import class_pattern_table

    train, test = load_split(Path(train_path)), load_split(Path(test_path))
    model, _ = load_model(weights, device)
    num_classes = len(train.classes)
    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    poisoned = torch.zeros(len(labels), dtype=torch.bool, device=device)
    seen_images, seen_labels = images, labels
    if name == "backdoor":  # canvases come from the training set as the network saw it
        seen_images, seen_labels, poisoned = _poisoned(images, labels, backdoor, seed)
    canvas_index = choose_canvases(model, seen_images, seen_labels, num_classes)
    canvases = to_unit(seen_images[canvas_index])
    pool = torch.nonzero(~poisoned).flatten()  # a seeded subset of the clean images, every class in it
    clean = pool[torch.from_numpy(seeded_subset(len(pool), patterns["search_images"],
                                                derive_seed(seed, "visualize_patterns", "search"))).to(device)]
    started = time.perf_counter()
    masks, history = class_patterns(
        model, canvases, images[clean], labels[clean], steps=patterns["steps"], lr=patterns["lr"], l1=patterns["l1"],
        batch_size=patterns["batch_size"], seed=derive_seed(seed, "visualize_patterns", name), progress=progress)
    seconds = time.perf_counter() - started
    binary = top_k_mask(masks, patterns["fraction"])
    test_images = torch.from_numpy(test.images).to(device)
    test_labels = torch.from_numpy(test.labels).to(device)
    power = predictive_power(model, canvases, binary, test_images, test_labels)
    rows, cols = trigger_region(*train.images.shape[-2:], backdoor["trigger_size"], backdoor["trigger_margin"])
    in_region, covered = region_overlap(binary, rows, cols)
    table = class_pattern_table(
        name, train.classes, masks=masks.cpu().numpy(), patterns=binary.cpu().numpy(), power=power.numpy(),
        in_region=in_region.cpu().numpy(), region_covered=covered.cpu().numpy(),
        canvas_index=canvas_index.cpu().numpy(), canvas_poisoned=poisoned[canvas_index].cpu().numpy(),
        target=backdoor["target_class"], search_images=len(clean),
        eval_images=[int((test_labels != c).sum()) for c in range(num_classes)], seconds=seconds)
    write_parquet(table, outputs["table"])
    log.info("masks in %.1f s; final %s", seconds, history[-1])
    for row in table.itertuples():
        log.info("class %s: predictive power %.3f, %.0f%% of the pattern in the trigger region%s", row.class_name,
                 row.predictive_power, 100 * row.in_trigger_region, " (canvas poisoned)" if row.canvas_poisoned else "")
    write_npz({"canvases": canvases.cpu().numpy(), "masks": masks.cpu().numpy(), "patterns": binary.cpu().numpy(),
               "predictive_power": power.numpy(), "classes": np.array(train.classes),
               "trigger": np.array([rows.start, rows.stop, cols.start, cols.stop]),
               "target": np.array(backdoor["target_class"])}, outputs["arrays"])


def features_of(train_path: str, test_path: str, weights: str, output: str, *, name: str, seed: int,
                features: Mapping[str, Any], regularizers: Mapping[str, Any], progress: bool,
                device: torch.device) -> None:
    """The feature visualisations of one network (``name`` "mislabel": the mislabel study's first
    baseline network)."""
    from ...models import load_model
    from ...models import topdown as _topdown  # noqa: F401  (the architectures it loads)
    from .features import mislabel_baseline, visualize_features

    train, test = load_split(Path(train_path)), load_split(Path(test_path))
    if name == "mislabel":
        model = mislabel_baseline(weights, *channel_stats(train.images)).to(device)
    else:
        model, _ = load_model(weights, device)
    seeds = {method: derive_seed(seed, "visualize_features", name, method) for method in ("am", "caricature", "inversion")}
    arrays = visualize_features(
        model, train.images, torch.from_numpy(test.images).to(device), torch.from_numpy(test.labels).to(device),
        list(train.classes), features=features, regularizers=regularizers, seeds=seeds, progress=progress, name=name)
    write_npz(arrays, output)
