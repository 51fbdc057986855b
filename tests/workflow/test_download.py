"""Download as its own step: one rule per torchvision dataset whose outputs are the raw files
torchvision downloads, one job per dataset even when two studies use it, skipped when the files
are already in place, and failing offline with a message that names the offline sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnprobe.core.naming import TORCHVISION_RAW_FILES

REPO = Path(__file__).resolve().parents[2]


def dry_run_jobs(run_snakemake, directory: Path, config: str, *targets: str) -> dict[str, int]:
    path = directory / "data.yaml"
    path.write_text(config)
    proc = run_snakemake(["-n", *targets], directory=directory, configfiles=(REPO / "config" / "config.yaml", path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    if "Nothing to be done" in proc.stdout:
        return {}
    lines = proc.stdout.splitlines()
    start = lines.index("Job stats:")
    counts = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


def test_the_paper_config_downloads_each_dataset_once(run_snakemake, tmp_path):
    counts = dry_run_jobs(run_snakemake, tmp_path, "seed: 0\n")
    assert counts["download_cifar10"] == 1 and counts["download_mnist"] == 1
    assert "download_fashion_mnist" not in counts


def test_two_studies_on_one_dataset_download_it_once(run_snakemake, tmp_path):
    same = "dataset: {source: torchvision, name: mnist, root: data/torchvision, num_classes: 10}\n"
    counts = dry_run_jobs(run_snakemake, tmp_path, same)
    assert counts["download_mnist"] == 1 and "download_cifar10" not in counts
    assert counts["prepare_dataset"] == 1 and counts["prepare_adversarial_dataset"] == 1


def test_files_in_place_skip_the_download(run_snakemake, tmp_path):
    for name in ("cifar10", "mnist"):
        for file in TORCHVISION_RAW_FILES[name]:
            path = tmp_path / "data" / "torchvision" / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"placed by hand")
    counts = dry_run_jobs(run_snakemake, tmp_path, "seed: 0\n")
    assert not {rule for rule in counts if rule.startswith("download_")}, counts
    assert counts["prepare_dataset"] == 1


def test_offline_the_download_fails_naming_the_offline_sources(run_snakemake, tmp_path):
    target = f"data/torchvision/{TORCHVISION_RAW_FILES['mnist'][0]}"
    proc = run_snakemake([target, "--cores", "1"], directory=tmp_path, configfiles=(REPO / "config" / "config.yaml",),
                         timeout=300)
    assert proc.returncode != 0
    log = next((tmp_path / "results" / "logs" / "data" / "download_mnist").rglob("*.log")).read_text()
    assert "needs internet access" in log and "dataset.source=image_folder" in log and "dataset.source=idx" in log
    assert not (tmp_path / target).exists()


@pytest.mark.parametrize("name", sorted(TORCHVISION_RAW_FILES))
def test_the_raw_files_are_torchvisions(name):
    import torchvision.datasets as tvd

    cls = {"cifar10": tvd.CIFAR10, "mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    files = set(TORCHVISION_RAW_FILES[name])
    if name == "cifar10":
        expected = {f"{cls.base_folder}/{f}" for f, _ in cls.train_list + cls.test_list} | {
            f"{cls.base_folder}/{cls.meta['filename']}"}
    else:
        folder = f"{cls.__name__}/raw"
        expected = {f"{folder}/{f}" for f, _ in cls.resources} | {f"{folder}/{f.removesuffix('.gz')}" for f, _ in cls.resources}
    assert files == expected
    assert all(re.fullmatch(r"[\w./-]+", f) for f in files)
