"""The Snakemake workflow: lint, formatting, config validation, the DAG, and the demo end to end.

Fast tests use dry runs (``-n``) in a temporary directory. The ``slow`` tests share one run
of the demo DAG per session (the ``demo_run`` fixture in conftest.py) and re-run one training
target into a fresh directory, killing it halfway, to check that it resumes and reproduces bit for bit.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"
DEMO = REPO / "config" / "demo.yaml"

# Jobs of the mislabel study per config: 45 class pairs + the baseline "none", packed
# mislabel.pairs_per_job to a training job (1 in config.yaml, 12 in demo.yaml); the baseline
# is a job of its own.
MISLABEL_JOBS = {
    "prepare_dataset": 1,
    "collect_metrics": 1,
    "welch_table": 3,
    "information_table": 3,
    "t_heatmap": 3,
    "information_heatmap": 2,
    "accuracy_by_pair": 1,
    "class_dendrogram": 1,
    "effective_config": 1,
    "all": 1,
}


# Targets of rule all per study in demo.yaml (besides results/config.yaml): mislabel: the
# per-model table, 6 tables x 3 formats, 7 figures x 2; adversarial: 8 tables x 3, 8 figures x
# 2; noise: 8 tables x 3, 11 figures x 2; visualize: 2 tables x 3, (3 kinds x 4 models + 2)
# figures x 2.
DEMO_TARGETS = {"mislabel": 1 + 18 + 14, "adversarial": 24 + 16, "noise": 24 + 22, "visualize": 6 + 28}
# Rules that train or attack networks write a benchmark file.
BENCHMARKED_RULES = [
    "train_population", "train_zoo_model", "attack_zoo_model", "adversarial_training",
    "noise_train", "visualize_train", "visualize_features", "visualize_patterns",
]


# --------------------------------------------------------------------------- helpers


def job_counts(output: str) -> dict[str, int]:
    """The first "Job stats" table of Snakemake's output as ``{rule: count}`` (with "total"); the mislabel
    study's training rules (one per job, ``train_population__PACK__BLOCK``) count as ``train_population``."""
    lines = output.splitlines()
    try:
        start = lines.index("Job stats:")
    except ValueError:
        raise AssertionError(f"no 'Job stats:' table in Snakemake's output:\n{output[-3000:]}") from None
    counts = {}
    for line in lines[start + 3 :]:  # skip "job count" and the dashes
        if not line.strip():
            break
        rule, count = line.split()
        rule = "train_population" if rule.startswith("train_population__") else rule
        counts[rule] = counts.get(rule, 0) + int(count)
    return counts


def training_jobs(output: str) -> list[tuple[str, str]]:
    """(pack, block) of every mislabel training job of a dry run, from its log path
    (results/logs/mislabel/train_population/PACK/BLOCK.log: PACK its first..last pair)."""
    return re.findall(r"^\s+log: results/logs/mislabel/train_population/(\S+)/(r\d+-\d+)\.log$", output,
                      flags=re.MULTILINE)


def pack_size(pack: str) -> int:
    """The number of pairs of a pack named by its first and last pair ("1-5..2-9": 1-5 up to 2-9)."""
    if ".." not in pack:
        return 1
    order = [f"{a}-{b}" for a in range(10) for b in range(a + 1, 10)]
    first, last = pack.split("..")
    return order.index(last) - order.index(first) + 1


def dag_paths(output: str, field: str) -> list[str]:
    """Every path of ``field`` ("input", "output", "log", "benchmark") in a dry run's job list."""
    paths = []
    for match in re.finditer(rf"^\s+{field}: (.+)$", output, flags=re.MULTILINE):
        paths += [p.strip() for p in match.group(1).split(",")]
    return paths


def rule_all_inputs(output: str) -> list[str]:
    """The input files of rule all, from a dry run that schedules it."""
    match = re.search(r"^(?:local)?rule all:\n\s+input: (.+)$", output, flags=re.MULTILINE)
    assert match, f"rule all not in the dry run:\n{output[-3000:]}"
    return [p.strip() for p in match.group(1).split(",")]


