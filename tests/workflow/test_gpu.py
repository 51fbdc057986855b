"""Checks that need a CUDA GPU and the real CIFAR-10 copy (run on the device machine).

They skip on machines without CUDA (CI) or without NNPROBE_DATA.
"""

import os
import time

import numpy as np
import pytest
import torch
from scipy import stats

from nnprobe.core.folders import load_image_folder
from nnprobe.core.splits import channel_stats
from nnprobe.engines.population import PopulationTask, evaluate_population, init_population
from nnprobe.engines.training import TrainOptions, fit
from nnprobe.models.keras_cnn import keras_cnn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device machine)"),
]

MEMBERS = int(os.environ.get("NNPROBE_GPU_MEMBERS", "16"))
EPOCHS = int(os.environ.get("NNPROBE_GPU_EPOCHS", "10"))


@pytest.fixture(scope="module")
def cifar(nnprobe_data):
    splits, _ = load_image_folder(nnprobe_data / "cifar10-jpeg")
    return splits


def train_accuracies(splits, precision: str, layout: str, compile_mode: str | None) -> np.ndarray:
    train, test = splits["train"], splits["test"]
    mean, std = channel_stats(train.images)
    seeds = range(1000, 1000 + MEMBERS)
    pop = init_population(lambda g: keras_cnn(generator=g), seeds, layout=layout)
    labels = np.broadcast_to(train.labels, (MEMBERS, len(train.labels)))
    start = time.perf_counter()
    task = PopulationTask(pop, train.images, labels, [s + 7 for s in seeds], mean, std, 32, compile_mode=compile_mode)
    fit(task, TrainOptions(epochs=EPOCHS, device="cuda", precision=precision, progress=False))
    seconds = time.perf_counter() - start
    trained = task.trained()
    metrics = evaluate_population(trained, test.images, test.labels, mean, std, 10, "cuda")
    acc = metrics["accuracy"] @ metrics["n_images"] / metrics["n_images"].sum()
    print(f"{precision} {layout} compile={compile_mode}: {MEMBERS} members x {EPOCHS} epochs in {seconds:.1f} s "
          f"({MEMBERS * len(train.labels) * EPOCHS / seconds:,.0f} model-images/s); "
          f"test accuracy {acc.mean():.4f} +- {acc.std(ddof=1):.4f}")
    return acc


def test_bf16_and_fp32_populations_reach_the_same_accuracy(cifar):
    """Same seeds and the same compiled gemm layout, fp32 vs bf16-mixed: mean and spread of test
    accuracy agree within noise."""
    fp32 = train_accuracies(cifar, "32-true", "gemm", "default")
    bf16 = train_accuracies(cifar, "bf16-mixed", "gemm", "default")
    assert fp32.mean() > 0.6 and bf16.mean() > 0.6
    welch = stats.ttest_ind(bf16, fp32, equal_var=False)
    print(f"Welch t {welch.statistic:.3f}, p {welch.pvalue:.3f}; sd ratio {bf16.std(ddof=1) / fp32.std(ddof=1):.2f}")
    assert welch.pvalue > 0.01, "bf16 changes the mean test accuracy"
    assert abs(bf16.mean() - fp32.mean()) < 0.01
    levene = stats.levene(bf16, fp32)
    assert levene.pvalue > 0.01, "bf16 changes the spread of test accuracy"
