"""Benchmark: the training engine against the hand-written loops it replaced, family by family.

For each family of network the studies train, it times, in one run on the same data, the loop
the family had before the engine (reproduced here as it was, with its own data order) and the
engine (``nnprobe.engines.training.fit`` on the family's task), and prints the seconds per
epoch and their ratio (engine / old loop). The population is also timed through the Lightning
Trainer module it used before. The two alternate, ``--repeats`` times, and the median epoch
counts, so a slow moment of the machine hits both.

    python bench/engine.py                    # every family, CPU, about 3 minutes on 2 cores
    python bench/engine.py --families zoo resnet --repeats 5

The old loops live here only: in the package, only the engine calls backward on a network.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nnprobe.engines.evaluation import normalize_images
from nnprobe.engines.lbfgs import minimal_adversarial_lbfgs
from nnprobe.engines.pgd import PGD, pgd_attack
from nnprobe.engines.population import (PopulationTask, batch_indices, epoch_permutations, init_population,
                                        population_loss)
from nnprobe.engines.training import TrainOptions, fit, one_cycle
from nnprobe.models.keras_cnn import keras_cnn
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.models.topdown import Normalized, standard_cnn
from nnprobe.studies.adversarial.pools import AdversarialPoolTask
from nnprobe.studies.adversarial.training import AutoencoderTask, ZooClassifierTask
from nnprobe.studies.adversarial.zoo import ZOO, build_zoo_model, weight_decay_penalty
from nnprobe.studies.noise.training import ResNetTask, TrainConfig, augment_batch
from nnprobe.studies.visualize.training import VisualizeTask

FAMILIES = ("population", "zoo", "autoencoder", "pool", "resnet", "visualize")


def uint8_images(n: int, c: int, h: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, c, h, h), dtype=np.uint8)), torch.from_numpy(rng.integers(0, 10, n))


def engine_epochs(task_factory: Callable[[], nn.Module], epochs: int) -> list[float]:
    """Seconds of each epoch of the engine (its own measurement, synchronised per epoch)."""
    history = fit(task_factory(), TrainOptions(epochs, progress=False))
    return [row["seconds"] for row in history]


def timed_epochs(run_epoch: Callable[[int], None], epochs: int) -> list[float]:
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        run_epoch(epoch)
        seconds.append(time.perf_counter() - started)
    return seconds


# --------------------------------------------------------------------------- the old loops


def old_population(k: int, n: int, batch: int) -> tuple[Callable, Callable]:
    """The plain reference loop the population engine was tested against (train_population)."""
    images, labels = uint8_images(n, 3, 32)
    y = labels.to(torch.uint8).unsqueeze(0).expand(k, -1).contiguous()
    mean, std = torch.tensor([0.5] * 3, dtype=torch.float64), torch.tensor([0.25] * 3, dtype=torch.float64)
    seeds = list(range(k))

    def old():
        pop = init_population(lambda g: keras_cnn(generator=g), seeds)
        opt = torch.optim.Adam(list(pop.params.values()), lr=1e-3, eps=1e-7, foreach=False)

        def epoch(e: int) -> None:
            steps = []
            for idx in batch_indices(epoch_permutations(seeds, e, n), batch):
                loss, _ = population_loss(pop, images, y, idx, mean, std)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps.append(loss.detach())
            (torch.stack(steps) / k).tolist()

        return epoch

    def engine():
        return PopulationTask(init_population(lambda g: keras_cnn(generator=g), seeds), images, y, seeds,
                              [0.5] * 3, [0.25] * 3, batch)

    return old, engine


def lightning_trainer_population(k: int, n: int, batch: int, epochs: int) -> list[float]:
    """The population through the Lightning Trainer module of before the engine (per-epoch seconds)."""
    import pytorch_lightning as pl

    images, labels = uint8_images(n, 3, 32)
    y = labels.to(torch.uint8).unsqueeze(0).expand(k, -1).contiguous()
    seeds = list(range(k))
    population = init_population(lambda g: keras_cnn(generator=g), seeds)

    class Batches:
        def __init__(self, module):
            self.module = module

        def __len__(self):
            return math.ceil(n / batch)

        def __iter__(self):
            return batch_indices(epoch_permutations(seeds, self.module.current_epoch, n), batch)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.__dict__["template"] = population.template
            self.names = list(population.params)
            self.stacked = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in population.params.values())
            self.register_buffer("images", images, persistent=False)
            self.register_buffer("labels", y, persistent=False)
            self.register_buffer("mean", torch.tensor([0.5] * 3, dtype=torch.float64), persistent=False)
            self.register_buffer("std", torch.tensor([0.25] * 3, dtype=torch.float64), persistent=False)
            self.seconds, self.started = [], 0.0

        def train_dataloader(self):
            return Batches(self)

        def on_train_epoch_start(self):
            self.started = time.perf_counter()

        def on_train_epoch_end(self):
            self.seconds.append(time.perf_counter() - self.started)

        def training_step(self, idx, batch_idx):
            pop = type(population)(self.template, dict(zip(self.names, self.stacked)), population.layout)
            loss, _ = population_loss(pop, self.images, self.labels, idx, self.mean, self.std)
            self.log("train_loss", loss.detach() / k, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(list(self.stacked), lr=1e-3, eps=1e-7)

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    module = Module()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    trainer.fit(module)
    return module.seconds


def old_minibatch_adam(model: nn.Module, params: list, batch_loss: Callable, n: int, batch: int, seed: int):
    """szegedy._minibatch_adam as it was: a CPU randperm per epoch, Adam, one sync per epoch."""
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()

    def epoch(_: int) -> None:
        perm = torch.randperm(n, generator=generator)
        losses = []
        for start in range(0, n, batch):
            loss = batch_loss(perm[start : start + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        float(torch.stack(losses).mean())

    return epoch


def zoo_family(name: str, n: int) -> tuple[Callable, Callable]:
    images = torch.rand(n, 1, 28, 28)
    labels = torch.randint(0, 10, (n,))
    decay = ZOO[name].weight_decay

    def make():
        return build_zoo_model(name, 784, 10, torch.Generator().manual_seed(0))

    def old():
        model = make()

        def batch_loss(idx):
            return F.cross_entropy(model(images[idx]), labels[idx]) + weight_decay_penalty(model, decay, "units")

        return old_minibatch_adam(model, list(model.parameters()), batch_loss, n, 128, 0)

    def engine():
        return ZooClassifierTask(make(), images, labels, weight_decay=decay, normalize="units", batch_size=128,
                                 lr=1e-3, order_seed=0)

    return old, engine


def autoencoder_family(n: int) -> tuple[Callable, Callable]:
    images = torch.rand(n, 1, 28, 28)

    def make():
        return build_zoo_model("AE400-10", 784, 10, torch.Generator().manual_seed(0))

    def old():
        model = make()
        for p in model.classifier.parameters():
            p.requires_grad_(False)

        def batch_loss(idx):
            x = images[idx].flatten(1)
            loss = F.binary_cross_entropy_with_logits(model.decoder(model.code(x)), x)
            loss = loss + weight_decay_penalty(model.encoder, 1e-6, "units")
            return loss + weight_decay_penalty(model.decoder, 1e-6, "units")

        return old_minibatch_adam(model, [*model.encoder.parameters(), *model.decoder.parameters()], batch_loss, n,
                                  128, 0)

    def engine():
        # the old loop's recipe (no sparsity penalty), so that only the loop differs
        return AutoencoderTask(make(), images, weight_decay=1e-6, normalize="units", batch_size=128, lr=1e-3,
                               order_seed=0, sparsity_weight=0.0)

    return old, engine


def pool_family(n: int) -> tuple[Callable, Callable]:
    """Adversarial training as it was: a pool refreshed by L-BFGS attacks every 50 steps."""
    images, labels = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
    decay = ZOO["FC100-100-10"].weight_decay
    attack = {"c_grid": [0.25, 0.0625], "max_iter": 15, "bisection_steps": 0, "refine_steps": 0}

    def make():
        return build_zoo_model("FC100-100-10", 784, 10, torch.Generator().manual_seed(0))

    def old():
        model = make()
        rng = torch.Generator().manual_seed(1)
        pool = {"x": images[:0], "y": labels[:0]}
        step = 0

        def refresh():
            idx = torch.randperm(n, generator=rng)[:50]
            target = (labels[idx] + torch.randint(1, 10, (50,), generator=rng)) % 10
            res = minimal_adversarial_lbfgs(model, images[idx], target, **attack)
            keep = res.success & (res.distortion > 0)
            room = 2000 - len(pool["y"])
            pool["x"] = torch.cat([pool["x"], res.adversarial[keep][:room]])
            pool["y"] = torch.cat([pool["y"], labels[idx][keep][:room]])

        def batch_loss(idx):
            nonlocal step
            if step % 50 == 0:
                refresh()
                model.train()
            step += 1
            x, y = images[idx], labels[idx]
            if len(pool["y"]):
                draw = torch.randint(0, len(pool["y"]), (64,), generator=rng)
                x, y = torch.cat([x, pool["x"][draw]]), torch.cat([y, pool["y"][draw]])
            return F.cross_entropy(model(x), y) + weight_decay_penalty(model, decay, "units")

        return old_minibatch_adam(model, list(model.parameters()), batch_loss, n, 128, 0)

    def engine():
        return AdversarialPoolTask(make(), images, labels, weight_decay=decay, normalize="units", batch_size=128,
                                   lr=1e-3, order_seed=0, pool_size=2000, refresh_every=50, refresh_size=50,
                                   attack=attack, warmup_epochs=0)

    return old, engine


def resnet_family(n: int, width: int) -> tuple[Callable, Callable]:
    """nnprobe.resnet.train_resnet as it was (CPU: float32, no channels-last)."""
    images, labels = uint8_images(n, 3, 32)
    config = TrainConfig(epochs=4, batch_size=128, lr=0.2)
    mean, std = torch.tensor([0.5] * 3), torch.tensor([0.25] * 3)

    def old():
        model = resnet18_cifar(10, 3, width, seed=0)
        p, bs = config.crop_padding, config.batch_size
        padded = F.pad(images, (p, p, p, p))
        decay = [q for q in model.parameters() if q.ndim > 1]
        no_decay = [q for q in model.parameters() if q.ndim <= 1]
        optimizer = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                                    momentum=config.momentum, nesterov=True)
        steps = n // bs
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: one_cycle(s, config.epochs * steps, 0.25))
        generator = torch.Generator().manual_seed(0)
        model.train()

        def epoch(_: int) -> None:
            perm = torch.randperm(n, generator=generator)[: steps * bs]
            offsets = torch.randint(0, 2 * p + 1, (perm.numel(), 2), generator=generator)
            flips = torch.rand(perm.numel(), generator=generator) < 0.5
            losses, correct = [], []
            for b in range(steps):
                sl = slice(b * bs, (b + 1) * bs)
                x = normalize_images(augment_batch(padded, perm[sl], offsets[sl], flips[sl], (32, 32)), mean, std)
                y = labels[perm[sl]]
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.detach())
                correct.append((logits.argmax(1) == y).sum())
            float(torch.stack(losses).mean()), float(torch.stack(correct).sum())

        return epoch

    def engine():
        return ResNetTask(resnet18_cifar(10, 3, width, seed=0), images, labels, [0.5] * 3, [0.25] * 3, config, seed=0)

    return old, engine


def visualize_family(n: int, width: int) -> tuple[Callable, Callable]:
    """patterns.train_classifier as it was, with PGD adversarial training and flips."""
    images, labels = uint8_images(n, 3, 32)
    attack = PGD(8 / 255, 3, 2 / 255)

    def make():
        return Normalized(standard_cnn(3, 10, width, torch.Generator().manual_seed(0)), [0.5] * 3, [0.25] * 3)

    def old():
        model = make()
        generator = torch.Generator().manual_seed(0)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4 * math.ceil(n / 128))

        def epoch(_: int) -> None:
            model.train()
            order = torch.randperm(n, generator=generator)
            total, correct = 0.0, 0
            for start in range(0, n, 128):
                idx = order[start : start + 128]
                x, y = images[idx].float() / 255, labels[idx]
                flips = torch.rand(len(idx), generator=generator) < 0.5
                x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
                x = pgd_attack(model, x, y, attack, generator)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(idx)
                correct += (logits.argmax(1) == y).sum().item()

        return epoch

    def engine():
        return VisualizeTask(make(), images, labels, batch_size=128, lr=2e-3, weight_decay=0.0, seed=0, flip=True,
                             adversarial=attack)

    return old, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--repeats", type=int, default=3, help="old loop and engine alternate this many times")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timed run (the first is not counted)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a Snakemake job's default is 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("nnprobe").setLevel(logging.WARNING)
    cases = {
        "population": (lambda: old_population(k=16, n=256, batch=32), "Keras CNN population, K=16, 256 images 32x32x3, batch 32"),
        "zoo": (lambda: zoo_family("FC100-100-10", 12800), "FC100-100-10 (Szegedy zoo), 12,800 images 28x28, batch 128"),
        "autoencoder": (lambda: autoencoder_family(6400), "AE400-10 pre-training, 6,400 images 28x28, batch 128"),
        "pool": (lambda: pool_family(6400), "FC100-100-10 + adversarial pool (L-BFGS every 50 steps), 6,400 images"),
        "resnet": (lambda: resnet_family(768, 16), "ResNet-18 width 16, 768 images 32x32x3, batch 128"),
        "visualize": (lambda: visualize_family(768, 16), "standard CNN width 16 + PGD-3 training, 768 images 32x32x3"),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats x {args.epochs} epochs "
          f"(first epoch of each run not counted)\n", flush=True)
    rows = []
    for family in args.families:
        build, what = cases[family]
        old_times, engine_times, trainer_times = [], [], []
        for _ in range(args.repeats):
            old_factory, engine_factory = build()
            old_times += timed_epochs(old_factory(), args.epochs)[1:]
            engine_times += engine_epochs(engine_factory, args.epochs)[1:]
            if family == "population":
                trainer_times += lightning_trainer_population(16, 256, 32, args.epochs)[1:]
        old_s, engine_s = statistics.median(old_times), statistics.median(engine_times)
        rows.append((family, what, old_s, engine_s))
        line = f"{family:12s} old loop {old_s:7.3f} s/epoch, engine {engine_s:7.3f} s/epoch, ratio {engine_s / old_s:5.2f}"
        if trainer_times:
            trainer_s = statistics.median(trainer_times)
            line += f"; the previous Lightning Trainer path {trainer_s:7.3f} s/epoch (engine / Trainer {engine_s / trainer_s:5.2f})"
        print(f"{line}   [{what}]", flush=True)
    print("\nratio = engine / old loop, median seconds per epoch; below 1.10 is the goal")
    worst = max(engine / old for _, _, old, engine in rows)
    print(f"worst ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