def dry_run(run_snakemake, tmp_path, *args, configfiles=(CONFIG,)):
    proc = run_snakemake(["-n", *args], directory=tmp_path, configfiles=configfiles)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("configfile", [None, DEMO], ids=["config.yaml", "demo.yaml"])
def test_lint_is_clean(run_snakemake, configfile):
    # config.yaml is the Snakefile's own default configfile: lint it as a user would.
    proc = run_snakemake(["--lint"], configfiles=[configfile] if configfile else None)
    assert proc.returncode == 0, proc.stdout
    assert "Lints for" not in proc.stdout, proc.stdout
    assert not re.search(r"(?i)warning", proc.stdout), proc.stdout
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout


def test_snakefmt_check(snakemake_exe):
    snakefmt = snakemake_exe.parent / "snakefmt"
    proc = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "rules/"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, f"snakefmt would reformat (run snakefmt Snakefile rules/):\n{proc.stdout}"


# --------------------------------------------------------------------------- dry runs


@pytest.fixture(scope="module")
def paper_dry_run(run_snakemake, tmp_path_factory) -> str:
    """The dry run of config/config.yaml's whole DAG (shared by the tests that read it)."""
    return dry_run(run_snakemake, tmp_path_factory.mktemp("paper_dry_run"))


@pytest.fixture(scope="module")
def demo_dry_run(run_snakemake, tmp_path_factory) -> str:
    """The dry run of config/demo.yaml's whole DAG (shared by the tests that read it)."""
    return dry_run(run_snakemake, tmp_path_factory.mktemp("demo_dry_run"), configfiles=(DEMO,))


def study_of_rules() -> dict[str, str]:
    """Every rule of the workflow and the study whose rules file defines it (``data`` and
    ``report`` for the shared files, ``all`` for the Snakefile's target rules)."""
    found = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        study = {"Snakefile": "all", "common": "data", "data": "data"}.get(path.stem, path.stem)
        for name in re.findall(r"^(?:rule|checkpoint) (\w+):", path.read_text(), flags=re.MULTILINE):
            found[name] = study
    return found


def jobs_per_study(output: str) -> dict[str, int]:
    """The jobs a dry run plans, per study (the rule file that defines each rule)."""
    studies, per_study = study_of_rules(), {}
    for rule, n in job_counts(output).items():
        if rule == "total":
            continue
        study = studies.get(rule) or ("mislabel" if rule.startswith("train_population") else "data")
        per_study[study] = per_study.get(study, 0) + n
    return per_study


def test_readme_job_counts_are_what_the_dry_runs_plan(paper_dry_run, demo_dry_run):
    """The README's table of jobs per study and config is what `snakemake -n` plans."""
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- job-counts -->\n(.*?)<!-- /job-counts -->", readme, flags=re.DOTALL)
    assert table, "README.md has no <!-- job-counts --> table"
    rows = {}
    for line in table.group(1).splitlines()[2:]:
        cells = [c.strip(" `") for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = [int(c.replace(",", "")) for c in cells[1:]]
    columns = ["mislabel", "adversarial", "noise", "visualize", "data", "report"]
    for config, output in (("config/config.yaml", paper_dry_run), ("config/demo.yaml", demo_dry_run)):
        per_study = jobs_per_study(output)
        planned = [per_study.get(c, 0) for c in columns] + [job_counts(output)["total"]]
        assert rows.get(config) == planned, (
            f"README's job counts of {config} are {rows.get(config)}, a dry run plans {planned} "
            f"({', '.join(columns)}, total): update the table")


def test_readme_rule_graph_is_the_workflow_s(run_snakemake):
    """docs/figures/rulegraph.dot (the picture in README.md) is the demo's rule graph today."""
    proc = run_snakemake(["--rulegraph", "--quiet", "all"])
    assert proc.returncode == 0, proc.stdout[-3000:]

    def rule_edges(dot: str) -> set[tuple[str, str]]:  # node numbers vary from run to run, names do not
        names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.MULTILINE))
        edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.MULTILINE)}
        return edges | {(name, name) for name in names.values()}

    now, committed = rule_edges(proc.stdout), rule_edges((REPO / "docs" / "figures" / "rulegraph.dot").read_text())
    assert len(now) > 50 and now == committed, (
        f"the rule graph changed (new: {sorted(now - committed)}, gone: {sorted(committed - now)}): "
        "run `make rulegraph` and commit docs/figures/rulegraph.{dot,svg}")


