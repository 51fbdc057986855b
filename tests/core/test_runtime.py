"""Running a job (nnprobe.core.runtime and nnprobe.core.devices.network_job): everything it says
goes to its log, a failure with its traceback; its threads; its device."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from nnprobe.core.devices import NoGPUError, network_job
from nnprobe.core.runtime import logged, report_job

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(autouse=True)
def restore(monkeypatch):
    """Put back what a job changes in this process: torch's threads, the thread variables, the root
    logger's level and handlers, CUDA_VISIBLE_DEVICES."""
    threads, root = torch.get_num_threads(), logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    for name in (*THREAD_VARIABLES, "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)  # recorded: monkeypatch restores the original afterwards
    yield
    torch.set_num_threads(threads)
    root.setLevel(level)
    assert root.handlers == handlers  # the job's handler is gone


def smk(tmp_path, threads: int = 1, resources: SimpleNamespace | None = None, config: dict | None = None):
    """A stand-in for a script's ``snakemake`` object."""
    module = tmp_path / "src" / "nnprobe" / "engines" / "step.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text("STEP = 1\n")
    return SimpleNamespace(log=[str(tmp_path / "results" / "logs" / "job.log")], rule="noise_train",
                           wildcards={"task": "resnet18", "seed": "3"}, threads=threads,
                           input=SimpleNamespace(code=[str(module)]), output=[str(tmp_path / "results" / "out.json")],
                           resources=resources if resources is not None else SimpleNamespace(), config=config or {})


def test_logged_sends_stdout_stderr_and_logging_to_the_file(tmp_path):
    stdout, stderr = sys.stdout, sys.stderr
    path = tmp_path / "deep" / "folder" / "job.log"  # folders are made
    with logged(path) as log:
        print("printed to stdout")
        print("printed to stderr", file=sys.stderr)
        log.info("an info line")
        logging.getLogger("somebody.else").warning("a warning from a library")
    assert sys.stdout is stdout and sys.stderr is stderr
    logging.getLogger("nnprobe").warning("after the job")
    text = path.read_text()
    assert "printed to stdout\n" in text and "printed to stderr\n" in text
    assert "INFO nnprobe: an info line" in text
    assert "WARNING somebody.else: a warning from a library" in text
    assert "after the job" not in text


def test_logged_logs_a_failure_with_its_traceback_and_reraises(tmp_path):
    path = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError):
        with logged(path):
            print("before the failure")
            1 / 0  # noqa: B018
    text = path.read_text()
    assert "before the failure" in text
    assert "ERROR nnprobe: failed" in text
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: division by zero" in text


def interactive_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a shell, also when the suite runs in the background


def test_an_interrupted_job_logs_it_and_ends_by_sigint(tmp_path):
    """Ctrl-C ends a job as killed by SIGINT, not as failed (status 1), also with torch._dynamo's
    exit handlers registered: they make CPython exit with status 1 otherwise."""
    path = tmp_path / "job.log"
    job = ("import os, signal, torch._dynamo\n"
           "from nnprobe.core.runtime import logged\n"
           f"with logged({str(path)!r}):\n"
           "    print('training', flush=True)\n"
           "    os.kill(os.getpid(), signal.SIGINT)\n")
    proc = subprocess.run([sys.executable, "-c", job], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=interactive_signals, timeout=300)
    assert proc.returncode == -signal.SIGINT, proc.stdout[-2000:]
    text = path.read_text()
    assert "training" in text and "interrupted (SIGINT)" in text
    assert "ERROR nnprobe: failed" not in text


def test_report_job_names_the_rule_and_applies_the_threads(tmp_path):
    job = smk(tmp_path, threads=3)
    with report_job(job) as log:
        assert torch.get_num_threads() == 3
        assert all(os.environ[name] == "3" for name in THREAD_VARIABLES)
        log.info("working")
    lines = (tmp_path / "results" / "logs" / "job.log").read_text().splitlines()
    assert lines[0].endswith("INFO nnprobe: rule noise_train, task=resnet18, seed=3")
    assert lines[1].endswith("INFO nnprobe: working")


def test_report_job_logs_a_failure(tmp_path):
    with pytest.raises(RuntimeError, match="no table"):
        with report_job(smk(tmp_path)):
            raise RuntimeError("no table")
    text = (tmp_path / "results" / "logs" / "job.log").read_text()
    assert "RuntimeError: no table" in text and "Traceback" in text


@pytest.mark.parametrize("resources", [SimpleNamespace(), SimpleNamespace(gpu=0), SimpleNamespace(gpu=None)],
                         ids=["no gpu resource", "gpu=0", "gpu=None"])
def test_network_job_without_a_gpu_computes_on_the_cpu(tmp_path, resources):
    with network_job(smk(tmp_path, threads=2, resources=resources)) as job:
        assert torch.get_num_threads() == 2
        assert job.device == torch.device("cpu")
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # CUDA hidden from a CPU job
    lines = (tmp_path / "results" / "logs" / "job.log").read_text().splitlines()
    assert lines[0].endswith("INFO nnprobe: rule noise_train, task=resnet18, seed=3")
    assert "INFO nnprobe: code version " in lines[1] and "(1 package modules)" in lines[1]
    assert "INFO nnprobe: device cpu (2 threads)" in lines[2]  # the device, once it is decided
    assert job.checkpoints == str(tmp_path / "results" / "checkpoints" / "job")
    assert job.engine["code_version"] and job.history.endswith("logs/job.history.csv")


def test_network_job_with_a_gpu_but_none_found(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGPUError):
        with network_job(smk(tmp_path, resources=SimpleNamespace(gpu=1))) as job:
            job.device  # noqa: B018
    text = (tmp_path / "results" / "logs" / "job.log").read_text()
    assert "NoGPUError: this job reserved 1 GPU(s)" in text and "Traceback" in text
    with network_job(smk(tmp_path, resources=SimpleNamespace(gpu=1), config={"resources": {"allow_cpu": True}})) as job:
        assert job.device == torch.device("cpu")
    text = (tmp_path / "results" / "logs" / "job.log").read_text()
    assert "WARNING nnprobe: this job reserved 1 GPU(s) but torch finds none" in text
