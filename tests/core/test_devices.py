"""Where a job computes (nnprobe.core.devices): the device policy and the line that names it."""

from __future__ import annotations

import importlib.metadata
import logging
import os

import pytest
import torch

from nnprobe.core.devices import NoGPUError, job_device, runtime_summary


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("before", ["0,1", None])
def test_a_cpu_job_hides_cuda(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", before)
    assert job_device(0) == torch.device("cpu")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_a_gpu_job_without_a_gpu_says_what_to_do(monkeypatch, no_cuda):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    with pytest.raises(NoGPUError) as raised:
        job_device(1)
    message = str(raised.value)
    assert "this job reserved 1 GPU(s) (config key resources.train_gpu) but torch finds no CUDA device" in message
    assert f"torch {torch.__version__}" in message and "CUDA_VISIBLE_DEVICES='7'" in message
    assert "set resources.train_gpu=0" in message and "set resources.allow_cpu=true" in message


def test_a_gpu_job_may_fall_back_to_the_cpu(no_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger="nnprobe"):
        assert job_device(1, allow_cpu=True) == torch.device("cpu")
    [record] = [r for r in caplog.records if r.name == "nnprobe"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == ("this job reserved 1 GPU(s) but torch finds none: it runs on the CPU "
                                   "(resources.allow_cpu is true)")


def test_runtime_summary_on_the_cpu():
    line = runtime_summary(torch.device("cpu"), "bf16-mixed")
    lightning = importlib.metadata.version("pytorch-lightning")
    assert line.startswith(f"device cpu ({torch.get_num_threads()} threads), precision bf16-mixed, ")
    assert f"torch {torch.__version__}" in line and line.endswith(f"Lightning {lightning}")
    assert (f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build") in line
    assert "precision" not in runtime_summary(torch.device("cpu"))


def test_runtime_summary_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (9, 0))
    line = runtime_summary(torch.device("cuda", 1), "32-true")
    assert line.startswith("device cuda:1 (Fake GPU 1, compute capability 9.0), precision 32-true, ")
    assert runtime_summary(torch.device("cuda")).startswith("device cuda:0 (Fake GPU 0, ")
