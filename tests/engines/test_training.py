"""The training engine (nnprobe.engines.training): what every network's training shares.

In-process tests on tiny data: the history and its CSV, the log lines a person reads, resuming
from a checkpoint (an exception stands in for the kill here; test_resume.py kills real
processes), checkpoints of another configuration ignored, precision, the determinism switch,
the optimizer's fused kernels, and a population's report of mean member loss and accuracy.
"""

from __future__ import annotations

import csv
import logging
import os

import numpy as np
import pytest
import torch
from torch import nn

from nnprobe.core.provenance import code_version
from nnprobe.engines import training
from nnprobe.engines.classifier import ClassifierTask
from nnprobe.engines.population import PopulationTask, init_population
from nnprobe.engines.training import (
    OptimizerSpec,
    Step,
    TrainingTask,
    TrainOptions,
    epoch_generator,
    fit,
    make_optimizer,
    one_cycle,
    remove_checkpoints,
    step_schedule,
)
from nnprobe.models.keras_cnn import keras_cnn

N = 96


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(N, 1, 8, 8), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 3, size=N))
    return images, labels


def mlp_task(data, seed: int = 0, lr: float = 1e-2, **kwargs) -> ClassifierTask:
    images, labels = data
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    return ClassifierTask(net, images, labels, batch_size=16, order_seed=seed,
                          optimizer=OptimizerSpec("adam", lr=lr), **kwargs)


def options(tmp_path, **kwargs) -> TrainOptions:
    return TrainOptions(kwargs.pop("epochs", 4), progress=False, checkpoint_dir=tmp_path / "ckpt",
                        history=tmp_path / "history.csv", name="tiny", **kwargs)


def state(task: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.state_dict().items()}


def test_history_csv_and_one_log_line_per_epoch(data, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nnprobe.engine")
    history = fit(mlp_task(data), options(tmp_path, epochs=3))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(0 <= row["accuracy"] <= 1 and row["images_per_s"] > 0 for row in history)
    with open(tmp_path / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "images_per_s", "seconds", "lr"}
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage() and "/3" in r.getMessage()]
    assert len(lines) == 3
    assert "loss" in lines[0] and "train accuracy" in lines[0] and "images/s" in lines[0] and "left" in lines[0]
    assert any("device cpu" in r.getMessage() and "precision 32-true" in r.getMessage() for r in caplog.records)


def test_progress_bar_goes_to_the_job_log(data, tmp_path, capsys):
    fit(mlp_task(data), TrainOptions(1, progress=True, name="barred"))
    assert "barred epoch 1/1" in capsys.readouterr().err


def test_resume_after_an_interruption_gives_the_same_weights(data, tmp_path, interrupted_after_epoch, caplog):
    reference = mlp_task(data, schedule="cosine")
    fit(reference, TrainOptions(4, progress=False, name="tiny"))

    with interrupted_after_epoch(2, KeyboardInterrupt):
        fit(mlp_task(data, schedule="cosine"), options(tmp_path))
    caplog.set_level(logging.INFO, logger="nnprobe.engine")
    resumed = mlp_task(data, schedule="cosine")
    history = fit(resumed, options(tmp_path))
    assert any("resuming" in r.getMessage() and "after epoch 2 of 4" in r.getMessage() for r in caplog.records)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]  # the first two rows come from the checkpoint
    for name, tensor in state(reference).items():
        assert torch.equal(state(resumed)[name], tensor), name


def test_a_checkpoint_of_another_configuration_is_ignored(data, tmp_path, caplog):
    fit(mlp_task(data, lr=1e-2), options(tmp_path, fingerprint={"lr": 1e-2}))
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    caplog.set_level(logging.INFO, logger="nnprobe.engine")
    other = mlp_task(data, lr=1e-3)
    fit(other, options(tmp_path, fingerprint={"lr": 1e-3}))
    message = next(r.getMessage() for r in caplog.records if "ignoring checkpoint" in r.getMessage())
    assert "another configuration" in message and "lr" in message
    fresh = mlp_task(data, lr=1e-3)
    fit(fresh, TrainOptions(4, progress=False))
    for name, tensor in state(fresh).items():
        assert torch.equal(state(other)[name], tensor), name


