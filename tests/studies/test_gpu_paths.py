"""The GPU recipes of the studies' training jobs, run on the CPU against their eager float32 paths.

config/config.yaml's GPU settings, `train: {layout: gemm, compile: default, precision: bf16-mixed}`
for the mislabel populations and `noise.train: {compile, channels_last, precision: bf16-mixed}`
for the ResNets, are proven here through the studies' own job functions (the ones the rules'
scripts call), on the real 8x8 digits, so that a GPU window is spent on results and not on
debugging. Inductor compiles for the CPU (it needs a C++ compiler). Each test states its
tolerance:

* speed switches (layout, compile, channels-last) compute the same function: in float32 the
  weights of the compiled / packed / channels-last job equal the eager job's to rounding;
* bf16 changes rounding, and rounding differences grow through training (a ResNet's BatchNorm
  gradients at initialisation differ by 20-30% between bf16 and float32), so a bf16 job is held
  to the float32 job's test accuracies, member by member and in distribution.

A compiled job costs about 45-60 s of CPU on the 2-core build machine (the compilation, with an
empty Inductor cache); each path compiles in one test, once, with fixed batch shapes (no
recompilation for a shorter last batch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from nnprobe.core.naming import network_files, network_name
from nnprobe.core.weights import read_weights
from nnprobe.engines import population as population_engine
from nnprobe.models.resnet import resnet18_cifar
from nnprobe.studies.mislabel.jobs import train_population
from nnprobe.studies.noise.jobs import train_resnet

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

#: The mislabel study's recipe (Adam 1e-3, eps 1e-7) on the digits, eager float32 in the vmap layout: the reference.
EAGER = {"epochs": 1, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "eps": 1e-7, "precision": "32-true"}
EAGER_SPEED = {"layout": "vmap", "compile": "none"}
MODEL = {"architecture": "keras_cnn", "padding": "same"}
#: The noise study's ResNet recipe, narrow, on the digits, eager float32 in the contiguous layout.
RESNET = {"epochs": 1, "batch_size": 64, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
          "label_smoothing": 0.1, "warmup_fraction": 0.25, "crop_padding": 1, "flip": False,
          "precision": "32-true", "channels_last": False, "compile": False}
ENGINE = {"progress": False, "checkpoint": False}


@pytest.fixture(scope="module")
def digits(cut_training_split, tmp_path_factory) -> Path:
    """The prepared digits, the training split cut to 1,280 images (20 batches of 64: every batch
    of an epoch has the same shape, so a compiled step compiles once) and to 256 (train256.npz)."""
    return cut_training_split(tmp_path_factory.mktemp("digits1280"), {"train": 1280, "train256": 256})


def outputs(folder: Path, names: dict[str, str]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: str(folder / f"{name}.{ext}") for name, ext in names.items()}


def population_job(digits: Path, folder: Path, replicates, pairs=("none", "3-8"), speed=EAGER_SPEED,
                   **train) -> dict[str, dict[str, str]]:
    """Rule train_population's job, as scripts/mislabel/train_population.py calls it, on the CPU;
    its networks' files by name."""
    names = [network_name(p, r) for p in pairs for r in replicates]
    networks = {name: dict(zip(("weights", "metrics"), network_files(str(folder / "networks"), name)))
                for name in names}
    train_population(str(digits / "train.npz"), str(digits / "test.npz"), networks, str(folder / "history.csv"),
                     seed=0, num_classes=10, fraction=0.5, model=MODEL, train={**EAGER, **train},
                     speed={**EAGER_SPEED, **speed}, engine=ENGINE, checkpoints=str(folder / "checkpoints"),
                     device=torch.device("cpu"))
    return networks


def weights_of(networks: dict[str, dict[str, str]]) -> dict[str, dict[str, torch.Tensor]]:
    return {name: read_weights(files["weights"]).tensors for name, files in networks.items()}


def largest_difference(weights: dict, reference: dict) -> float:
    return max(float((weights[net][key] - value).abs().max())
               for net, tensors in reference.items() for key, value in tensors.items())


def member_accuracy(networks: dict[str, dict[str, str]]) -> pd.Series:
    """Every network's test accuracy over all classes, indexed by (pair, replicate)."""
    table = pd.concat([pd.read_parquet(files["metrics"]) for files in networks.values()])
    correct = (table["accuracy"] * table["n_images"]).groupby([table["pair"], table["replicate"]]).sum()
    return correct / table.groupby(["pair", "replicate"])["n_images"].sum()


