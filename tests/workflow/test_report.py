"""The report a user opens: the demo's Snakemake report carries the key tables beside the figures,
and renders in a browser (Debian's headless Chromium; installed here if missing only with
NNPROBE_INSTALL_CHROMIUM=1, skipped where that is impossible) into a page that lists every study."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
from conftest import APT_GET, apt_lock

REPO = Path(__file__).resolve().parents[2]
#: The key tables of every study, each in the report with its caption (report/table_*.rst).
KEY_TABLES = {
    "results/mislabel/tables/welch_confused_vs_clean.csv": "table_welch.rst",
    "results/mislabel/tables/information_confused_vs_clean.csv": "table_information.rst",
    "results/adversarial/tables/zoo.csv": "table_zoo.rst",
    "results/adversarial/tables/cross_model.csv": "table_cross_model.rst",
    "results/adversarial/tables/cross_training_set.csv": "table_cross_training_set.rst",
    "results/noise/tables/agreement.csv": "table_noise_agreement.rst",
    "results/visualize/tables/models.csv": "table_visualize_models.rst",
    "results/visualize/tables/class_patterns.csv": "table_class_patterns.rst",
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(demo_run, run_snakemake) -> Path:
    path = demo_run / "report.html"
    if not path.exists():
        proc = run_snakemake(["--report", path], directory=demo_run)
        assert proc.returncode == 0, proc.stdout[-4000:]
    return path


def chromium() -> str:
    """Debian's chromium; when it is missing, installed with apt-get (root) only if
    NNPROBE_INSTALL_CHROMIUM=1 (.ci/run sets it: a test run installs no system package unasked),
    else skip."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("NNPROBE_INSTALL_CHROMIUM") != "1":
        pytest.skip("chromium is not installed: set NNPROBE_INSTALL_CHROMIUM=1 to let the test install it "
                    "with apt-get (root), or install it yourself")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*APT_GET, "install", "-y", "-q", "--no-install-recommends", "chromium"]
    with apt_lock():
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run([*APT_GET, "update", "-q"], env=env, capture_output=True, timeout=900)
            subprocess.run(install, env=env, capture_output=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.skip("`apt-get install chromium` failed")
    return found


@pytest.mark.slow
def test_the_report_carries_the_key_tables(report):
    text = report.read_text(encoding="utf-8")
    for table, caption in KEY_TABLES.items():
        assert table in text, f"{table} is not in the report"
        first = (REPO / "report" / caption).read_text().split()[:6]
        assert " ".join(first) in text, f"the caption of {table} is not in the report"


@pytest.mark.slow
def test_the_report_renders_in_a_browser(report, tmp_path):
    browser = chromium()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=300)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    for category in ("Mislabel study", "Adversarial study", "Noise study", "Visualize study", "Configuration"):
        assert re.search(rf">\s*{category}\s*<", rendered), f"the rendered page lists no {category!r}"
    assert re.search(r">\s*Workflow\s*<", rendered)
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1400,1000", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=300, check=True)
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (1000, 1400) and image.std() > 0.05, "the screenshot is blank"
