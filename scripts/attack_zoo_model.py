"""Snakemake script of rule attack_zoo_model: minimal adversarial examples of one zoo model.

Every model is attacked on the same seeded subset of test images; per image every wrong label
is tried and the closest adversarial example kept (nnprobe.szegedy.minimal_adversarial_any_target).
"""

import time

import numpy as np
import torch

from nnprobe.data import load_split
from nnprobe.seeds import derive_seed
from nnprobe.szegedy import (
    attacked_subset,
    halving_c_grid,
    load_zoo_model,
    minimal_adversarial_any_target,
    unit_pixels,
)
from nnprobe.population import default_device
from nnprobe.workflow import logged


def main(name: str, weights: str, test_path: str, seed: int, attack: dict, out: str, log) -> None:
    device = default_device()
    test = load_split(test_path)
    index = attacked_subset(len(test), attack["examples"], derive_seed(seed, "attacked_subset"))
    x = unit_pixels(test.images[index], device)
    y = torch.from_numpy(test.labels[index]).to(device)
    model = load_zoo_model(name, weights, x[0].numel(), len(test.classes), device)
    c_grid = halving_c_grid(attack["c_max"], attack["c_min"])
    log.info("attacking %s on %d test images x %d targets on %s", name, len(index), len(test.classes) - 1, device)
    start = time.perf_counter()
    res = minimal_adversarial_any_target(
        model,
        x,
        y,
        c_grid=c_grid,
        max_iter=attack["max_iter"],
        bisection_steps=attack["bisection_steps"],
        refine_steps=attack["refine_steps"],
        batch_size=attack["batch_size"],
        temperature=attack["temperature"],
        boundary_margin=attack["boundary_margin"],
    )
    seconds = time.perf_counter() - start
    failed = res.failed.cpu().numpy()
    if failed.size:
        log.warning("%d of %d images reached no wrong label: test indices %s", failed.size, len(index), index[failed].tolist())
    success = res.success.cpu().numpy()
    log.info(
        "%s: %d/%d succeeded, mean RMS distortion %.4f, %.1f s",
        name, success.sum(), len(index), float(np.nanmean(res.distortion.cpu().numpy())), seconds,
    )
    np.savez_compressed(
        out,
        index=index,
        label=y.cpu().numpy(),
        target=res.target.cpu().numpy(),
        success=success,
        distortion=res.distortion.cpu().numpy(),
        c=res.c.cpu().numpy(),
        adversarial=res.adversarial.cpu().numpy().astype(np.float32),
        seconds=np.float64(seconds),
    )


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.params.name,  # noqa: F821
            snakemake.input.weights,  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.attack,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            log,
        )
