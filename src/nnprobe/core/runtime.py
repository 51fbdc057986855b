"""Where and how a job runs: its log file, its device, its threads.

One device policy for every job of the workflow (:func:`job_device`): a job computes on a GPU
only if its rule reserved one (Snakemake resource ``gpu``); a CPU job hides CUDA from torch, so
it never creates a CUDA context even on a GPU node. :func:`runtime_summary` is the line every
job log starts with: device, precision, threads, torch, CUDA and Lightning versions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["logged", "Job", "snakemake_job", "job_device", "set_threads", "runtime_summary", "NoGPUError"]


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send ``logging``, stdout and stderr (progress bars, warnings, tracebacks) to ``log_path``.

    A failure inside the block is written to the log with its traceback and re-raised, so
    Snakemake reports the job as failed and the log says why.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logger = logging.getLogger("nnprobe")
        try:
            yield logger
        except BaseException:
            logger.exception("failed")
            raise
        finally:
            root.removeHandler(handler)


class NoGPUError(RuntimeError):
    """A job reserved a GPU but the machine it runs on has none that torch can use."""


def job_device(gpus: int = 0, *, allow_cpu: bool = False):
    """The ``torch.device`` a job computes on, from the GPUs its rule reserved.

    ``gpus`` is the rule's ``resources: gpu`` (0 when the rule asks for none). With 0 the job
    runs on the CPU and CUDA is hidden from this process (``CUDA_VISIBLE_DEVICES=""`` before
    torch first looks for a GPU), so it never touches a GPU that another job reserved. With
    ``gpus >= 1`` the job runs on the first visible GPU (a scheduler such as SLURM makes only
    the job's own GPUs visible). If there is none, :class:`NoGPUError` says how to proceed,
    unless ``allow_cpu`` (config key ``resources.allow_cpu``) lets the job fall back to the CPU.
    """
    import torch

    if gpus <= 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
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


def set_threads(threads: int) -> None:
    """Let the job's libraries use the rule's ``threads`` (Snakemake runs jobs side by side: more oversubscribe).

    torch (when it is imported), OpenMP and BLAS read the limit; measured on 2 cores, leaving
    torch at its default slowed the demo's parallel jobs 20-fold.
    """
    threads = str(max(1, int(threads)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = threads
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def runtime_summary(device, precision: str | None = None) -> str:
    """One line naming where a job computes: device, precision, threads, torch, CUDA, Lightning."""
    import torch

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
    """What a script needs of its Snakemake job: the logger of its log file and its device.

    The device is decided on first use (:func:`job_device` with the rule's ``gpu`` resource and
    the config key ``resources.allow_cpu``) and logged with :func:`runtime_summary`; scripts
    that compute nothing with torch never import it.
    """

    def __init__(self, log: logging.Logger, gpus: int, allow_cpu: bool) -> None:
        self.log = log
        self.gpus = gpus
        self.allow_cpu = allow_cpu

    @functools.cached_property
    def device(self):
        device = job_device(self.gpus, allow_cpu=self.allow_cpu)
        self.log.info("%s", runtime_summary(device))
        return device


@contextlib.contextmanager
def snakemake_job(smk: Any) -> Iterator[Job]:
    """Run a Snakemake script's job: log into the rule's log, use the rule's threads, and its GPUs only.

    ``smk`` is the ``snakemake`` object of a script. Everything the job prints and any
    traceback go to ``smk.log[0]``.
    """
    with logged(smk.log[0]) as log:
        log.info("rule %s%s", smk.rule, "".join(f", {k}={v}" for k, v in dict(smk.wildcards).items()))
        set_threads(smk.threads)
        gpus = int(getattr(smk.resources, "gpu", 0) or 0)
        allow_cpu = bool(smk.config.get("resources", {}).get("allow_cpu", False))
        yield Job(log, gpus, allow_cpu)
