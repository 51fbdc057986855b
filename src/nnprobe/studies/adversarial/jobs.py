"""The jobs of the adversarial study, one function per rule: read the rule's inputs, call the
study's science, write its outputs. ``scripts/adversarial/<rule>.py`` adapts Snakemake to them.

MNIST -> the zoo (all of MNIST, P1, P2) -> minimal adversarial examples per model; units. The
transfer tables' jobs are :mod:`nnprobe.studies.adversarial.transfer_jobs` and the
adversarial-training job :func:`nnprobe.studies.adversarial.regimes.adversarial_training`: apart,
so that a change to a table or a training regime reruns its own jobs and never the zoo or its
attacks (a rule's code inputs are the modules its script imports).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.chance import at_chance
from ...core.io import sha256_file, write_json, write_npz
from ...core.seeds import derive_seed, seeded_subset
from ...core.splits import load_split
from ...core.weights import save_weights
from ...engines.evaluation import error_rate
from ...engines.training import TrainOptions, remove_checkpoints
from ...models import load_model
from .design import p1_p2_split, unit_pixels
from .training import train_zoo_model
from .zoo import zoo_architecture

# The attack and the unit inspection are imported inside their jobs: a rule's code inputs are the
# modules its script imports (nnprobe.core.provenance), and the zoo's training job must not
# depend on (and retrain when) the attack or the unit inspection changes.

__all__ = ["attack_zoo", "train_zoo", "unit_inspection"]

log = logging.getLogger("nnprobe.adversarial")



def _data(train_path: str, test_path: str, device: torch.device):
    train, test = load_split(train_path), load_split(test_path)
    x, y = unit_pixels(train.images, device), torch.from_numpy(train.labels).to(device)
    xt, yt = unit_pixels(test.images, device), torch.from_numpy(test.labels).to(device)
    return train, test, x, y, xt, yt


def train_zoo(train_path: str, test_path: str, outputs: Mapping[str, str], *, name: str, trainset: str, seed: int,
              settings: Mapping[str, Any], engine: Mapping[str, Any], checkpoints: str, device: torch.device) -> None:
    """Train the zoo model ``name`` on all training images, P1 or P2; write its weights and errors.

    ``settings`` are the config's ``adversarial`` keys epochs, ae_epochs, batch_size, lr,
    schedule, decay_normalization and the autoencoder's ae_weight_decay, ae_sparsity_target,
    ae_sparsity_weight, ae_reconstruction and ae_finetune (:func:`~.training.train_zoo_model`).
    The halves P1/P2 are seeded by the config seed alone, so every rule sees the same halves.
    The metrics of AE400-10 add the mean activation of its code on the training images.
    """
    train, _, x, y, xt, yt = _data(train_path, test_path, device)
    p1, p2 = (torch.from_numpy(i).to(device) for i in p1_p2_split(len(train), derive_seed(seed, "p1_p2_split")))
    rows = {"full": torch.arange(len(train), device=device), "p1": p1, "p2": p2}[trainset]
    model_seed = derive_seed(seed, "train_zoo_model", trainset, name)
    log.info("training %s on %s (%d images), seed %d", name, trainset, rows.numel(), model_seed)
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=settings["epochs"], device=device, name=name,
        fingerprint={"data": sha256_file(train_path), "model": name, "trainset": trainset, "seed": model_seed,
                     **dict(settings)},
    )
    started = time.perf_counter()
    model, _ = train_zoo_model(
        name, x[rows], y[rows], options, ae_epochs=settings["ae_epochs"], batch_size=settings["batch_size"],
        lr=settings["lr"], seed=model_seed, normalize=settings["decay_normalization"], schedule=settings["schedule"],
        ae_weight_decay=settings["ae_weight_decay"], sparsity_target=settings["ae_sparsity_target"],
        sparsity_weight=settings["ae_sparsity_weight"], reconstruction=settings["ae_reconstruction"],
        finetune=settings["ae_finetune"], num_classes=len(train.classes),
    )
    metrics = {
        "model": name,
        "trainset": trainset,
        "train_images": int(rows.numel()),
        "train_error": error_rate(model, x[rows], y[rows]),
        "test_error": error_rate(model, xt, yt),
        "test_images": int(yt.numel()),
        "p1_error": error_rate(model, x[p1], y[p1]),
        "p2_error": error_rate(model, x[p2], y[p2]),
        "train_seconds": time.perf_counter() - started,
        "device": str(device),
        "seed": model_seed,
    }
    if hasattr(model, "code"):  # AE400-10: how sparse its code is (the sparsity target is ae_sparsity_target)
        with torch.no_grad():
            metrics["mean_code_activation"] = float(sum(model.code(x[i]).sum() for i in rows.split(4096))
                                                    / (rows.numel() * model.encoder.out_features))
    metrics["at_chance"] = at_chance(1.0 - metrics["test_error"], len(train.classes))
    log.info("%s", metrics)
    if metrics["at_chance"]:
        log.warning("%s ended at chance (test error %.4f with %d classes); the config keys most likely at fault: "
                    "adversarial.epochs, adversarial.lr, adversarial.batch_size", name, metrics["test_error"],
                    len(train.classes))
    save_weights(outputs["weights"], model.state_dict(), architecture=zoo_architecture(model),
                 config={"model": name, "trainset": trainset, **dict(settings)}, seeds={"model": model_seed},
                 extra={"metrics": metrics})
    write_json(metrics, outputs["metrics"])
    remove_checkpoints(options)


def attack_zoo(weights: str, images_path: str, output: str, *, seed: int, attack: Mapping[str, Any],
               device: torch.device) -> None:
    """Minimal adversarial examples of one model (:func:`~.attacks.attack_record`): the paper's
    attack with one seeded random target per image, and the nearest-target extra.

    ``images_path`` is the prepared split attacked: the training images for the zoo (Tables 1-2,
    "distortion necessary to reach 0% accuracy on the training set"), the test images for the
    models of P1 and P2 (Tables 3-4). The images and their targets are seeded by the config
    seed alone, so every model of a table is attacked on the same images toward the same labels.
    """
    from .attacks import attack_record, random_wrong_labels
    from .records import adversarial_rows, attack_counts, nearest_distortions

    split = load_split(images_path)
    index = seeded_subset(len(split), attack["examples"], derive_seed(seed, "attacked_subset"))
    labels = split.labels[index]
    target = random_wrong_labels(labels, len(split.classes), derive_seed(seed, "attack_target"))
    x = unit_pixels(split.images[index], device)
    model, saved = load_model(weights, device)
    name = saved.config.get("model", weights)
    # The nearest-target extra costs (classes - 1) paper attacks per image: a seeded part of the images.
    nearest = seeded_subset(len(index), attack["nearest_target"]["examples"], derive_seed(seed, "nearest_subset"))
    log.info("attacking %s on %d images of %s, one random target each%s", name, len(index), images_path,
             f" (and every target of {len(nearest)} of them for the nearest-target column)"
             if attack["nearest_target"]["enabled"] else "")
    record = attack_record(model, x, torch.from_numpy(labels).to(device), torch.from_numpy(target).to(device),
                           attack, nearest)
    counts = attack_counts(record)
    if counts["already_wrong"]:
        log.info("%d of %d images already misclassified: excluded from distortions and transfer rates",
                 counts["already_wrong"], len(index))
    if counts["failed"]:
        failed = record["correct"] & ~record["success"]
        log.warning("%d of %d images reached no target: indices %s", counts["failed"], len(index),
                    index[failed].tolist())
    kept = record["distortion"][adversarial_rows(record)]
    log.info("%s: %d/%d succeeded, mean RMS distortion %.4f over the %d correctly classified images, %.1f s",
             name, int(record["success"].sum()), len(index), kept.mean() if kept.size else float("nan"), kept.size,
             record["seconds"])
    if (near := nearest_distortions(record)) is not None:
        log.info("%s, nearest target: mean RMS distortion %.4f over %d images, %.1f s",
                 name, near.mean() if near.size else float("nan"), near.size, record["nearest_seconds"])
    write_npz({"index": index, "split": np.array(Path(images_path).stem), "label": labels, **record}, output,
              compressed=True)


def unit_inspection(weights: str, test_path: str, output: str, *, seed: int, units: Mapping[str, Any],
                    device: torch.device) -> None:
    """The top test images of random hidden units and of random directions (Sec. 3), as arrays
    for the figure (rule units_figure)."""
    from .units import unit_image_rows

    test = load_split(test_path)
    x = unit_pixels(test.images, device)
    model, _ = load_model(weights, device)
    with torch.no_grad():
        layers = model.hidden(x)
    if not units["layer"] < len(layers):
        raise ValueError(f"config key adversarial.units.layer is {units['layer']}, but {units['model']} has "
                         f"{len(layers)} hidden layer(s); choose a layer below {len(layers)}")
    acts = layers[units["layer"]]
    rows, chosen = unit_image_rows(acts, test.images.astype(np.float64) / 255.0, units=units["units"],
                                   directions=units["directions"], top_k=units["top_k"],
                                   seed=derive_seed(seed, "unit_inspection"))
    title = (f"{units['model']}, hidden layer {units['layer']} ({acts.shape[1]} units): "
             f"top {units['top_k']} test images")
    write_npz({"names": np.array(list(rows)), "images": np.stack(list(rows.values())).astype(np.float32),
               "title": np.array(title), "units": chosen}, output)
    log.info("units %s", chosen.tolist())