def test_dry_run_paper_scale(paper_dry_run):
    counts = job_counts(paper_dry_run)
    assert counts["train_population"] == 46  # 45 pairs + baseline, one pair per job
    for rule, n in MISLABEL_JOBS.items():
        assert counts.get(rule) == n, (rule, counts)


def test_dry_run_demo(demo_dry_run):
    out = demo_dry_run
    counts = job_counts(out)
    assert counts["train_population"] == 5  # the baseline, then 45 pairs in packs of 12: 12 + 12 + 12 + 9
    for rule, n in MISLABEL_JOBS.items():
        assert counts.get(rule) == n, (rule, counts)
    jobs = training_jobs(out)
    assert {block for _, block in jobs} == {"r0-3"}
    packs = [pack for pack, _ in jobs]
    assert sorted(pack_size(p) for p in packs) == [1, 9, 12, 12, 12]
    assert "none" in packs  # the baseline alone: the noise and visualize studies need only it
    # every network has its own files, whatever job makes them: 46 pairs x 4 replicates
    networks = {o for o in dag_paths(out, "output") if o.startswith("results/mislabel/networks/")}
    assert len(networks) == 46 * 4 * 2 and "results/mislabel/networks/0-1/r003/weights.safetensors" in networks


#: Jobs the paired design adds (mislabel.design: paired): per comparison a paired table, a paired
#: information table and a paired t heatmap; a paired information heatmap per information value.
PAIRED_JOBS = {"paired_table": 3, "paired_information_table": 3, "paired_t_heatmap": 3, "paired_information_heatmap": 2}


def test_dry_run_demo_paired_design(run_snakemake, tmp_path):
    """mislabel.design paired (on the command line, as the README's override): the same training jobs,
    the Welch tables and figures, and the paired ones beside them."""
    out = dry_run(run_snakemake, tmp_path, "--config", 'mislabel={"design": "paired"}', configfiles=(DEMO,))
    counts = job_counts(out)
    assert counts["train_population"] == 5
    for rule, n in {**MISLABEL_JOBS, **PAIRED_JOBS}.items():
        assert counts.get(rule) == n, (rule, counts)
    targets = rule_all_inputs(out)
    for comparison in ("confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline"):
        for ext in ("parquet", "csv", "md"):
            assert f"results/mislabel/tables/paired_{comparison}.{ext}" in targets
            assert f"results/mislabel/tables/paired_information_{comparison}.{ext}" in targets
            assert f"results/mislabel/tables/welch_{comparison}.{ext}" in targets
        assert f"results/mislabel/figures/paired_t_heatmap_{comparison}.png" in targets
    for value in ("delta_logloss_bits", "kl_bits"):
        assert f"results/mislabel/figures/paired_information_heatmap_{value}.pdf" in targets
    # the independent design (the demo's default) plans none of them
    independent = job_counts(dry_run(run_snakemake, tmp_path, configfiles=(DEMO,)))
    assert not set(PAIRED_JOBS) & set(independent), independent


def test_pairs_per_job_from_a_second_configfile(run_snakemake, tmp_path):
    # Later config files merge into earlier ones key by key.
    override = write_yaml(tmp_path / "override.yaml", "mislabel:\n  pairs_per_job: 23\n")
    counts = job_counts(dry_run(run_snakemake, tmp_path, configfiles=(CONFIG, override)))
    assert counts["train_population"] == 3  # the baseline, 23 pairs, 22 pairs


