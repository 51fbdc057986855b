"""Snakemake script of rule train_zoo_model: one model of the Szegedy et al. zoo on all, P1 or P2."""

import time

import torch

from nnprobe.data import load_split, write_json_atomic
from nnprobe.seeds import derive_seed
from nnprobe.szegedy import error_rate, p1_p2_split, save_zoo_model, train_zoo_model, unit_pixels
from nnprobe.population import default_device
from nnprobe.workflow import logged


def main(name: str, trainset: str, train_path: str, test_path: str, seed: int, adv: dict, out, log) -> None:
    device = default_device()
    train, test = load_split(train_path), load_split(test_path)
    x, y = unit_pixels(train.images, device), torch.from_numpy(train.labels).to(device)
    xt, yt = unit_pixels(test.images, device), torch.from_numpy(test.labels).to(device)
    # The same halves for every model and rule: seeded by the config seed alone.
    p1, p2 = (torch.from_numpy(i).to(device) for i in p1_p2_split(len(train), derive_seed(seed, "p1_p2_split")))
    rows = {"full": torch.arange(len(train), device=device), "p1": p1, "p2": p2}[trainset]
    model_seed = derive_seed(seed, "train_zoo_model", trainset, name)
    log.info("training %s on %s (%d images) on %s, seed %d", name, trainset, rows.numel(), device, model_seed)
    start = time.perf_counter()
    model = train_zoo_model(
        name,
        x[rows],
        y[rows],
        epochs=adv["epochs"],
        ae_epochs=adv["ae_epochs"],
        batch_size=adv["batch_size"],
        lr=adv["lr"],
        seed=model_seed,
        normalize=adv["decay_normalization"],
        num_classes=len(train.classes),
    )
    seconds = time.perf_counter() - start
    metrics = {
        "model": name,
        "trainset": trainset,
        "train_images": int(rows.numel()),
        "train_error": error_rate(model, x[rows], y[rows]),
        "test_error": error_rate(model, xt, yt),
        "p1_error": error_rate(model, x[p1], y[p1]),
        "p2_error": error_rate(model, x[p2], y[p2]),
        "train_seconds": seconds,
        "device": str(device),
        "seed": model_seed,
    }
    log.info("%s", metrics)
    save_zoo_model(model, out.weights)
    write_json_atomic(metrics, out.metrics)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.params.name,  # noqa: F821
            snakemake.wildcards.trainset,  # noqa: F821
            snakemake.input.train,  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.adversarial,  # noqa: F821
            snakemake.output,  # noqa: F821
            log,
        )
