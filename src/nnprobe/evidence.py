"""Evidence of real runs: what a run leaves in ``docs/runs/``, and the study rebuilt from any set of them.

A GPU window is short, so a paper-scale study comes in blocks run on different days. Each run
leaves an evidence folder (:func:`write_evidence`): a README with the command, commit, device,
driver, CUDA and torch versions and the times of its jobs, the effective configuration, the
raw per-model tables the statistics come from (Parquet, no weights), the final tables
(Markdown) and the key figures (PNG). :func:`rebuild` combines the per-model tables of any set
of folders, on a CPU, into the study's tables and figures, refusing two folders that hold the
same network or differ in what defines the networks.

    python -m nnprobe.evidence write --study mislabel --workdir RUN --to docs/runs/DATE-mislabel-WHAT --command "..."
    python -m nnprobe.evidence rebuild --study mislabel --to OUT docs/runs/A docs/runs/B
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .core.io import write_text
from .core.naming import block_replicates
from .studies.mislabel.reports import (
    accuracy_by_pair_figure,
    class_dendrogram_figure,
    collect_metrics,
    information,
    information_heatmap_figure,
    paired,
    paired_information,
    t_heatmap_figure,
    welch,
)
from .studies.mislabel.plan import COMPARISONS, INFORMATION_VALUES, RESULT_KEYS
from .studies.mislabel.tables import combine_tables

__all__ = ["NETWORK_KEYS", "device_description", "main", "network_config", "rebuild", "source_commit", "write_evidence"]

log = logging.getLogger("nnprobe.evidence")

#: The config keys that define the networks of a study: folders that differ in one of them
#: hold networks of different experiments and are not combined.
NETWORK_KEYS = {"mislabel": ["seed", "dataset", "model", *(f"train.{key}" for key in RESULT_KEYS), "mislabel.fraction",
                             "mislabel.design"]}
#: Values of network keys that configs written before the key existed lack (the old behaviour).
NETWORK_KEY_DEFAULTS = {"mislabel.design": "independent"}
#: Where a study's per-model tables lie in a run's working directory: the mislabel networks'
#: metrics; the adversarial study's tables (one row per network or attacked model), the zoo's
#: training records and the record and training log of every adversarially trained network; the
#: noise study's per-network probe tables and training metrics; the visualize study's
#: per-network evaluations and class-wise pattern tables.
PER_MODEL = {"mislabel": ["results/mislabel/networks/*/*/metrics.parquet"],
             "adversarial": ["results/adversarial/tables/*.parquet", "results/adversarial/models/*/*.json",
                             "results/adversarial/training/*/*.json",
                             "results/adversarial/training/*/*.monitor.parquet"],
             "noise": ["results/noise/probes/*/*/*.parquet", "results/noise/probes/*/*.parquet",
                       "results/noise/models/*/*/metrics.json", "results/noise/models/*/*/history.csv"],
             "visualize": ["results/visualize/models/*/metrics.parquet", "results/visualize/models/*/history.csv",
                           "results/visualize/patterns/*.parquet"]}
KEY_FIGURES = {"mislabel": ["t_heatmap_confused_vs_clean", "information_heatmap_delta_logloss_bits",
                            "accuracy_by_pair", "class_dendrogram", "paired_t_heatmap_confused_vs_clean",
                            "paired_information_heatmap_delta_logloss_bits"],
               "adversarial": ["distortion", "examples", "cross_model", "cross_training_set", "magnification",
                               "adversarial_training", "adversarial_training_monitor", "units"],
               "noise": ["predicted_classes_resnet18", "predicted_classes_keras_cnn", "mst_gaussian",
                         "distance_to_noise", "binary", "auroc", "clutter"],
               "visualize": ["robustness", "class_patterns", "activation_maximization_natural",
                             "activation_maximization_adversarial", "activation_maximization_mislabel",
                             "caricature_natural", "inversion_natural", "inversion_topdown"]}


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def network_config(config: Mapping[str, Any], study: str) -> dict[str, Any]:
    """The part of ``config`` that defines the networks of ``study`` (:data:`NETWORK_KEYS`); the
    dataset's root and download flag are where the data was, not what it is, and its number of
    classes is the data's own: they are left out, as are the speed keys (layout, compile)."""
    found = {key: _lookup(config, key) for key in NETWORK_KEYS[study]}
    found.update({key: value for key, value in NETWORK_KEY_DEFAULTS.items() if key in found and found[key] is None})
    if isinstance(found.get("dataset"), Mapping):
        found["dataset"] = {k: v for k, v in found["dataset"].items() if k not in ("root", "download", "num_classes")}
    return found


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(Path(__file__).parent), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def source_commit() -> str:
    """The commit of the nnprobe source that runs, marked when it has uncommitted changes."""
    commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    return commit + (" + uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no") else "")