def test_pairs_per_job_from_the_command_line(run_snakemake, tmp_path):
    """Nested --config values arrive as strings; common.smk coerces them to the schema's types."""
    out = dry_run(run_snakemake, tmp_path, "--config", 'mislabel={"pairs_per_job": 23}')
    assert job_counts(out)["train_population"] == 3


def test_replicate_blocks_split_the_training_jobs(run_snakemake, tmp_path):
    """R = 50 in blocks of 10 with all pairs in one pack: 5 blocks of the pairs, 5 of the baseline."""
    override = write_yaml(tmp_path / "blocks.yaml", "mislabel:\n  pairs_per_job: 45\n  replicates_per_job: 10\n")
    out = dry_run(run_snakemake, tmp_path, configfiles=(CONFIG, override))
    assert job_counts(out)["train_population"] == 10
    jobs = training_jobs(out)
    blocks = ["r0-9", "r10-19", "r20-29", "r30-39", "r40-49"]
    assert sorted(b for p, b in jobs if p == "none") == sorted(blocks)
    assert sorted(b for p, b in jobs if p != "none") == sorted(blocks)
    assert {pack_size(p) for p, _ in jobs if p != "none"} == {45}


def test_dataset_override_merges_with_the_configfile(run_snakemake, tmp_path):
    # The README's offline recipe: only dataset.source and dataset.root change.
    dataset = '--config=dataset={"source": "image_folder", "root": "/some/path"}'
    counts = job_counts(dry_run(run_snakemake, tmp_path, dataset))
    assert counts["train_population"] == 46
    # A nested dict given on the command line updates the file's dict, it does not replace
    # it: num_classes=4 from the file survives (4 classes: 6 pairs + baseline = 7 jobs;
    # a replaced dataset section would fall back to the schema's default of 10 classes).
    four = write_yaml(tmp_path / "four.yaml", "dataset:\n  num_classes: 4\n")
    counts = job_counts(dry_run(run_snakemake, tmp_path, dataset, configfiles=(CONFIG, four)))
    assert counts["train_population"] == 7