@pytest.mark.slow  # torch.compile / bf16 training: a minute or two each (not in make test-fast)
def test_compiled_gemm_population_job_equals_the_eager_job(digits, tmp_path, monkeypatch, caplog):
    """train: {layout: gemm, compile: default} against {layout: vmap, compile: none}, float32, same
    seeds: 20 Adam steps of 4 networks (2 pairs x 2 replicates). Tolerance: weights within 1e-4
    relative + 2e-5 absolute (measured: 3.1e-6 at most), test accuracy of every network equal to
    within one image of 450 (measured: equal). Fused Adam is asked for on CUDA only: not here."""
    asked, compiled_modes = [], []
    make_optimizer, compile_ = population_engine.make_optimizer, torch.compile
    monkeypatch.setattr(population_engine, "make_optimizer",
                        lambda params, spec, fused=False: asked.append(fused) or make_optimizer(params, spec, fused))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: compiled_modes.append(k.get("mode")) or compile_(*a, **k))
    eager = population_job(digits, tmp_path / "eager", range(2))
    assert compiled_modes == []
    with caplog.at_level("INFO", logger="nnprobe"):
        compiled = population_job(digits, tmp_path / "compiled", range(2), speed={"layout": "gemm",
                                                                                  "compile": "default"})
    assert asked == [False, False]
    assert "in the gemm layout" in caplog.text and compiled_modes and set(compiled_modes) == {"default"}
    reference, packed = weights_of(eager), weights_of(compiled)
    print(f"compiled gemm vs eager vmap: weights differ by {largest_difference(packed, reference):.2g} at most")
    for net, tensors in reference.items():
        for key, value in tensors.items():
            torch.testing.assert_close(packed[net][key], value, rtol=1e-4, atol=2e-5, msg=f"{net} {key}")
    difference = member_accuracy(compiled) - member_accuracy(eager)
    assert len(difference) == 4 and difference.abs().max() <= 1 / 450 + 1e-9, difference
    history = pd.read_csv(tmp_path / "compiled" / "history.csv")
    assert history["loss"].iloc[0] == pytest.approx(pd.read_csv(tmp_path / "eager" / "history.csv")["loss"].iloc[0],
                                                    rel=1e-5)


def test_fused_adam_of_cuda_jobs_is_the_same_optimizer(digits, tmp_path, monkeypatch):
    """What a CUDA job asks for (fused Adam, torch's one-kernel update) trains the same networks
    as the CPU's unfused Adam: forced here on the CPU, where torch has fused kernels too.
    Tolerance: weights within 1e-5 relative + 1e-6 (measured: 1.9e-7)."""
    eager = population_job(digits, tmp_path / "unfused", range(2))
    make_optimizer = population_engine.make_optimizer
    monkeypatch.setattr(population_engine, "make_optimizer", lambda params, spec, fused=False: make_optimizer(
        params, spec, fused=True))
    fused = population_job(digits, tmp_path / "fused", range(2))
    reference, trained = weights_of(eager), weights_of(fused)
    print(f"fused vs unfused Adam: weights differ by {largest_difference(trained, reference):.2g} at most")
    for net, tensors in reference.items():
        for key, value in tensors.items():
            torch.testing.assert_close(trained[net][key], value, rtol=1e-5, atol=1e-6, msg=f"{net} {key}")


@pytest.mark.slow  # torch.compile / bf16 training: a minute or two each (not in make test-fast)
def test_bf16_population_job_reaches_the_fp32_accuracy_distribution(digits, tmp_path):
    """train: {layout: gemm, precision: bf16-mixed} (bf16 autocast on the CPU) against the eager
    float32 job, same seeds, 16 baseline networks, 3 epochs. Tolerance: every network within 4
    points of its float32 twin (measured: 1.1 at most), the mean within 1 point (measured: 0.1),
    and Welch's and Levene's tests of mean and spread at p > 0.01 (tests/workflow/test_gpu.py's
    check on the GPU)."""
    fp32 = member_accuracy(population_job(digits, tmp_path / "fp32", range(16), pairs=["none"], epochs=3))
    networks = population_job(digits, tmp_path / "bf16", range(16), pairs=["none"], epochs=3,
                              speed={"layout": "gemm"}, precision="bf16-mixed")
    bf16 = member_accuracy(networks)
    assert (fp32 > 0.8).all() and (bf16 > 0.8).all()
    difference = bf16 - fp32
    print(f"bf16 - fp32 test accuracy over 16 networks: mean {difference.mean():+.4f}, largest "
          f"{difference.abs().max():.4f}; fp32 {fp32.mean():.4f} +- {fp32.std():.4f}, bf16 {bf16.mean():.4f} +- "
          f"{bf16.std():.4f}")
    assert difference.abs().max() < 0.04 and abs(difference.mean()) < 0.01, difference.describe()
    assert stats.ttest_ind(bf16, fp32, equal_var=False).pvalue > 0.01
    assert stats.levene(bf16, fp32).pvalue > 0.01
    assert not difference.eq(0).all()  # bf16 did run: it rounds differently
    assert read_weights(networks["none/r000"]["weights"]).config["train"]["precision"] == "bf16-mixed"


