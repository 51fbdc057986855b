"""The training engine: every network of every study trains here, on Lightning Fabric.

A study says *what* to train as a :class:`TrainingTask`: an ``nn.Module`` holding the network
(or a population of networks) and its training data on the device, with three methods that
mirror a LightningModule's (``configure_optimizers``, ``train_batches``, ``training_step``).
:func:`fit` says *how*, once for all of them:

* device and precision through one Fabric (:func:`make_fabric`: ``32-true``, ``64-true``,
  ``bf16-mixed``, ``16-mixed``, the one precision vocabulary of every study, meaning the same
  on every device: see :data:`PRECISIONS`), fused Adam on CUDA, a determinism switch;
* the loop: ``zero_grad``, Fabric's ``backward``, the optimizer and a per-step learning-rate
  schedule, with the epoch's loss and accuracy summed on the device (one host synchronisation
  per epoch);
* what a person watches: a progress bar and one log line per epoch (loss, accuracy where the
  task knows it, images/s, time left) in the job log, and the history as CSV at a fixed path;
* epoch checkpoints, written atomically: a job that is killed (SIGKILL, SLURM's SIGTERM,
  Ctrl-C) and run again resumes from its last completed epoch and ends with the same weights
  as an uninterrupted run (bitwise on the CPU), because every random draw of an epoch is made
  from that epoch's own seed (see :func:`epoch_generator`). A checkpoint written for another
  configuration or other seeds (its fingerprint differs) is ignored with a log line.

Why Fabric and not the Trainer: the Trainer's per-step machinery (closures, hooks, result
collections) costs about 0.2-0.4 ms a step on the CPU, 30-50% of a step of the Szegedy zoo's
small networks; Fabric adds under 5% (measured in ``bench/engine.py``, see
docs/performance.md). The task keeps the LightningModule's shape, so a Trainer could run it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.devices import runtime_summary
from ..core.io import atomic_write, write_text
from ..core.seeds import derive_seed

#: PYTORCH_NVML_BASED_CUDA_CHECK as the user set it (None: unset, or Lightning was imported first).
_USER_NVML_CHECK = None if "lightning_fabric" in sys.modules else os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")

__all__ = [
    "PRECISIONS",
    "autocast_dtype",
    "check_precision",
    "fused_kernels",
    "TrainOptions",
    "OptimizerSpec",
    "Step",
    "TrainingTask",
    "make_fabric",
    "make_optimizer",
    "step_schedule",
    "one_cycle",
    "epoch_generator",
    "fit",
    "remove_checkpoints",
]

log = logging.getLogger("nnprobe.engine")

#: Every study's precision keys (``train.precision``, ``noise.train.precision``) take these, Lightning's
#: names: float32, float64, bf16 autocast (float32 weights and optimizer) and float16 autocast with
#: loss scaling. A precision runs as named on every device: ``bf16-mixed`` is bf16 autocast on a
#: CPU too (fast on CPUs with native bf16, AVX512-BF16 or AMX; slow elsewhere), and ``16-mixed``,
#: which Lightning would quietly turn into bf16 on a CPU, is refused there (:func:`check_precision`).
PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed")
_AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
CHECKPOINT = "last.ckpt"


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`fit` trains, whatever it trains (the config's ``engine`` keys and a rule's paths).

    ``checkpoint_dir`` holds the epoch checkpoint (a folder that is not a rule output, so
    Snakemake never deletes it; :func:`remove_checkpoints` does once the job's outputs are
    written). ``history`` is the CSV written after every epoch. ``fingerprint`` is what the
    checkpoint must have been written for (config slice, seeds): a checkpoint with another one
    is ignored. ``steps_per_epoch`` cuts epochs short (tests, benchmarks).
    """

    epochs: int
    device: torch.device | str = "cpu"
    precision: str = "32-true"
    deterministic: bool = False
    progress: bool = True
    checkpoint_dir: Path | None = None
    history: Path | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    name: str = "training"
    steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_config(cls, engine: Mapping[str, Any], *, checkpoint_dir: str | Path | None = None,
                    **options: Any) -> TrainOptions:
        """Options from the config's ``engine`` section (deterministic, progress, checkpoint) and a job's own.

        With ``engine.checkpoint`` false the job writes no checkpoints (and cannot resume).
        ``engine["code_version"]`` (added by :func:`nnprobe.core.devices.network_job`: the hash
        of the job's code inputs) joins the fingerprint, so a checkpoint written under other
        code is never resumed.
        """
        keep = checkpoint_dir is not None and engine.get("checkpoint", True)
        fingerprint = dict(options.pop("fingerprint", {}))
        if engine.get("code_version"):
            fingerprint["code_version"] = engine["code_version"]
        return cls(deterministic=bool(engine.get("deterministic", False)), progress=bool(engine.get("progress", True)),
                   checkpoint_dir=Path(checkpoint_dir) if keep else None, fingerprint=fingerprint, **options)

    def stage(self, name: str, epochs: int, history: Path | None = None) -> TrainOptions:
        """The options of one stage of a job that trains in several (its own checkpoint and log name)."""
        folder = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / name
        return replace(self, epochs=epochs, checkpoint_dir=folder, history=history, name=f"{self.name}/{name}")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer by name: Adam (Keras's epsilon 1e-7 by default) or SGD.

    ``weight_decay`` is torch's (coupled L2: ``lambda * w`` added to the gradient);
    ``decay_weights_only`` exempts biases and normalisation parameters (tensors of one
    dimension), as ResNet recipes do.
    """

    name: str = "adam"
    lr: float = 1e-3
    eps: float = 1e-7
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    decay_weights_only: bool = False

    def __post_init__(self) -> None:
        if self.name not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a mixed ``precision`` (bf16, float16), None for a true one."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return _AUTOCAST.get(precision)


def check_precision(precision: str, device: torch.device | str) -> str:
    """What ``precision`` computes on ``device``, in words for the job's log; raises where it cannot run.

    ``16-mixed`` (float16 autocast with loss scaling) needs CUDA: on a CPU Lightning would run
    bf16 instead, which is another result, so it is refused with the alternatives.
    """
    dtype, kind = autocast_dtype(precision), torch.device(device).type
    if precision == "16-mixed" and kind != "cuda":
        raise ValueError(f"precision 16-mixed (float16 autocast with loss scaling) runs on CUDA only and this job "
                         f"runs on the {kind}: set the study's precision key to bf16-mixed (bf16 autocast, on any "
                         "device) or 32-true")
    if dtype is None:
        return f"{precision}: {precision[:2]}-bit floats throughout"
    return (f"{precision}: {str(dtype).removeprefix('torch.')} autocast on the {kind}, float32 weights and optimizer"
            + (" (fast only on CPUs with native bf16: AVX512-BF16 or AMX)" if kind == "cpu" else ""))


def fused_kernels(device: torch.device | str) -> bool:
    """Whether a job on ``device`` asks for torch's fused optimizer kernels: on CUDA, and only there."""
    return torch.device(device).type == "cuda"


def make_optimizer(params: Sequence[torch.Tensor], spec: OptimizerSpec, fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer ``spec`` names over ``params``; ``fused`` selects torch's fused kernels (CUDA).

    Adam and SGD are element-wise, so one optimizer over a population's stacked tensors is K
    independent optimizers.
    """
    params = [p for p in params if p.requires_grad]
    if spec.weight_decay and spec.decay_weights_only:
        groups: list[dict] = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": spec.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": spec.weight_decay}]
    kind = {"fused": True} if fused else {"foreach": False}
    if spec.name == "adam":
        return torch.optim.Adam(groups, lr=spec.lr, eps=spec.eps, **kind)
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, **kind)


def one_cycle(step: int, total: int, warmup_fraction: float) -> float:
    """Learning-rate factor of a linear one-cycle schedule: 0 -> 1 over the warm-up, 1 -> 0 after.

    Smith & Topin 2019 ("Super-convergence"); the factor at step ``s`` is ``(s + 1) / w`` for
    ``s < w`` and ``(total - s) / (total - w)`` afterwards, with ``w = warmup_fraction * total``.
    """
    warm = max(1.0, warmup_fraction * total)
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1.0, total - warm))


def step_schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int, warmup_fraction: float = 0.0):
    """A learning-rate schedule stepped after every optimizer step, or None for a constant rate.

    ``"cosine"``: cosine annealing to 0 over ``total_steps``; ``"one_cycle"``: :func:`one_cycle`.
    """
    if kind == "constant":
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if kind == "one_cycle":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: one_cycle(s, total_steps, warmup_fraction))
    raise ValueError(f"learning-rate schedule must be 'constant', 'cosine' or 'one_cycle', got {kind!r}")


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of every random draw of one epoch, seeded from ``(seed, epoch)`` alone.

    Because an epoch's draws do not depend on the draws of earlier epochs, a job resumed at
    epoch e draws exactly what an uninterrupted one draws there.
    """
    return torch.Generator(device).manual_seed(derive_seed(int(seed), "epoch", int(epoch)))


@dataclass
class Step:
    """What a training step returns: the loss to differentiate and what to report of it.

    ``examples`` counts the images (model-images for a population) of the step; ``reported``
    is the loss to average over the epoch (default: ``loss``; a population reports the mean
    member loss); ``correct`` counts correct predictions, for the epoch's accuracy.
    """

    loss: torch.Tensor
    examples: int
    reported: torch.Tensor | None = None
    correct: torch.Tensor | None = None


class TrainingTask(nn.Module):
    """What to train: the network(s) and their data as submodules and buffers, and the recipe.

    Subclasses define :meth:`configure_optimizers`, :meth:`train_batches` and
    :meth:`training_step`. State that must survive a restart besides parameters, buffers and
    the optimizer (an adversarial pool, a step counter) goes through ``get_extra_state`` /
    ``set_extra_state``; data buffers should be registered with ``persistent=False`` so that
    checkpoints hold no data.
    """

    def configure_optimizers(self, fused: bool, epochs: int):
        """An optimizer, or ``(optimizer, schedule)`` with a schedule stepped every step."""
        raise NotImplementedError

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """The batches of ``epoch`` (index tensors on the device), drawn from that epoch's seed."""
        raise NotImplementedError

    def training_step(self, batch: Any) -> Step:
        """The loss of one batch."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int | None:
        """The number of batches of an epoch, for the progress bar (None: unknown)."""
        return None

    def on_fit_start(self) -> None:
        """Called before the first epoch (e.g. freeze the parameters that do not train)."""

    def on_fit_end(self) -> None:
        """Called after training, also when it fails (e.g. restore what ``on_fit_start`` changed)."""


def make_fabric(options: TrainOptions):
    """The one Fabric of a job: its device and precision.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that a process that forks
    workers later does not initialise CUDA first). Then every ``torch.cuda.is_available()`` asks
    NVML anew, and torch's optimizers ask on every step: 60 us per step on the 2-core build
    machine idle, 0.5 ms under load, a sixth of a step of the zoo's FC100-100-10. No job forks
    after this point and a CPU job hides CUDA (:func:`~nnprobe.core.devices.job_device`), so the
    job drops the variable unless it was set before this module was imported (and before
    Lightning was), and torch asks the driver once.
    """
    from lightning_fabric import Fabric

    check_precision(options.precision, options.device)
    if _USER_NVML_CHECK is None:
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    device = torch.device(options.device)
    if device.type == "cuda":
        return Fabric(accelerator="cuda", devices=[device.index or 0], precision=options.precision)
    return Fabric(accelerator="cpu", devices=1, precision=options.precision)


@contextlib.contextmanager
def _deterministic(on: bool, device: torch.device):
    """Deterministic algorithms only while training (the previous settings are restored after)."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS reductions
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = not on, on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def _fingerprint(task: TrainingTask, options: TrainOptions) -> str:
    what = {"task": type(task).__name__, "epochs": options.epochs, "precision": options.precision,
            **dict(options.fingerprint)}
    return json.dumps(what, sort_keys=True, default=str)


def _load_checkpoint(path: Path, fingerprint: str, device: torch.device) -> dict | None:
    """The checkpoint at ``path`` if it belongs to this job; otherwise None, with a log line."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: start over, saying so
        log.warning("ignoring checkpoint %s: it cannot be read (%s: %s); training from epoch 1",
                    path, type(exc).__name__, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        theirs = json.loads(state.get("fingerprint") or "{}")
        ours = json.loads(fingerprint)
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        if differ == ["code_version"]:
            log.warning("ignoring checkpoint %s: it was written under other code (code version %s, this job runs "
                        "%s: a module it runs was edited since); training from epoch 1", path,
                        theirs.get("code_version"), ours.get("code_version"))
        else:
            log.warning("ignoring checkpoint %s: it was written for another configuration, other seeds or other "
                        "code (differs in %s); training from epoch 1", path, differ)
        return None
    return state


def _save_checkpoint(path: Path, task: TrainingTask, optimizer, schedule, epoch: int, history: list[dict],
                     fingerprint: str) -> None:
    """Everything a restart needs after ``epoch``, written atomically (a kill mid-write leaves the last one)."""
    state = {"task": task.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict() if schedule is not None else None,
             "epoch": epoch, "history": history, "fingerprint": fingerprint}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def remove_checkpoints(options: TrainOptions) -> None:
    """Delete the job's checkpoint folder: call it once the job's outputs are written.

    Folders above it that are left empty go too, up to the workflow's ``checkpoints`` folder.
    """
    if options.checkpoint_dir is None or not Path(options.checkpoint_dir).exists():
        return
    shutil.rmtree(options.checkpoint_dir)
    log.info("removed the checkpoints in %s", options.checkpoint_dir)
    folder = Path(options.checkpoint_dir).parent
    while "checkpoints" in folder.parts:
        try:
            folder.rmdir()  # only if empty; another job may be writing beside it
        except OSError:
            break
        folder = folder.parent


def _write_history(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(buffer.getvalue(), path)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fit(task: TrainingTask, options: TrainOptions) -> list[dict]:
    """Train ``task`` for ``options.epochs`` (resuming from its checkpoint); return the history.

    The task's network is trained in place and left on ``options.device``. The history has
    one row per epoch: epoch, loss, accuracy (where the task counts correct predictions),
    images_per_s, seconds, lr.
    """
    device = torch.device(options.device)
    fabric = make_fabric(options)
    fabric.setup_module(task)  # moves the task (network and data) to the device, converts for 64-true
    log.info("%s: %s%s; %s", options.name, runtime_summary(device, options.precision),
             ", deterministic algorithms" if options.deterministic else "", check_precision(options.precision, device))
    configured = task.configure_optimizers(fused=fused_kernels(device), epochs=options.epochs)
    optimizer, schedule = configured if isinstance(configured, tuple) else (configured, None)
    wrapped = fabric.setup_optimizers(optimizer)

    fingerprint = _fingerprint(task, options)
    checkpoint = Path(options.checkpoint_dir) / CHECKPOINT if options.checkpoint_dir is not None else None
    history: list[dict] = []
    start = 0
    state = _load_checkpoint(checkpoint, fingerprint, device) if checkpoint is not None else None
    if state is not None:
        task.load_state_dict(state["task"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        start, history = int(state["epoch"]), list(state["history"])
        log.info("%s: resuming from %s after epoch %d of %d", options.name, checkpoint, start, options.epochs)

    task.on_fit_start()
    try:
        with _deterministic(options.deterministic, device):
            for epoch in range(start, options.epochs):
                history.append(_run_epoch(fabric, task, wrapped, schedule, epoch, options))
                _log_epoch(history, options)
                if options.history is not None:
                    _write_history(history, Path(options.history))
                if checkpoint is not None:
                    _save_checkpoint(checkpoint, task, optimizer, schedule, epoch + 1, history, fingerprint)
    finally:
        task.on_fit_end()
    if start == options.epochs:
        log.info("%s: the checkpoint holds all %d epochs; nothing left to train", options.name, options.epochs)
    return history


def _run_epoch(fabric, task: TrainingTask, optimizer, schedule, epoch: int, options: TrainOptions) -> dict:
    device = torch.device(options.device)
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    examples = counted = steps = 0
    batches: Iterable[Any] = task.train_batches(epoch)
    total = task.steps_per_epoch()
    if options.steps_per_epoch is not None:
        total = min(total or options.steps_per_epoch, options.steps_per_epoch)
    if options.progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=total, desc=f"{options.name} epoch {epoch + 1}/{options.epochs}",
                       mininterval=10, ascii=True, leave=False, file=sys.stderr)
    for batch in batches:
        if options.steps_per_epoch is not None and steps >= options.steps_per_epoch:
            break
        with fabric.autocast():
            step = task.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(step.loss)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        loss_sum += (step.reported if step.reported is not None else step.loss).detach()
        if step.correct is not None:
            correct += step.correct.detach()
            counted += step.examples
        examples += step.examples
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    row = {"epoch": epoch + 1, "loss": float(loss_sum) / max(steps, 1),
           "accuracy": float(correct) / counted if counted else float("nan"),
           "images_per_s": examples / seconds if seconds > 0 else float("nan"), "seconds": seconds,
           "lr": float(optimizer.param_groups[0]["lr"])}
    return row


def _log_epoch(history: list[dict], options: TrainOptions) -> None:
    row = history[-1]
    left = (options.epochs - row["epoch"]) * sum(r["seconds"] for r in history) / len(history)
    accuracy = "" if math.isnan(row["accuracy"]) else f", train accuracy {row['accuracy']:.4f}"
    log.info("%s epoch %d/%d: loss %.4f%s, %s images/s, %s, about %s left", options.name, row["epoch"],
             options.epochs, row["loss"], accuracy, f"{row['images_per_s']:,.0f}", _duration(row["seconds"]),
             _duration(left))
    if not math.isfinite(row["loss"]):
        log.warning("%s epoch %d: the loss is %s; the learning rate may be too high", options.name, row["epoch"],
                    row["loss"])
