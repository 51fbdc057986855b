"""Snakemake script of rule adversarial_training: one FC100-100-10 under one regime and seed.

Regimes (Szegedy et al. 2013, Sec. 4.3): weight_decay (the zoo's decay only), dropout (plus
dropout on pixels and hidden units), adversarial_pool (plus a continually refreshed pool of
minimal adversarial examples). The replicate's seed is shared by the three regimes, so that
they start from the same initial weights and see the clean images in the same order.
"""

import time

import numpy as np
import torch

from nnprobe.data import load_split, write_json_atomic
from nnprobe.seeds import derive_seed
from nnprobe.szegedy import (
    ZOO,
    build_zoo_model,
    error_rate,
    train_with_adversarial_pool,
    train_zoo_model,
    unit_pixels,
)
from nnprobe.population import default_device
from nnprobe.workflow import logged

NAME = "FC100-100-10"


def main(regime: str, replicate: int, train_path: str, test_path: str, seed: int, adv: dict, out: str, log) -> None:
    device = default_device()
    train, test = load_split(train_path), load_split(test_path)
    x, y = unit_pixels(train.images, device), torch.from_numpy(train.labels).to(device)
    xt, yt = unit_pixels(test.images, device), torch.from_numpy(test.labels).to(device)
    cfg = adv["adversarial_training"]
    model_seed = derive_seed(seed, "adversarial_training", replicate)
    common = {"epochs": cfg["epochs"], "batch_size": adv["batch_size"], "lr": adv["lr"], "normalize": adv["decay_normalization"]}
    log.info("%s, replicate %d, seed %d, on %s", regime, replicate, model_seed, device)
    start = time.perf_counter()
    pool_stats = {}
    if regime == "adversarial_pool":
        # Built and seeded as train_zoo_model does (init: seed, clean batch order: seed + 2).
        model = build_zoo_model(NAME, x[0].numel(), len(train.classes), torch.Generator().manual_seed(model_seed)).to(device)
        _, pool = train_with_adversarial_pool(
            model,
            x,
            y,
            ZOO[NAME].weight_decay,
            pool_size=cfg["pool_size"],
            refresh_every=cfg["refresh_every"],
            refresh_size=cfg["refresh_size"],
            pool_fraction=cfg["pool_fraction"],
            seed=model_seed + 2,
            attack={"c_grid": cfg["c_grid"], "max_iter": cfg["max_iter"], "bisection_steps": 0, "refine_steps": 0},
            **common,
        )
        pool_stats = {
            "pool_size": len(pool),
            "pool_generated": pool.generated,
            "pool_failed": pool.failed,
            "pool_mean_distortion": float(np.mean(pool.distortions)) if pool.distortions else float("nan"),
        }
        log.info("pool: %s", pool_stats)
    else:
        dropout = tuple(cfg["dropout"]) if regime == "dropout" else None
        model = train_zoo_model(NAME, x, y, seed=model_seed, dropout=dropout, num_classes=len(train.classes), **common)
    seconds = time.perf_counter() - start
    result = {
        "regime": regime,
        "replicate": replicate,
        "seed": model_seed,
        "train_error": error_rate(model, x, y),
        "test_error": error_rate(model, xt, yt),
        "train_seconds": seconds,
        "device": str(device),
        **pool_stats,
    }
    log.info("%s", result)
    write_json_atomic(result, out)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.wildcards.regime,  # noqa: F821
            int(snakemake.wildcards.replicate),  # noqa: F821
            snakemake.input.train,  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.adversarial,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            log,
        )