def device_description() -> str:
    """The accelerator this process sees: GPU name, driver, CUDA and torch versions (or the CPU)."""
    import torch  # here, not at the top: rebuilding from evidence needs no torch

    if not torch.cuda.is_available():
        return f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=True).stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        driver = "unknown"
    return (f"{torch.cuda.get_device_name()}, driver {driver}, CUDA {torch.version.cuda}, "
            f"torch {torch.__version__}")


def _benchmarks(workdir: Path, study: str) -> pd.DataFrame:
    rows = []
    for path in sorted((workdir / "results" / "benchmarks" / study).rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rows.append({"job": str(path.relative_to(workdir / "results" / "benchmarks")).removesuffix(".tsv"),
                     "seconds": float(table["s"].iloc[0]), "max_rss_mb": float(table["max_rss"].iloc[0])})
    return pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"])


def _in_blocks(replicates: Iterable[int], blocks: Sequence[str]) -> bool:
    """Whether every one of ``replicates`` (a network's, or a job's range) lies in one of the blocks ``rFIRST-LAST``."""
    wanted = [block_replicates(block) for block in blocks]
    return all(any(r in block for block in wanted) for r in replicates)


def _per_model_name(study: str, relative: Path) -> str:
    """A per-model table's file name in the evidence folder: its job's wildcards joined by "__"
    (``training__dropout__0.json``)."""
    return "__".join(relative.with_suffix("").parts) + relative.suffix


def write_evidence(study: str, workdir: str | Path, out: str | Path, *, command: str, device: str | None = None,
                   wall_seconds: float | None = None, notes: str = "", blocks: Sequence[str] = ()) -> Path:
    """Copy what a finished run of ``study`` in ``workdir`` shows into the evidence folder ``out``.

    ``command`` is the exact command that ran; ``device`` names the machine (GPU, driver, CUDA and
    torch versions), by default the one this process sees (:func:`device_description`). Per-model
    tables (:data:`PER_MODEL`) keep the names of their jobs (pack and block, regime and replicate).
    ``blocks`` (mislabel only) keeps the populations and job times of those replicate blocks
    alone, so that blocks trained one after another in one working directory (a GPU window that
    adds blocks while its time lasts) each leave a folder of their own.
    """
    workdir, out = Path(workdir), Path(out)
    results = workdir / "results"
    if not (results / "config.yaml").is_file():
        raise FileNotFoundError(f"{results / 'config.yaml'} is missing: the run's effective configuration is made by "
                                "the target results/config.yaml (rule all makes it, a study target does not); run "
                                "`snakemake results/config.yaml` with the run's own --configfile and --config, then again")
    if study not in PER_MODEL:
        raise ValueError(f"evidence folders cover the studies {sorted(PER_MODEL)}; got {study!r}")
    tables = sorted(p for pattern in PER_MODEL[study] for p in workdir.glob(pattern))
    if blocks and study != "mislabel":
        raise ValueError(f"blocks select replicate blocks of the mislabel study; got study {study!r}")
    if blocks:  # networks/PAIR/rNNN/metrics.parquet
        tables = [t for t in tables if _in_blocks([int(t.parent.name.removeprefix("r"))], blocks)]
    if not tables:
        raise FileNotFoundError(f"no per-model tables of the {study} study under {workdir} ({PER_MODEL[study]}"
                                + (f", blocks {list(blocks)})" if blocks else ")"))
    (out / "per_model").mkdir(parents=True, exist_ok=True)
    if study == "mislabel":  # one file per network would be thousands: one table of them all
        frame = combine_tables([pd.read_parquet(t) for t in tables])
        frame.to_parquet(out / "per_model" / "networks.parquet", index=False)
    else:
        for table in tables:
            shutil.copyfile(table, out / "per_model" / _per_model_name(study, table.relative_to(results / study)))
    (out / "tables").mkdir(exist_ok=True)
    for md in sorted((results / study / "tables").glob("*.md")):
        shutil.copyfile(md, out / "tables" / md.name)
    (out / "figures").mkdir(exist_ok=True)
    for name in KEY_FIGURES[study]:
        figure = results / study / "figures" / f"{name}.png"
        if figure.is_file():
            shutil.copyfile(figure, out / "figures" / figure.name)
    shutil.copyfile(results / "config.yaml", out / "config.yaml")
    times = _benchmarks(workdir, study)
    if blocks:  # train_population/PACK/rFIRST-LAST: the jobs whose replicates lie in the blocks
        times = times[[_in_blocks(block_replicates(job.rsplit("/", 1)[-1]), blocks) for job in times["job"]]]
    lines = [
        f"# {out.name}",
        "",
        f"- study: {study}; written {datetime.date.today().isoformat()} by `python -m nnprobe.evidence write`",
        f"- command: `{command}`",
        f"- commit: {source_commit()}",
        f"- device: {device or device_description()}",
        f"- host Python {platform.python_version()}",
        f"- wall time of the run: {wall_seconds:.1f} s" if wall_seconds is not None else "- wall time: not recorded",
        *([f"- replicate blocks: {', '.join(blocks)} (this run's other blocks have folders of their own)"]
          if blocks else []),
        (f"- per-model tables: {len(tables)} networks in `per_model/` (rebuild the tables and figures on a CPU: "
         f"`python -m nnprobe.evidence rebuild --study {study} --to OUT {out}`)" if study in NETWORK_KEYS else
         f"- per-model tables: {len(tables)} files in `per_model/` (the run's own tables; rebuilding from "
         f"evidence covers {sorted(NETWORK_KEYS)})"),
        "",
    ]
    if notes:
        lines += [notes, ""]
    if len(times):
        lines += ["## Job times (Snakemake benchmarks)", "", times.to_markdown(index=False, floatfmt=".1f"), ""]
    write_text("\n".join(lines), out / "README.md")
    return out


def rebuild(study: str, folders: Sequence[str | Path], out: str | Path) -> Path:
    """The study's tables and figures from the per-model tables of evidence ``folders``, in ``out``.

    Refuses folders whose configs define other networks (:func:`network_config`) and networks
    present in two folders (:func:`nnprobe.studies.mislabel.tables.combine_tables`).
    """
    if study != "mislabel":
        raise ValueError(f"rebuilding from evidence covers the mislabel study; got {study!r}")
    folders = [Path(f) for f in folders]
    if not folders:
        raise ValueError("name at least one evidence folder")
    missing = [str(f) for f in folders if not (f / "config.yaml").is_file()]
    if missing:
        raise FileNotFoundError(f"{missing} hold no config.yaml: not evidence folders written by "
                                "`python -m nnprobe.evidence write`")
    configs = {f: yaml.safe_load((f / "config.yaml").read_text()) for f in folders}
    reference = network_config(configs[folders[0]], study)
    for folder in folders[1:]:
        theirs = network_config(configs[folder], study)
        differ = sorted(k for k in reference if reference[k] != theirs[k])
        if differ:
            raise ValueError(f"{folder} was run with another configuration than {folders[0]} (differs in {differ}): "
                             "their networks are not of one experiment and are not combined")
    tables = [p for f in folders for p in sorted((f / "per_model").glob("*.parquet"))]
    if not tables:
        raise FileNotFoundError(f"no per-model tables in {[str(f) for f in folders]} (per_model/*.parquet)")
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    per_model = out / "tables" / "per_model_class.parquet"
    collect_metrics([str(t) for t in tables], str(per_model), str(out / "tables" / "per_model_class.csv"))
    groups = configs[folders[0]].get("mislabel", {}).get("class_groups") or {}
    fdr_alpha = configs[folders[0]].get("mislabel", {}).get("fdr_alpha", 0.05)
    table_dir, figure_dir = out / "tables", out / "figures"
    for comparison in COMPARISONS:
        welch(str(per_model), str(table_dir / f"welch_{comparison}"), comparison, fdr_alpha)
        information(str(per_model), str(table_dir / f"information_{comparison}"), comparison)
        t_heatmap_figure(str(table_dir / f"welch_{comparison}.parquet"), str(per_model),
                         str(figure_dir / f"t_heatmap_{comparison}"), groups, fdr_alpha)
    for value in INFORMATION_VALUES:
        information_heatmap_figure(str(table_dir / "information_confused_vs_clean.parquet"), str(per_model),
                                   str(figure_dir / f"information_heatmap_{value}"), value, groups)
    if reference["mislabel.design"] == "paired":  # beside the Welch tables, as the workflow makes them
        for comparison in COMPARISONS:
            paired(str(per_model), str(table_dir / f"paired_{comparison}"), comparison, fdr_alpha)
            paired_information(str(per_model), str(table_dir / f"paired_information_{comparison}"), comparison,
                               fdr_alpha)
            t_heatmap_figure(str(table_dir / f"paired_{comparison}.parquet"), str(per_model),
                             str(figure_dir / f"paired_t_heatmap_{comparison}"), groups, fdr_alpha)
        for value in INFORMATION_VALUES:
            information_heatmap_figure(str(table_dir / "paired_information_confused_vs_clean.parquet"),
                                       str(per_model), str(figure_dir / f"paired_information_heatmap_{value}"), value,
                                       groups, fdr_alpha)
    accuracy_by_pair_figure(str(per_model), str(out / "figures" / "accuracy_by_pair"))
    class_dendrogram_figure(str(out / "tables" / "welch_confused_vs_clean.parquet"), str(per_model),
                            str(out / "figures" / "class_dendrogram"))
    log.info("rebuilt the %s study from %d per-model tables of %d folder(s) into %s", study, len(tables),
             len(folders), out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnprobe.evidence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    w = sub.add_parser("write", help="copy a finished run's evidence into a folder")
    w.add_argument("--study", default="mislabel", choices=sorted(PER_MODEL))
    w.add_argument("--workdir", required=True, help="the run's working directory (holds results/)")
    w.add_argument("--to", required=True, help="the evidence folder, e.g. docs/runs/2026-12-01-mislabel-r0-9")
    w.add_argument("--command", required=True, help="the exact command that ran")
    w.add_argument("--device", help="GPU, driver, CUDA and torch versions (default: the ones this process sees)")
    w.add_argument("--wall-seconds", type=float, help="the wall time of the whole run")
    w.add_argument("--notes", default="", help="a paragraph for the README: what this run is, what it is not")
    w.add_argument("--block", action="append", default=[], help="mislabel: only this replicate block (repeatable)")
    r = sub.add_parser("rebuild", help="the study's tables and figures from evidence folders")
    r.add_argument("--study", default="mislabel", choices=sorted(NETWORK_KEYS))
    r.add_argument("--to", required=True, help="where the tables and figures go")
    r.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "write":
        write_evidence(args.study, args.workdir, args.to, command=args.command, device=args.device,
                       wall_seconds=args.wall_seconds, notes=args.notes, blocks=args.block)
    else:
        rebuild(args.study, args.folders, args.to)


if __name__ == "__main__":
    main()
