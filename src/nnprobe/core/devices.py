"""Where a job computes: one device policy for every job of the workflow.

A job computes on a GPU only if its rule reserved one (Snakemake resource ``gpu``); a CPU job
hides CUDA from torch, so it never creates a CUDA context even on a GPU node.
:func:`runtime_summary` is the line every network job's log starts with: device, precision,
threads, torch, CUDA and Lightning versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.metadata
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .io import remove_stale_temporaries
from .provenance import code_version
from .runtime import _wildcards, logged, set_threads

__all__ = ["NoGPUError", "job_device", "visible_gpus", "claim_gpu", "runtime_summary", "Job", "job_checkpoint_folder",
           "network_job"]


class NoGPUError(RuntimeError):
    """A job reserved a GPU but the machine it runs on has none that torch can use."""


def job_device(gpus: int = 0, *, allow_cpu: bool = False):
    """The ``torch.device`` a job computes on, from the GPUs its rule reserved.

    ``gpus`` is the rule's ``resources: gpu`` (0 when the rule asks for none). With 0 the job
    runs on the CPU and CUDA is hidden from this process (``CUDA_VISIBLE_DEVICES=""`` before
    torch first looks for a GPU), so it never touches a GPU that another job reserved. With
    ``gpus >= 1`` the job runs on a visible GPU that no other job of this machine holds
    (:func:`claim_gpu`: on a node with N GPUs, N jobs run side by side, each on its own; under
    SLURM only the job's own GPUs are visible). If there is none, :class:`NoGPUError` says how to proceed,
    unless ``allow_cpu`` (config key ``resources.allow_cpu``) lets the job fall back to the CPU.
    """
    if gpus <= 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", claim_gpu(visible_gpus()))
    if allow_cpu:
        logging.getLogger("nnprobe").warning("this job reserved %d GPU(s) but torch finds none: it runs on the CPU "
                                             "(resources.allow_cpu is true)", gpus)
        return torch.device("cpu")
    raise NoGPUError(
        f"this job reserved {gpus} GPU(s) (config key resources.train_gpu) but torch finds no CUDA device "
        f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')!r}). Run it on a GPU node, set resources.train_gpu=0 "
        "to train on the CPU, or set resources.allow_cpu=true to fall back to the CPU when no GPU is found."
    )


def visible_gpus() -> list[str]:
    """An identity (the UUID) of every CUDA device this process sees, in torch's index order."""
    return [str(getattr(torch.cuda.get_device_properties(i), "uuid", i)) for i in range(torch.cuda.device_count())]


_HELD: list = []  # the lock files of the GPUs this process holds, open until it exits


def claim_gpu(gpus: list[str], lock_dir: str | os.PathLike | None = None, wait_s: float = 3600.0) -> int:
    """The index of a GPU in ``gpus`` (device identities) that no other process holds, now held by this one.

    Every GPU has a lock file named by its identity in ``lock_dir`` (a folder of this machine's
    temporary directory by default); a process holds a GPU while it keeps the file locked
    (``flock``), and the operating system releases the lock when the process ends, however it
    ends. Snakemake starts at most as many GPU jobs as the machine has GPUs
    (``profiles/default``), so a free one is there; if not, the job waits for one, saying so.
    The identity is the device's UUID, not its index, so two SLURM jobs that each see "GPU 0"
    of different devices do not wait for each other.
    """
    if not gpus:
        raise NoGPUError("claim_gpu needs at least one visible GPU")
    folder = Path(lock_dir) if lock_dir is not None else Path(tempfile.gettempdir()) / "nnprobe-gpu-locks"
    folder.mkdir(parents=True, exist_ok=True)
    deadline, said = time.monotonic() + wait_s, False
    while True:
        for index, identity in enumerate(gpus):
            stream = open(folder / f"{identity.replace('/', '_')}.lock", "a")
            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.close()
                continue
            _HELD.append(stream)
            return index
        if time.monotonic() > deadline:
            raise NoGPUError(f"all {len(gpus)} GPUs of this machine are held by other jobs (locks in {folder})")
        if not said:
            logging.getLogger("nnprobe").warning("all %d GPUs are held by other jobs; waiting for one", len(gpus))
            said = True
        time.sleep(1.0)


def runtime_summary(device, precision: str | None = None) -> str:
    """One line naming where a job computes: device, precision, threads, torch, CUDA, Lightning."""
    if device.type == "cuda":
        index = device.index or 0
        capability = ".".join(map(str, torch.cuda.get_device_capability(index)))
        where = f"device cuda:{index} ({torch.cuda.get_device_name(index)}, compute capability {capability})"
    else:
        where = f"device cpu ({torch.get_num_threads()} threads)"
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build"
    parts = [where, f"precision {precision}" if precision else None, f"torch {torch.__version__}", cuda,
             f"Lightning {importlib.metadata.version('pytorch-lightning')}"]
    return ", ".join(p for p in parts if p)


class Job:
    """What a script needs of its Snakemake job: the logger of its log file, its device, and how it trains.

    The device is decided on first use (:func:`job_device` with the rule's ``gpu`` resource and
    the config key ``resources.allow_cpu``) and logged with :func:`runtime_summary`; scripts
    that compute nothing with torch never import it. :attr:`engine` is the config's ``engine``
    section (progress, checkpoints, determinism: keys that change no result, so no rule has
    them as params) plus ``code_version``, the hash of the job's code inputs that its epoch
    checkpoints are keyed by. :attr:`checkpoints` is the job's checkpoint folder, beside its log
    (``results/logs/X.log`` -> ``results/checkpoints/X``): not a rule output, so Snakemake keeps
    it when the job dies.
    """

    def __init__(self, log: logging.Logger, gpus: int, allow_cpu: bool, engine: dict[str, Any] | None = None,
                 log_path: str | None = None) -> None:
        self.log = log
        self.gpus = gpus
        self.allow_cpu = allow_cpu
        self.engine = dict(engine or {})
        self.log_path = log_path

    @functools.cached_property
    def device(self):
        device = job_device(self.gpus, allow_cpu=self.allow_cpu)
        self.log.info("%s", runtime_summary(device))
        return device

    @property
    def checkpoints(self) -> str:
        return job_checkpoint_folder(self.log_path)

    @property
    def history(self) -> str:
        """The job's epoch history as CSV, beside its log (for jobs whose outputs hold no history)."""
        return str(Path(self.log_path).with_suffix(".history.csv"))


def job_checkpoint_folder(log_path: str | os.PathLike) -> str:
    """The checkpoint folder of the job whose log is ``log_path``: the log's path with ``logs``
    replaced by ``checkpoints`` and no suffix (``results/logs/noise/a/b.log`` -> ``results/checkpoints/noise/a/b``)."""
    path = Path(log_path)
    parts = list(path.with_suffix("").parts)
    if "logs" not in parts:
        raise ValueError(f"a job's log lies in a 'logs' folder (results/logs/...), got {log_path}")
    index = len(parts) - 1 - parts[::-1].index("logs")
    parts[index] = "checkpoints"
    return str(Path(*parts))


@contextlib.contextmanager
def network_job(smk: Any) -> Iterator[Job]:
    """Run a Snakemake script's job that computes with networks: its log, its threads, its device.

    ``smk`` is the ``snakemake`` object of a script. Everything the job prints and any
    traceback go to the rule's log; the job's device follows the rule's ``gpu`` resource
    (:func:`job_device`); temporary files that a killed run of the job left beside its outputs
    are removed first (:func:`~nnprobe.core.io.remove_stale_temporaries`).
    """
    with logged(smk.log[0]) as log:
        log.info("rule %s%s", smk.rule, _wildcards(smk))
        set_threads(smk.threads)
        gpus = int(getattr(smk.resources, "gpu", 0) or 0)
        allow_cpu = bool(smk.config.get("resources", {}).get("allow_cpu", False))
        code = list(getattr(smk.input, "code", None) or [])
        engine = {**smk.config.get("engine", {}), "code_version": code_version(code)}
        job = Job(log, gpus, allow_cpu, engine, smk.log[0])
        removed = remove_stale_temporaries([*map(str, getattr(smk, "output", [])), job.checkpoints])
        if removed:
            log.info("removed %d temporary file(s) a killed run left: %s", len(removed), removed[:3])
        log.info("code version %s (%d package modules)", engine["code_version"], len(code))
        yield job