def test_a_checkpoint_written_under_other_code_is_ignored(data, tmp_path, interrupted_after_epoch, caplog):
    """A job killed after epoch 2, its code edited, run again: it starts over under the new code
    instead of finishing the old epochs with it (the code version is in the fingerprint)."""
    module = tmp_path / "src" / "nnprobe" / "engines" / "step.py"
    module.parent.mkdir(parents=True)
    module.write_text("SCALE = 1.0\n")
    engine = {"progress": False, "code_version": code_version([module])}
    with interrupted_after_epoch(2, KeyboardInterrupt):
        fit(mlp_task(data), TrainOptions.from_config(engine, checkpoint_dir=tmp_path / "ckpt", epochs=4, name="tiny"))
    module.write_text("SCALE = 2.0  # edited while the job was down\n")
    edited = {**engine, "code_version": code_version([module])}
    assert edited["code_version"] != engine["code_version"]
    caplog.set_level(logging.INFO, logger="nnprobe.engine")
    history = fit(mlp_task(data), TrainOptions.from_config(edited, checkpoint_dir=tmp_path / "ckpt", epochs=4,
                                                            name="tiny"))
    message = next(r.getMessage() for r in caplog.records if "ignoring checkpoint" in r.getMessage())
    assert "under other code" in message and engine["code_version"] in message
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    # the same code in another checkout has the same version: a moved job still resumes
    moved = tmp_path / "elsewhere" / "src" / "nnprobe" / "engines" / "step.py"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(module.read_bytes())
    assert code_version([moved]) == edited["code_version"]


def test_an_unreadable_checkpoint_is_ignored_with_a_warning(data, tmp_path, caplog):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.ckpt").write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING, logger="nnprobe.engine"):
        history = fit(mlp_task(data), options(tmp_path, epochs=1))
    assert len(history) == 1
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_remove_checkpoints_deletes_the_job_folder_only(data, tmp_path):
    opts = options(tmp_path, epochs=1)
    fit(mlp_task(data), opts)
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    remove_checkpoints(opts)
    assert not (tmp_path / "ckpt").exists() and (tmp_path / "history.csv").is_file()
    remove_checkpoints(opts)  # nothing left: no error


def test_no_checkpoint_dir_writes_nothing(data, tmp_path):
    fit(mlp_task(data), TrainOptions(1, progress=False))
    assert not any(tmp_path.iterdir())


def test_from_config_honours_engine_checkpoint_switch(tmp_path):
    on = TrainOptions.from_config({"checkpoint": True, "progress": False}, checkpoint_dir=tmp_path, epochs=1)
    off = TrainOptions.from_config({"checkpoint": False, "deterministic": True}, checkpoint_dir=tmp_path, epochs=1)
    assert on.checkpoint_dir == tmp_path and not on.progress and not on.deterministic
    assert off.checkpoint_dir is None and off.deterministic and off.progress


def test_64_true_precision_trains_in_float64(data):
    task = mlp_task(data)
    fit(task, TrainOptions(1, precision="64-true", progress=False))
    assert all(p.dtype == torch.float64 for p in task.network.parameters())


def test_deterministic_switch_holds_during_training_only(data):
    seen = []

    class Spy(ClassifierTask):
        def training_step(self, idx):
            seen.append(torch.are_deterministic_algorithms_enabled())
            return super().training_step(idx)

    images, labels = data
    task = Spy(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), images, labels, batch_size=48, order_seed=0)
    before = torch.are_deterministic_algorithms_enabled()
    fit(task, TrainOptions(1, progress=False, deterministic=True))
    assert seen and all(seen)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_optimizer_is_fused_only_when_asked():
    params = [nn.Parameter(torch.zeros(3, 2))]
    assert make_optimizer(params, OptimizerSpec("adam"), fused=True).defaults["fused"] is True
    assert not make_optimizer(params, OptimizerSpec("adam"), fused=False).defaults["fused"]
    sgd = make_optimizer(params, OptimizerSpec("sgd", lr=0.1, momentum=0.9, nesterov=True), fused=True)
    assert sgd.defaults["fused"] is True and sgd.defaults["nesterov"] is True


def test_fit_asks_for_fused_kernels_on_cuda_only(data):
    asked = []

    class Spy(ClassifierTask):
        def configure_optimizers(self, fused, epochs):
            asked.append(fused)
            return super().configure_optimizers(fused, epochs)

    images, labels = data
    fit(Spy(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), images, labels, batch_size=48, order_seed=0),
        TrainOptions(1, progress=False, device="cpu"))
    assert asked == [False]
    assert training.fused_kernels(torch.device("cuda", 1)) and training.fused_kernels("cuda")  # what fit asks there
    assert not training.fused_kernels("cpu")