BAD_CONFIGS = {
    # id: (override file text or None, --config value or None, key, value, what is allowed)
    "fraction": ("mislabel:\n  fraction: 1.5\n", None, "fraction", "1.5", r"maximum of 1|\(0, 1\]"),
    "unknown_key": (None, "bogus=1", "bogus", "bogus", None),
    "unknown_nested_key": ("train:\n  epoch: 3\n", None, "epoch", "epoch", None),
    "precision": (None, 'train={"precision": "fp8"}', "precision", "fp8", "32-true"),
    "seed": (None, "seed=-1", "seed", "-1", r"minimum of 0|>= ?0"),
    "design": (None, 'mislabel={"design": "crossed"}', "design", "crossed", "independent', 'paired"),
    "source": ("dataset:\n  source: kaggle\n", None, "source", "kaggle", "image_folder"),
    "pairs_per_job": ("mislabel:\n  pairs_per_job: 0\n", None, "pairs_per_job", "0", r"minimum of 1|>= ?1"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_config_errors_fail_at_parse_time(run_snakemake, tmp_path, case):
    text, option, key, value, allowed = BAD_CONFIGS[case]
    configfiles = [CONFIG]
    args = ["-n"]
    if text is not None:
        configfiles.append(write_yaml(tmp_path / "bad.yaml", text))
    if option is not None:
        args += ["--config", option]
    proc = run_snakemake(args, directory=tmp_path, configfiles=configfiles)
    out = proc.stdout
    assert proc.returncode != 0, out
    assert "Building DAG" not in out, "the config error was not caught when parsing:\n" + out
    assert key in out and value in out, out
    if allowed:
        assert re.search(allowed, out), out


def test_single_figure_target_schedules_only_what_it_needs(run_snakemake, tmp_path):
    out = dry_run(run_snakemake, tmp_path, "results/mislabel/figures/class_dendrogram.png", configfiles=(DEMO,))
    counts = job_counts(out)
    assert counts["class_dendrogram"] == 1
    assert counts["welch_table"] == 1  # confused_vs_clean only
    assert counts["train_population"] == 5 and counts["collect_metrics"] == 1
    for rule in ("t_heatmap", "information_table", "information_heatmap", "accuracy_by_pair", "all"):
        assert rule not in counts, counts


# --------------------------------------------------------------------------- the demo, end to end


@pytest.fixture(scope="module")
def demo_dag(demo_run, run_snakemake):
    """Dry run of every job of the finished demo (``--forceall``): its files, logs, benchmarks."""
    proc = run_snakemake(["-n", "--forceall"], directory=demo_run)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


@pytest.mark.slow
def test_demo_is_complete(demo_run, run_snakemake):
    proc = run_snakemake(["-n"], directory=demo_run)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Nothing to be done" in proc.stdout, "a finished demo run wants to re-run jobs:\n" + proc.stdout


@pytest.mark.slow
def test_demo_outputs_exist(demo_run, demo_dag):
    targets = rule_all_inputs(demo_dag)
    assert len(targets) == 1 + sum(DEMO_TARGETS.values()), DEMO_TARGETS
    for study, n in DEMO_TARGETS.items():
        assert sum(t.startswith(f"results/{study}/") for t in targets) == n, study
    outputs = set(dag_paths(demo_dag, "output")) | set(targets)
    assert set(targets) <= outputs
    for rel in sorted(outputs):
        path = demo_run / rel
        assert path.is_file(), f"missing {rel}"
        assert path.stat().st_size > 0, f"empty {rel}"


@pytest.mark.slow
def test_demo_logs_and_benchmarks(demo_run, demo_dag):
    logs = dag_paths(demo_dag, "log")
    assert len(logs) == job_counts(demo_dag)["total"] - 1  # every job but rule all
    for rel in logs:
        assert (demo_run / rel).is_file(), f"missing log {rel}"
    benchmarks = dag_paths(demo_dag, "benchmark")
    counts = job_counts(demo_dag)
    assert len(benchmarks) == sum(counts[rule] for rule in BENCHMARKED_RULES)
    assert {b.split("/")[3] for b in benchmarks} == set(BENCHMARKED_RULES)  # results/benchmarks/STUDY/RULE/...
    for rel in benchmarks:
        table = pd.read_csv(demo_run / rel, sep="\t")
        assert len(table) == 1 and {"s", "max_rss", "cpu_time"} <= set(table.columns), rel
        assert table["s"].iloc[0] > 0


@pytest.mark.slow
def test_demo_tables(demo_run):
    tables = demo_run / "results" / "mislabel" / "tables"
    welch = pd.read_parquet(tables / "welch_confused_vs_clean.parquet")
    assert len(welch) == 90  # ordered (target, other) pairs of 10 classes
    expected = {"target", "other", "target_name", "other_name", "comparison", "n_x", "n_y", "mean_x",
                "mean_y", "diff", "ci_low", "ci_high", "t", "df", "p", "hedges_g", "q_bh", "p_holm",
                "significant"}
    assert expected <= set(welch.columns)
    assert (welch["target"] != welch["other"]).all()
    assert welch[["target", "other"]].drop_duplicates().shape[0] == 90
    assert (welch["comparison"] == "confused_vs_clean").all()
    # 4 replicates of 8 confused pairs (those with C but not T) vs 4 of the 28 clean ones
    assert (welch["n_x"] == 32).all() and (welch["n_y"] == 112).all()

    table = pd.read_parquet(tables / "per_model_class.parquet")
    assert len(table) == 46 * 4 * 10  # 45 pairs and the baseline x 4 replicates x 10 classes
    assert table.groupby(["pair", "replicate"]).ngroups == 46 * 4
    assert sorted(table["class"].unique()) == list(range(10))
    assert {f"prob_{k}" for k in range(10)} <= set(table.columns)
    assert {f"pred_{k}" for k in range(10)} <= set(table.columns)
    base = table[table["pair"] == "none"]
    correct = (base["accuracy"] * base["n_images"]).groupby(base["replicate"]).sum()
    overall = correct / base.groupby("replicate")["n_images"].sum()
    assert len(overall) == 4 and (overall > 0.9).all(), overall
    # the human-readable copies have the same rows
    assert len(pd.read_csv(tables / "welch_confused_vs_clean.csv")) == 90
    assert len(pd.read_csv(tables / "per_model_class.csv")) == len(table)
    info = pd.read_parquet(tables / "information_confused_vs_clean.parquet")
    assert len(info) == 90 and {"delta_logloss_bits", "kl_bits"} <= set(info.columns)


@pytest.mark.slow
def test_demo_figures(demo_run):
    figures = demo_run / "results" / "mislabel" / "figures"
    pngs = sorted(figures.glob("*.png"))
    assert len(pngs) == 7
    for png in pngs:
        assert png.stat().st_size > 5_000, png
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and min(image.shape[:2]) > 100, (png, image.shape)
        assert image.std() > 0, f"{png} is blank"
        pdf = png.with_suffix(".pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-", pdf


def captions_of_rules(rules: set[str]) -> set[str]:
    """The report captions (report/NAME.rst) that the given rules declare: those of the rules a
    config's DAG runs (the paired design's captions are not in an independent run's report)."""
    found = set()
    for path in sorted((REPO / "rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), flags=re.MULTILINE | re.DOTALL):
            if name in rules:
                found |= {f"{c}.rst" for c in re.findall(r'caption="(?:\.\./report/)?(\w+)(?:\.rst)?"', body)}
    return found


def planned_rules(output: str) -> list[str]:
    """The rules of the jobs a dry run plans."""
    return re.findall(r"^(?:local)?rule (\w+):", output, flags=re.MULTILINE)


def readme_figures() -> list[tuple[str, str]]:
    """The demo figures README.md shows: (the demo's figure, its copy in docs/figures), as the
    Makefile's readme-figures target copies them."""
    line = re.search(r"^README_FIGURES := (.+)$", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    return [tuple(pair.split(":")) for pair in line.group(1).split()]


@pytest.mark.parametrize("figure, shown", readme_figures())
def test_readme_figures_are_what_the_demo_draws(demo_run, figure, shown):
    now = matplotlib.image.imread(demo_run / "results" / "mislabel" / "figures" / f"{figure}.png")
    committed = matplotlib.image.imread(REPO / "docs" / "figures" / f"{shown}.png")
    assert now.shape == committed.shape and np.abs(now - committed).mean() < 0.002, (
        f"docs/figures/{shown}.png is not what the demo draws now: run `make demo` and `make readme-figures`")


@pytest.mark.slow
def test_demo_report(demo_run, run_snakemake, demo_dag):
    report = demo_run / "report.html"
    proc = run_snakemake(["--report", report], directory=demo_run)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report.is_file() and report.stat().st_size > 100_000
    text = html.unescape(report.read_text(encoding="utf-8"))
    # Snakemake 9 writes one self-contained HTML file: figures embedded as data URIs,
    # each with its caption (report/*.rst rendered to HTML, newlines JSON-escaped).
    pngs = re.findall(r"data:image/png;[^,\"]*base64,", text)
    # every figure target of rule all is a report figure (PNG + caption)
    assert len(pngs) == sum(t.endswith(".png") for t in rule_all_inputs(demo_dag)), len(pngs)
    captions = sorted((REPO / "report").glob("*.rst"))
    assert captions
    found = []
    for caption in captions:
        first = caption.read_text().strip().splitlines()[0]
        prefix = re.split(r"[*`|_\[{]", first)[0][:40].strip()  # up to markup or a template
        if prefix and prefix in text:
            found.append(caption.name)
    figure_captions = captions_of_rules({job.split("[")[0] for job in planned_rules(demo_dag)})
    assert figure_captions and figure_captions <= set(found), (
        f"captions missing from the report: {figure_captions - set(found)}")
    # The effective configuration (defaults filled) is bundled as a text file.
    texts = [base64.b64decode(b).decode() for b in re.findall(r"data:text/plain;[^,\"]*base64,([A-Za-z0-9+/=]+)", text)]
    configs = [yaml.safe_load(t) for t in texts if "pairs_per_job" in t]
    assert configs and configs[0]["mislabel"]["pairs_per_job"] == 12 and configs[0]["train"]["layout"] == "auto"


@pytest.mark.slow
def test_a_killed_workflow_resumes_its_training_job_bit_for_bit(demo_run, run_snakemake, snakemake_args, tmp_path):
    """Kill Snakemake (SIGKILL to its whole process group) while it trains the demo's smallest
    pack, unlock, run it again: the job resumes from its epoch checkpoint and ends with exactly
    the demo's networks (trained without interruption), then removes its checkpoints."""
    labels = [p.relative_to(demo_run / "results/logs/mislabel/train_population").with_suffix("")
              for p in (demo_run / "results/logs/mislabel/train_population").rglob("*.log")]
    label = next(str(p) for p in labels if p.parent.name != "none" and pack_size(p.parent.name) == 9)
    first, last = label.split("/")[0].split("..")  # 9 pairs x 4 replicates: long enough to kill after epoch 2 of 8
    shutil.copytree(demo_run / "results" / "data", tmp_path / "results" / "data")  # keeps mtimes
    target = f"results/mislabel/networks/{last}/r003/metrics.parquet"
    args = [target, "--cores", "2", "--resources", "gpu=1"]
    checkpoint = tmp_path / "results" / "checkpoints" / "mislabel" / "train_population" / label / "last.ckpt"
    running = subprocess.Popen(snakemake_args(args, tmp_path), cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and running.poll() is None:
            if checkpoint.is_file() and torch.load(checkpoint, weights_only=True)["epoch"] >= 2:
                break
            time.sleep(0.2)
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
    epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 2 <= epoch < 8, f"the job was killed after epoch {epoch} of 8"
    new, old = tmp_path / "results" / "mislabel" / "networks", demo_run / "results" / "mislabel" / "networks"
    assert not (new / last / "r003" / "metrics.parquet").exists()

    assert run_snakemake(["--unlock"], directory=tmp_path).returncode == 0  # a killed Snakemake leaves its lock
    proc = run_snakemake([*args, "--rerun-incomplete"], directory=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    log = (tmp_path / "results" / "logs" / "mislabel" / "train_population" / f"{label}.log").read_text()
    assert f"resuming from {checkpoint.relative_to(tmp_path)} after epoch {epoch} of 8" in log, log[-3000:]
    assert not checkpoint.parent.exists()

    trained = sorted(p.relative_to(new) for p in new.rglob("*.*"))
    assert len(trained) == 9 * 4 * 2 and first in {p.parts[0] for p in trained}
    for relative in trained:
        if relative.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(new / relative), pd.read_parquet(old / relative),
                                          check_exact=True)
            continue
        with safe_open(new / relative, "np") as a, safe_open(old / relative, "np") as b:
            ours, theirs = a.metadata(), b.metadata()
            assert ours.keys() == theirs.keys() and all(ours[k] == theirs[k] for k in ours if k != "versions")
            assert sorted(a.keys()) == sorted(b.keys())
            for key in a.keys():
                np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key), err_msg=f"{relative}: {key}")
    learned = ["epoch", "loss", "accuracy", "lr"]  # the rest is timing
    history = f"results/logs/mislabel/train_population/{label}.history.csv"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / history)[learned], pd.read_csv(demo_run / history)[learned],
                                  check_exact=True)


@pytest.mark.slow
def test_no_checkpoints_are_left_after_the_demo(demo_run):
    assert not (demo_run / "results" / "checkpoints").exists()
