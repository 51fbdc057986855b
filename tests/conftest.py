"""Shared fixtures: the repository, the venv's Snakemake, one demo run per session, real data,
the 8x8 digits of the unit tests and their thread limit.

``demo_run`` runs the whole demo DAG (config/demo.yaml, scikit-learn digits, a few CPU
minutes) once per pytest session in a temporary directory; every test that needs the
results of a complete run (tables, figures, logs, benchmarks, the report, the SLURM profile
test) reuses that directory instead of running the workflow again. Tests must treat it as
read-only: copy what they want to re-run into a directory of their own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Seconds the demo DAG may take (it takes about 3 minutes on 2 cores).
DEMO_TIMEOUT = 30 * 60
#: The workflow tier: tests that run Snakemake on the workflow (lint, dry runs, the demo, SLURM).
WORKFLOW_TESTS = REPO / "tests" / "workflow"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of tests/workflow is marked ``workflow`` (pyproject.toml): ``make test-fast``
    runs the rest, the package's unit tier (``-m "not workflow and not slow"``)."""
    for item in items:
        if Path(item.path).is_relative_to(WORKFLOW_TESTS):
            item.add_marker(pytest.mark.workflow)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds the Snakefile)."""
    return REPO


@pytest.fixture(scope="session")
def snakemake_exe() -> Path:
    """The ``snakemake`` executable of the venv that runs pytest."""
    exe = Path(sys.executable).parent / "snakemake"
    if not exe.is_file():
        pytest.fail(
            f"snakemake not found at {exe}; install the workflow extra into this venv "
            "(make install, or pip install -e '.[workflow,test]')"
        )
    return exe


#: What a checkout of the workflow holds (the files Snakemake and its jobs read).
CHECKOUT = ("Snakefile", "rules", "scripts", "src", "config", "envs", "profiles", "report", "pyproject.toml")


def make_checkout(dest: Path) -> Path:
    """A copy of this repository's workflow in ``dest``, as a user's clone of it would be."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, dest / name)
    return dest


#: Waits for another process's dpkg lock instead of failing at once.
APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=900"]


@contextlib.contextmanager
def apt_lock():
    """One apt-get at a time across pytest-xdist workers (the SLURM test and the report's browser
    test install packages; two apt-gets at once fail on dpkg's lock)."""
    from filelock import FileLock

    with FileLock(os.path.join(os.environ.get("TMPDIR", "/tmp"), "nnprobe-apt-get.lock")):
        yield


@pytest.fixture(scope="session")
def new_checkout() -> Callable[[Path], Path]:
    """:func:`make_checkout`: a copy of the workflow in a folder, as a user's clone would be."""
    return make_checkout


def snakefile_for(directory: Path | None) -> Path:
    """The Snakefile a run in ``directory`` uses: the directory's own when it is a checkout (the
    demo runs in one), else this repository's."""
    if directory is not None and (Path(directory) / "Snakefile").is_file():
        return Path(directory) / "Snakefile"
    return REPO / "Snakefile"


def snakemake_command(
    exe: Path,
    args: Sequence[str | os.PathLike],
    directory: Path | None = None,
    configfiles: Sequence[Path] | None = (REPO / "config" / "demo.yaml",),
) -> list[str]:
    """The command line that runs Snakemake on this repository's Snakefile, or on the Snakefile of
    ``directory`` when it is a checkout (see ``run_snakemake``)."""
    cmd: list[str] = [str(exe), *map(str, args), "--snakefile", str(snakefile_for(directory))]
    cmd += ["--directory", str(directory if directory is not None else REPO)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles), "--replace-workflow-config"]
    return cmd