def resnet_job(digits: Path, folder: Path, seed: int, split: str = "train", **train) -> tuple[dict, dict[str, torch.Tensor]]:
    """Rule noise_train's job (multiclass, width 4), as scripts/noise/noise_train.py calls it, on the CPU."""
    files = outputs(folder, {"weights": "safetensors", "metrics": "json", "history": "csv"})
    train_resnet(str(digits / f"{split}.npz"), str(digits / "test.npz"), files, task="multiclass", seed_index=seed,
                 seed=0, width=4, train={**RESNET, **train}, binary_classes=["3", "8"], engine=ENGINE,
                 checkpoints=str(folder / "checkpoints"), device=torch.device("cpu"))
    return json.loads(Path(files["metrics"]).read_text()), dict(read_weights(files["weights"]).tensors)


@pytest.mark.slow  # torch.compile / bf16 training: a minute or two each (not in make test-fast)
def test_compiled_channels_last_resnet_job_equals_the_eager_job(digits, tmp_path):
    """noise.train: {compile: true, channels_last: true} against the eager contiguous job, same
    seed, in float64 (precision 64-true): 4 SGD steps of the recipe (one-cycle, Nesterov, weight
    decay, label smoothing, crops) on 256 images. Tolerance: weights and BatchNorm statistics
    within 1e-9 of the distance the weights travelled (4.4; measured: 4e-14 at most).
    Why float64: this width-4 ResNet on 8x8 digits amplifies float32 rounding chaotically (the
    eager contiguous and channels-last jobs, equal to 2e-6 after one step, differ by 20% of the
    weights' travel after four), so float32 could only be compared by accuracy."""
    eager, eager_weights = resnet_job(digits, tmp_path / "eager", 0, split="train256", precision="64-true")
    fast, fast_weights = resnet_job(digits, tmp_path / "fast", 0, split="train256", precision="64-true", compile=True,
                                    channels_last=True)
    start = _resnet_initial_weights(eager["run_seed"])
    moved = sum(float((eager_weights[n] - start[n]).norm() ** 2) for n in start) ** 0.5
    assert moved > 0.1
    print(f"compiled channels-last vs eager ResNet (float64): largest difference "
          f"{max(float((fast_weights[n] - v).abs().max()) for n, v in eager_weights.items()):.2g}, travel {moved:.2f}")
    for name, value in eager_weights.items():
        assert fast_weights[name].dtype == value.dtype == (torch.float64 if value.is_floating_point() else torch.int64)
        torch.testing.assert_close(fast_weights[name], value, rtol=0, atol=1e-9 * moved, msg=name)
    assert fast["test_accuracy"] == eager["test_accuracy"]


def _resnet_initial_weights(run_seed: int) -> dict[str, torch.Tensor]:
    model = resnet18_cifar(10, 1, 4, seed=run_seed)
    return {name: p.detach().double() for name, p in model.named_parameters()}


@pytest.mark.slow  # torch.compile / bf16 training: a minute or two each (not in make test-fast)
def test_bf16_resnet_job_reaches_the_fp32_accuracy(digits, tmp_path):
    """noise.train: {precision: bf16-mixed, channels_last: true} (bf16 autocast on the CPU, in
    training and in the test accuracy) against the eager float32 job, 4 seeds, 8 epochs (the
    accuracy near its ceiling, so that seeds scatter little). Tolerance: every seed within 5
    points of its float32 twin, the mean within 3 points (measured: 1.8 and 0.6; the seeds' sd is
    about 1.3 points)."""
    fp32, bf16 = [], []
    for seed in range(4):
        fp32.append(resnet_job(digits, tmp_path / f"fp32-{seed}", seed, epochs=8)[0]["test_accuracy"])
        metrics, weights = resnet_job(digits, tmp_path / f"bf16-{seed}", seed, epochs=8, precision="bf16-mixed",
                                      channels_last=True)
        bf16.append(metrics["test_accuracy"])
        assert all(t.dtype != torch.bfloat16 for t in weights.values())  # float32 weights under autocast
    fp32, bf16 = np.array(fp32), np.array(bf16)
    print(f"ResNet test accuracy, fp32 {fp32.round(4)}, bf16 {bf16.round(4)}")
    assert (fp32 > 0.85).all() and (bf16 > 0.85).all()
    assert np.abs(bf16 - fp32).max() < 0.05 and abs(bf16.mean() - fp32.mean()) < 0.03