def test_a_precision_runs_as_named_on_the_cpu(data, caplog):
    """bf16-mixed is bf16 autocast on a CPU job too (said in the log); 16-mixed, which Lightning
    would turn into bf16 there, is refused before anything trains."""
    seen = []

    class Spy(ClassifierTask):
        def training_step(self, idx):
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
            return super().training_step(idx)

    images, labels = data
    task = Spy(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), images, labels, batch_size=48, order_seed=0)
    with caplog.at_level(logging.INFO, logger="nnprobe.engine"):
        fit(task, TrainOptions(1, progress=False, precision="bf16-mixed", name="tiny"))
    assert seen == [torch.bfloat16] * 2
    assert all(p.dtype == torch.float32 for p in task.network.parameters())
    assert "bf16-mixed: bfloat16 autocast on the cpu, float32 weights and optimizer" in caplog.text
    with pytest.raises(ValueError, match=r"precision 16-mixed \(float16 autocast with loss scaling\) runs on CUDA "
                                         r"only and this job runs on the cpu: .* bf16-mixed .* or 32-true"):
        fit(task, TrainOptions(1, progress=False, precision="16-mixed"))
    assert training.check_precision("16-mixed", "cuda") == ("16-mixed: float16 autocast on the cuda, float32 "
                                                            "weights and optimizer")
    assert training.check_precision("64-true", "cpu") == "64-true: 64-bit floats throughout"


def test_weight_decay_of_weights_only_exempts_biases():
    net = nn.Linear(4, 2)
    opt = make_optimizer(list(net.parameters()), OptimizerSpec("sgd", lr=0.1, weight_decay=0.5, decay_weights_only=True))
    decays = {tuple(g["params"][0].shape): g["weight_decay"] for g in opt.param_groups}
    assert decays == {(2, 4): 0.5, (2,): 0.0}


def test_schedules():
    assert one_cycle(0, 100, 0.25) == pytest.approx(1 / 25)
    assert one_cycle(24, 100, 0.25) == pytest.approx(1.0)
    assert one_cycle(99, 100, 0.25) == pytest.approx(1 / 75)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert step_schedule(opt, "constant", 10) is None
    cosine = step_schedule(opt, "cosine", 10)
    for _ in range(10):
        opt.step()
        cosine.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="schedule must be"):
        step_schedule(opt, "linear", 10)


def test_epoch_generator_depends_on_seed_and_epoch_only():
    a = torch.rand(4, generator=epoch_generator(3, 1))
    assert torch.equal(a, torch.rand(4, generator=epoch_generator(3, 1)))
    assert not torch.equal(a, torch.rand(4, generator=epoch_generator(3, 2)))
    assert not torch.equal(a, torch.rand(4, generator=epoch_generator(4, 1)))


def test_steps_per_epoch_limit(data):
    history = fit(mlp_task(data), TrainOptions(2, progress=False, steps_per_epoch=2))
    assert all(row["images_per_s"] > 0 for row in history)


def test_population_reports_mean_member_loss_and_accuracy(data):
    images, labels = data
    population = init_population(lambda g: keras_cnn(1, 3, 8, 1, g), [1, 2])
    task = PopulationTask(population, images, torch.stack([labels, labels]), [5, 6], [0.5], [0.29], batch_size=N)
    history = fit(task, TrainOptions(1, progress=False))
    # one full batch: the reported loss is the mean over members of their mean cross-entropy (log 3 at init)
    assert history[0]["loss"] == pytest.approx(np.log(3), abs=0.35)
    assert 0 <= history[0]["accuracy"] <= 1


def test_options_are_checked():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainOptions(1, precision="fp8")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainOptions(0)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        OptimizerSpec("rmsprop")


def test_training_task_methods_must_be_defined():
    with pytest.raises(NotImplementedError):
        TrainingTask().train_batches(0)
    assert isinstance(Step(torch.zeros(()), 1).examples, int)


@pytest.mark.parametrize("user_set", [False, True])
def test_fabric_leaves_the_cuda_check_cheap_unless_the_user_chose_nvml(monkeypatch, user_set):
    # Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1, which makes the CUDA check that
    # torch's optimizers run on every step ask NVML anew each time.
    monkeypatch.setattr(training, "_USER_NVML_CHECK", "1" if user_set else None)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    training.make_fabric(TrainOptions(epochs=1, device="cpu", progress=False))
    assert ("PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ) == user_set
