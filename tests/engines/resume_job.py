"""A small training job of each family, run as a process of its own by test_resume.py.

    python resume_job.py FAMILY OUT CHECKPOINTS [SIGNAL STAGE EPOCH]

trains FAMILY for 4 epochs (checkpoints in CHECKPOINTS) on 256 of scikit-learn's digits and
saves the trained task's state dict to OUT. With SIGNAL (KILL, TERM or INT), the process sends
itself that signal right after the checkpoint of EPOCH of the stage named STAGE ("-" for a job
of one stage) is written: a real kill at a known point, as SLURM's time limit or a person
would deliver it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import torch

from nnprobe.core.naming import population_pairs
from nnprobe.core.runtime import interrupt_ends_by_sigint
from nnprobe.core.sources import load_sklearn_digits
from nnprobe.engines import training
from nnprobe.engines.pgd import PGD
from nnprobe.engines.population import PopulationTask, init_population
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.keras_cnn import keras_cnn
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.models.topdown import Normalized, standard_cnn
from nnprobe.studies.adversarial.pools import AdversarialPoolTask
from nnprobe.studies.adversarial.training import train_zoo_model
from nnprobe.studies.adversarial.zoo import ZOO, build_zoo_model
from nnprobe.studies.mislabel.design import mislabel_members
from nnprobe.studies.noise.training import ResNetTask, TrainConfig
from nnprobe.studies.visualize.training import VisualizeTask

EPOCHS = 4
FAMILIES = ("population", "zoo", "autoencoder", "pool", "resnet", "visualize")


def kill_after(signum: int, stage: str, epoch: int) -> None:
    """Send ``signum`` to this process once the checkpoint of ``epoch`` of ``stage`` is written."""
    write = training.atomic_write

    def write_then_kill(path, writer):
        written = write(path, writer)
        if Path(path).name == training.CHECKPOINT and (stage == "-" or Path(path).parent.name == stage):
            if torch.load(path, weights_only=True)["epoch"] == epoch:
                os.kill(os.getpid(), signum)
        return written

    training.atomic_write = write_then_kill


def main(family: str, out: str, checkpoints: str) -> None:
    torch.set_num_threads(1)
    splits, _ = load_sklearn_digits(test_fraction=0.25, seed=0)
    images, labels = torch.from_numpy(splits["train"].images[:256]), torch.from_numpy(splits["train"].labels[:256])
    pixels = images.float() / 255
    options = TrainOptions(EPOCHS, progress=False, checkpoint_dir=Path(checkpoints), name=family,
                           fingerprint={"family": family})
    if family == "population":
        members = mislabel_members(population_pairs(10)[:2], labels.numpy(), 10, seed=0, replicates=2)
        population = init_population(lambda g: keras_cnn(1, 10, 8, 1, g), [m.init_seed for m in members])
        task = PopulationTask(population, images, torch.stack([torch.from_numpy(m.labels) for m in members]),
                              [m.order_seed for m in members], [0.3], [0.37], batch_size=32)
        fit(task, options)
        state = task.state_dict()
    elif family in ("zoo", "autoencoder"):
        name = "FC100-100-10" if family == "zoo" else "AE400-10"
        model, _ = train_zoo_model(name, pixels, labels, options, ae_epochs=EPOCHS, batch_size=32, seed=3)
        state = model.state_dict()
    elif family == "pool":
        model = build_zoo_model("FC100-100-10", 64, 10, torch.Generator().manual_seed(5))
        task = AdversarialPoolTask(model, pixels, labels, weight_decay=ZOO["FC100-100-10"].weight_decay,
                                   normalize="units", batch_size=32, lr=1e-3, order_seed=7, pool_size=24,
                                   refresh_every=3, refresh_size=8, layers=["input", 0, 1], warmup_epochs=1,
                                   attack={"c_grid": [1.0, 0.25], "max_iter": 5, "bisection_steps": 0,
                                           "refine_steps": 0})
        fit(task, options)
        state = task.state_dict()
    elif family == "resnet":
        model = resnet18_cifar(10, 1, width=4, seed=11)
        config = TrainConfig(epochs=EPOCHS, batch_size=64, lr=0.1, crop_padding=1, flip=True)
        task = ResNetTask(model, images, labels, [0.3], [0.37], config, seed=13)
        fit(task, options)
        state = task.state_dict()
    elif family == "visualize":
        model = Normalized(standard_cnn(1, 10, 4, torch.Generator().manual_seed(17)), [0.3], [0.37])
        task = VisualizeTask(model, images, labels, batch_size=32, lr=2e-3, weight_decay=0.0, seed=19, flip=True,
                             adversarial=PGD(24 / 255, 2, 12 / 255))
        fit(task, options)
        state = task.state_dict()
    else:
        raise SystemExit(f"family must be one of {FAMILIES}, got {family!r}")
    flat = {}
    for key, value in state.items():  # the pool's extra state is a dict of tensors and counts
        items = value.items() if isinstance(value, dict) else [("", value)]
        flat.update({f"{key}.{sub}".rstrip("."): torch.as_tensor(v) for sub, v in items})
    torch.save(flat, out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    family, out, checkpoints, *kill = sys.argv[1:]
    if kill:
        signame, stage, epoch = kill
        kill_after(getattr(signal, f"SIG{signame}"), stage, int(epoch))
    with interrupt_ends_by_sigint():  # as the workflow's scripts end (runtime.logged)
        main(family, out, checkpoints)