def _snakemake_runner(exe: Path) -> Callable[..., subprocess.CompletedProcess]:
    def run(
        args: Sequence[str | os.PathLike],
        directory: Path | None = None,
        configfiles: Sequence[Path] | None = (REPO / "config" / "demo.yaml",),
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run Snakemake on this repository's Snakefile; stdout and stderr together in ``.stdout``.

        ``directory`` is the working directory (``--directory``; the repository when None).
        ``configfiles`` replace the Snakefile's default config/config.yaml
        (``--replace-workflow-config``); pass None to keep the default. Targets belong in
        ``args`` before any option that takes several values (``--resources``, ``--config``).
        """
        return subprocess.run(
            snakemake_command(exe, args, directory, configfiles),
            cwd=directory if directory is not None else REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    return run


@pytest.fixture(scope="session")
def snakemake_args(snakemake_exe: Path) -> Callable[..., list[str]]:
    """A function ``command(args, directory=None, configfiles=(demo.yaml,))``: the command line of
    ``run_snakemake``, for tests that start Snakemake themselves (to kill it, say)."""
    return lambda *args, **kwargs: snakemake_command(snakemake_exe, *args, **kwargs)


@pytest.fixture(scope="session")
def run_snakemake(snakemake_exe: Path) -> Callable[..., subprocess.CompletedProcess]:
    """A function ``run(args, directory=None, configfiles=(demo.yaml,), timeout=300)``.

    Runs the venv's Snakemake on the repository's Snakefile and returns the
    CompletedProcess (stdout and stderr merged in ``.stdout``).
    """
    return _snakemake_runner(snakemake_exe)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, snakemake_exe: Path) -> Path:
    """Run the whole demo DAG once per session in a checkout of the workflow; return the checkout.

    As a user runs it: the results land in the checkout (a copy of this repository's workflow
    files, :func:`make_checkout`), so the code inputs of its jobs are ``src/nnprobe/...`` and a
    copy of the whole folder is a finished run. Set NNPROBE_DEMO_DIR to a folder to run (or
    resume, or just check) the demo there instead of in a fresh temporary folder.

    The directory holds ``results/`` (tables, figures, logs, benchmarks), ``.snakemake/``
    (the metadata ``--report`` needs) and ``snakemake.out`` (the run's console output).
    """
    reuse = os.environ.get("NNPROBE_DEMO_DIR")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        workdir = Path(reuse).resolve() if reuse else tmp_path_factory.mktemp("demo_run")
        _run_demo(workdir, snakemake_exe)
    else:
        # Under pytest-xdist every worker is a session of its own: the first to ask runs the demo
        # in the folder the workers share, the others wait for it and read the same run.
        from filelock import FileLock

        shared = tmp_path_factory.getbasetemp().parent
        workdir = Path(reuse).resolve() if reuse else shared / "demo_run"
        with FileLock(str(shared / "demo_run.lock")):
            if not (shared / "demo_run.done").exists():
                _run_demo(workdir, snakemake_exe)
                (shared / "demo_run.done").touch()
    _fail_unless_done(workdir)
    return workdir


def _run_demo(workdir: Path, snakemake_exe: Path) -> Path:
    """Run (or, in a folder that holds a run, finish or check) the demo in the checkout ``workdir``."""
    if not (workdir / "Snakefile").is_file():
        make_checkout(workdir)
    run = _snakemake_runner(snakemake_exe)
    # Targets (none: rule all) before --resources, which takes several values.
    proc = run(
        ["--profile", workdir / "profiles" / "local", "--cores", "2", "--resources", "gpu=1"],
        directory=workdir,
        timeout=DEMO_TIMEOUT,
        env={"PYTHONPATH": str(workdir / "src")},  # the jobs run the checkout's code, which is their code input
    )
    (workdir / "snakemake.returncode").write_text(str(proc.returncode))
    (workdir / "snakemake.out").write_text(proc.stdout)
    return workdir


def _fail_unless_done(workdir: Path) -> None:
    code = int((workdir / "snakemake.returncode").read_text())
    if code != 0:
        out = (workdir / "snakemake.out").read_text()
        pytest.fail(f"the demo workflow failed (exit {code}) in {workdir}; last lines of its output:\n{out[-6000:]}")


@pytest.fixture(scope="session")
def nnprobe_data() -> Path:
    """The folder of real data named by NNPROBE_DATA (MNIST/raw, cifar10-jpeg), or skip."""
    env = os.environ.get("NNPROBE_DATA")
    if not env:
        pytest.skip(
            "NNPROBE_DATA is not set: extract ../shared/data/*.tar.xz and point NNPROBE_DATA "
            "at it (.ci/run does this)"
        )
    path = Path(env)
    if not path.is_dir():
        pytest.fail(f"NNPROBE_DATA={env} is not a folder; extract ../shared/data/*.tar.xz into it")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread (torch and the BLAS under scipy) for a module of tiny models and
    problems: faster than several on a busy machine, and the same on every machine.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def interrupted_after_epoch(monkeypatch):
    """``with interrupted_after_epoch(2, KeyboardInterrupt):`` around a training run: the engine
    raises the exception right after writing its checkpoint of epoch 2, as a kill there would
    stop it; the block expects the exception, and the engine writes normally again after it."""
    import torch

    from nnprobe.engines import training

    write = training.atomic_write

    @contextlib.contextmanager
    def interrupted(epoch: int, error: type[BaseException]):
        def write_then_stop(path, writer):
            written = write(path, writer)
            if torch.load(path, weights_only=True)["epoch"] == epoch:
                raise error
            return written

        monkeypatch.setattr(training, "atomic_write", write_then_stop)
        try:
            with pytest.raises(error):
                yield
        finally:
            monkeypatch.setattr(training, "atomic_write", write)

    return interrupted


@pytest.fixture
def killed_and_resumed(interrupted_after_epoch, tmp_path):
    """``reference, resumed = killed_and_resumed(run)``, where ``run(checkpoints)`` trains a task
    and returns it: run once whole (no checkpoints), once killed right after its checkpoint of
    epoch 2, once resumed from it; the resumed network's parameters equal the reference's bit for
    bit (asserted here), and the caller compares what else its task keeps."""
    import torch

    class Killed(Exception):
        pass

    def go(run):
        reference = run(None)
        with interrupted_after_epoch(2, Killed):
            run(tmp_path)
        resumed = run(tmp_path)
        for a, b in zip(reference.network.parameters(), resumed.network.parameters(), strict=True):
            assert torch.equal(a, b)
        return reference, resumed

    return go


# --------------------------------------------------------------------------- the digits
# scikit-learn's 8x8 digits in the forms the unit tests use, read once per session; each module
# gets its own tensors, so a test that changes them in place changes no other module's.


@functools.cache
def _digit_splits():
    from nnprobe.core.sources import load_sklearn_digits

    splits, _ = load_sklearn_digits(test_fraction=0.25, seed=0)
    return splits


@pytest.fixture(scope="module")
def digit_images():
    """The digits as the workflow prepares them (source ``sklearn_digits``, test fraction 0.25,
    seed 0): ``{"train": (images, labels), "test": (images, labels)}``, images uint8 ``(N, 1, 8, 8)``."""
    import torch

    return {name: (torch.from_numpy(split.images.copy()), torch.from_numpy(split.labels.copy()))
            for name, split in _digit_splits().items()}


@functools.cache
def _digit_bunch():
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def digit_vectors():
    """All 1,797 digits in scikit-learn's order as vectors of 64 pixels in [0, 1] (float32), and
    their labels (int64): ``(x, y)``."""
    import torch

    bunch = _digit_bunch()
    return torch.tensor(bunch.data / 16.0, dtype=torch.float32), torch.tensor(bunch.target, dtype=torch.int64)


@pytest.fixture(scope="module")
def few_digit_vectors(digit_vectors):
    """The first 300 of :func:`digit_vectors`: seconds-long trainings of tiny networks."""
    x, y = digit_vectors
    return x[:300], y[:300]


@pytest.fixture(scope="module")
def digit_vector_split(digit_vectors):
    """:func:`digit_vectors` split at random (seed 0), 1,400 to train and 397 to test:
    ``{"x_train", "y_train", "x_test", "y_test"}``."""
    import torch

    x, y = digit_vectors
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


@pytest.fixture(scope="session")
def prepared_digits(tmp_path_factory) -> Path:
    """A folder with the digits as rule prepare_dataset writes them (``train.npz``, ``test.npz``,
    ``manifest.json``; source ``sklearn_digits``, test fraction 0.25, seed 0). Read-only: a test
    that cuts the split writes its own folder (``cut_training_split``)."""
    from nnprobe.core.sources import prepare_dataset

    folder = tmp_path_factory.mktemp("prepared_digits")
    prepare_dataset({"source": "sklearn_digits", "test_fraction": 0.25, "seed": 0}, folder / "train.npz",
                    folder / "test.npz", folder / "manifest.json")
    return folder


@pytest.fixture(scope="session")
def cut_training_split(prepared_digits) -> Callable[[Path, dict[str, int]], Path]:
    """``cut(folder, {name: n})``: ``folder`` with the prepared digits' ``test.npz`` and, per
    name, ``name.npz`` holding the first ``n`` training images (smaller, quicker jobs)."""
    from nnprobe.core.splits import Split, load_split, save_split

    def cut(folder: Path, sizes: dict[str, int]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prepared_digits / "test.npz", folder / "test.npz")
        train = load_split(prepared_digits / "train.npz")
        for name, n in sizes.items():
            save_split(Split(train.images[:n], train.labels[:n], train.classes), folder / f"{name}.npz")
        return folder

    return cut
