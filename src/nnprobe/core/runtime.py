"""Running a job of the workflow: its log file and its threads. No torch here, so the report jobs
(tables and figures, envs/analysis.yaml) can use it; a job that computes with networks uses
:mod:`nnprobe.core.devices`, which adds its device.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["logged", "interrupt_ends_by_sigint", "set_threads", "report_job"]


def _end_by_sigint() -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


@contextlib.contextmanager
def interrupt_ends_by_sigint() -> Iterator[None]:
    """Let a KeyboardInterrupt in the block end the process by SIGINT, as an interrupted program
    should: its parent (a shell, Snakemake, SLURM) then sees "killed by SIGINT", not "failed".

    CPython does this itself for a KeyboardInterrupt nobody caught, unless an exit handler runs
    Python code first: ``torch._dynamo`` (imported by Lightning Fabric and torchvision) registers
    such handlers, and the process then exits with status 1, like a crash. Measured with
    ``python -c "import torch._dynamo, os, signal; os.kill(os.getpid(), signal.SIGINT)"``: status 1;
    without the import: killed by SIGINT. The traceback is still printed and every ``finally``
    still runs: the signal is sent again at exit, before the other exit handlers.
    """
    try:
        yield
    except KeyboardInterrupt:
        atexit.register(_end_by_sigint)
        raise


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send ``logging``, stdout and stderr (progress bars, warnings, tracebacks) to ``log_path``.

    A failure inside the block is written to the log with its traceback and re-raised, so
    Snakemake reports the job as failed and the log says why; an interrupt (Ctrl-C) is logged as
    one and ends the process by SIGINT (:func:`interrupt_ends_by_sigint`).
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logger = logging.getLogger("nnprobe")
        try:
            with interrupt_ends_by_sigint():
                yield logger
        except KeyboardInterrupt:  # Ctrl-C: not a crash
            logger.warning("interrupted (SIGINT); run the job again to resume from its last checkpoint")
            raise
        except BaseException:
            logger.exception("failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(level)


def set_threads(threads: int) -> None:
    """Let the job's libraries use the rule's ``threads`` (Snakemake runs jobs side by side: more oversubscribe).

    torch (when it is imported), OpenMP and BLAS read the limit; measured on 2 cores, leaving
    torch at its default slowed the demo's parallel jobs 20-fold.
    """
    threads = str(max(1, int(threads)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))




def _wildcards(smk: Any) -> str:
    return "".join(f", {k}={v}" for k, v in dict(smk.wildcards).items())


@contextlib.contextmanager
def report_job(smk: Any) -> Iterator[logging.Logger]:
    """Run a Snakemake script's job that reads files and writes tables or figures.

    ``smk`` is the ``snakemake`` object of a script: everything the job prints, and any
    traceback, goes to the rule's log; numpy and BLAS use the rule's threads.
    """
    with logged(smk.log[0]) as log:
        log.info("rule %s%s", smk.rule, _wildcards(smk))
        set_threads(smk.threads)
        yield log
