"""Where a job computes: one device policy for every job of the workflow.

A job computes on a GPU only if its rule reserved one (Snakemake resource ``gpu``); a CPU job
hides CUDA from torch, so it never creates a CUDA context even on a GPU node.
:func:`runtime_summary` is the line every network job's log starts with: device, precision,
threads, torch, CUDA and Lightning versions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from .runtime import _wildcards, logged, set_threads

__all__ = ["NoGPUError", "job_device", "runtime_summary", "Job", "network_job"]


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
def network_job(smk: Any) -> Iterator[Job]:
    """Run a Snakemake script's job that computes with networks: its log, its threads, its device.

    ``smk`` is the ``snakemake`` object of a script. Everything the job prints and any
    traceback go to the rule's log; the job's device follows the rule's ``gpu`` resource
    (:func:`job_device`).
    """
    with logged(smk.log[0]) as log:
        log.info("rule %s%s", smk.rule, _wildcards(smk))
        set_threads(smk.threads)
        gpus = int(getattr(smk.resources, "gpu", 0) or 0)
        allow_cpu = bool(smk.config.get("resources", {}).get("allow_cpu", False))
        yield Job(log, gpus, allow_cpu)
