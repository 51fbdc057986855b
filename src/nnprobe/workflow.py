"""Glue shared by the Snakemake scripts: logging into the rule's log file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

__all__ = ["logged"]


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
