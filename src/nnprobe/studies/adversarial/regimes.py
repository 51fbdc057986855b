"""One FC100-100-10 trained under one regime of the adversarial-training comparison.

Szegedy et al. (2013), Sec. 4.2: "we have successfully trained a two layer 100-100-10
non-convolutional neural network with a test error below 1.2% by keeping a pool of adversarial
examples a random subset of which is continuously replaced by newly generated adversarial
examples and which is mixed into the original training set all the time. We used weight decay,
but no dropout for this network. For comparison, a network of this size gets to 1.6% errors
when regularized by weight decay alone and can be improved to around 1.3% by using carefully
applied dropout." The regimes and the config keys each reads are
:mod:`nnprobe.studies.adversarial.plan`'s; :func:`train_regime` builds and trains one network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from ...core.io import sha256_file, write_json, write_parquet
from ...core.seeds import derive_seed
from ...core.splits import load_split
from ...engines.evaluation import error_rate
from ...engines.training import TrainOptions, fit, remove_checkpoints
from .design import unit_pixels
from .monitor import TrainingMonitor
from .perturbed import MonitoredZooTask, PerturbedTrainingTask
from .plan import POOL_REGIMES, REGIMES
from .pools import AdversarialPoolTask
from .zoo import ZOO, build_zoo_model

__all__ = ["ADVERSARIAL_TRAINING_MODEL", "adversarial_training", "train_regime"]

log = logging.getLogger("nnprobe.adversarial")

ADVERSARIAL_TRAINING_MODEL = "FC100-100-10"
"""The network of the adversarial-training comparison (Sec. 4.2's 100-100-10)."""


def train_regime(regime: str, images: torch.Tensor, labels: torch.Tensor, settings: Mapping[str, Any],
                 options: TrainOptions, *, seed: int, num_classes: int = 10) -> tuple[nn.Module, dict, list[dict]]:
    """Build FC100-100-10 from ``seed`` and train it under ``regime`` on ``images`` (pixels in [0, 1]).

    ``settings`` are :func:`~nnprobe.studies.adversarial.plan.regime_settings`'s. Every regime
    starts from the same weights (initialisation seed ``seed``) and visits the clean images in
    the same order (``seed + 2``, as :func:`~.training.train_zoo_model` does), with the zoo's
    weight decay and recipe; only the dropout regime's network has dropout. The monitor watches
    ``settings["monitor_images"]`` seeded training images. Returns the network (eval mode), the
    regime's own statistics (the pools' sizes, counts and distortions) and the monitor's rows.
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {list(REGIMES)}, got {regime!r}")
    name = ADVERSARIAL_TRAINING_MODEL
    dropout = tuple(settings["dropout"]) if regime == "dropout" else None
    model = build_zoo_model(name, images[0].numel(), num_classes, torch.Generator().manual_seed(int(seed)), dropout)
    model = model.to(images.device)
    monitor = TrainingMonitor(images, settings["monitor_images"], seed + 3)
    recipe = {"weight_decay": ZOO[name].weight_decay, "normalize": settings["decay_normalization"],
              "batch_size": settings["batch_size"], "lr": settings["lr"], "schedule": settings["schedule"],
              "order_seed": seed + 2, "monitor": monitor}
    if regime in POOL_REGIMES:
        task = AdversarialPoolTask(
            model, images, labels, layers=settings["layers"], pool_size=settings["pool_size"],
            refresh_every=settings["refresh_every"], refresh_size=settings["refresh_size"],
            pool_fraction=settings["pool_fraction"], warmup_epochs=settings["warmup_epochs"],
            attack=settings["attack"], num_classes=num_classes, max_distortion=settings["max_distortion"],
            recompute=settings["recompute"], **recipe)
    elif regime in ("gradient_sign", "random_sign"):
        task = PerturbedTrainingTask(model, images, labels, direction=settings["direction"],
                                     epsilon=settings["epsilon"], adversarial_weight=settings["adversarial_weight"],
                                     steps=settings["steps"], step_size=settings["step_size"], **recipe)
    else:
        task = MonitoredZooTask(model, images, labels, **recipe)
    fit(task, options)
    task.finish(options.epochs)
    model.eval()
    stats: dict[str, Any] = {}
    if isinstance(task, AdversarialPoolTask):
        pools = task.summary()
        stats = {"pool_size": sum(pools[f"pool_{layer}_size"] for layer in task.layers),
                 "pool_layers": ",".join(task.layers), **pools}
    return model, stats, monitor.rows


def adversarial_training(train_path: str, test_path: str, outputs: Mapping[str, str], *, regime: str,
                         replicate: int, seed: int, settings: Mapping[str, Any], engine: Mapping[str, Any],
                         checkpoints: str, device: torch.device) -> None:
    """The job of rule adversarial_training: one FC100-100-10 under one regime (:func:`train_regime`).

    The replicate's seed is shared by every regime: they start from the same weights and see
    the clean images in the same order. ``settings`` are the regime's config keys
    (:func:`~.plan.regime_settings`); the learning-rate schedule spans the regime's own epochs.
    Writes the network's record (``outputs["record"]``: errors, time, the pools' statistics)
    and its monitor log (``outputs["monitor"]``: one row per refresh or epoch, with the clean
    training error).
    """
    train, test = load_split(train_path), load_split(test_path)
    x, y = unit_pixels(train.images, device), torch.from_numpy(train.labels).to(device)
    xt, yt = unit_pixels(test.images, device), torch.from_numpy(test.labels).to(device)
    model_seed = derive_seed(seed, "adversarial_training", replicate)
    log.info("%s, replicate %d, seed %d, %d epochs: %s", regime, replicate, model_seed, settings["epochs"],
             dict(settings))
    options = TrainOptions.from_config(
        engine, checkpoint_dir=checkpoints, epochs=settings["epochs"], device=device, name=f"{regime} {replicate}",
        fingerprint={"data": sha256_file(train_path), "regime": regime, "seed": model_seed, **dict(settings)},
    )
    started = time.perf_counter()
    model, stats, rows = train_regime(regime, x, y, settings, options, seed=model_seed,
                                      num_classes=len(train.classes))
    if stats:
        log.info("pools: %s", stats)
    result = {"regime": regime, "replicate": replicate, "seed": model_seed, "epochs": settings["epochs"],
              "train_error": error_rate(model, x, y), "test_error": error_rate(model, xt, yt),
              "train_seconds": time.perf_counter() - started, "device": str(device), **stats}
    log.info("%s", result)
    monitor = pd.DataFrame(rows).assign(regime=regime, replicate=replicate)
    log.info("monitor (clean training error on %s images):\n%s", rows[-1]["monitor_images"] if rows else 0,
             monitor.iloc[:: max(1, len(monitor) // 12)].to_string(index=False))
    write_parquet(monitor, outputs["monitor"])
    write_json(result, outputs["record"])
    remove_checkpoints(options)
