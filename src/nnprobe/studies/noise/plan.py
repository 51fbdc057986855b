"""What the workflow asks of the noise study (torch-free): its tasks, networks, probe folders,
sources, tables and targets, from the config. ``rules/common.smk`` and ``rules/noise.smk`` read
this module wherever Snakemake runs; no job imports it, so editing it reruns nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TASKS", "SPEED_KEYS", "TABLES", "FIGURE_SUMMARIES", "seeds", "probe_folders", "sources", "probe_params",
           "targets"]

TASKS = ("multiclass", "binary")
"""The ResNet-18 tasks: every class, and the two ``noise.binary_classes``."""

SPEED_KEYS = ("channels_last", "compile")
"""Keys of ``noise.train`` that change speed only: the training script reads them from the
config, never as params (changing them reruns nothing)."""

TABLES = ("groups", "agreement", "distances", "mst", "binary", "clutter", "clutter_correlations", "training")
"""The tables across networks (``results/noise/tables/NAME.{parquet,csv,md}``)."""

FIGURE_SUMMARIES = ("distance_to_noise", "binary", "auroc", "clutter")
"""The figures drawn from all networks at once (besides one per source and one per probe set)."""


def seeds(noise: Mapping[str, Any]) -> list[int]:
    """The seed indices of the ResNets of each task."""
    return list(range(noise["seeds"]))


def probe_folders(noise: Mapping[str, Any]) -> list[str]:
    """The folder of every network's probe tables: each task's seeds, and the mislabel study's
    baseline population when ``noise.population``."""
    folders = [f"results/noise/probes/{task}/seed{seed}" for task in TASKS for seed in seeds(noise)]
    return folders + (["results/noise/probes/population"] if noise["population"] else [])


def sources(noise: Mapping[str, Any], architecture: str) -> list[str]:
    """The sources of networks a figure of predicted classes is drawn for: the ResNet-18s, and the
    baseline population's ``architecture`` (``model.architecture``) when it is probed."""
    return ["resnet18"] + ([architecture] if noise["population"] else [])


def probe_params(noise: Mapping[str, Any]) -> dict[str, Any]:
    """What the probe jobs read: the probe sets, their size and the low-pass cutoff."""
    return {"sets": noise["probe_sets"], "size": noise["probe_size"], "lowfreq_cutoff": noise["lowfreq_cutoff"]}


def targets(noise: Mapping[str, Any], architecture: str, table_exts: list[str]) -> list[str]:
    """Every table and figure of the noise study."""
    tables = [f"results/noise/tables/{name}{ext}" for name in TABLES for ext in table_exts]
    figures = ([f"predicted_classes_{s}" for s in sources(noise, architecture)]
               + [f"mst_{s}" for s in noise["probe_sets"]] + list(FIGURE_SUMMARIES))
    return tables + [f"results/noise/figures/{name}.{ext}" for name in figures for ext in ("pdf", "png")]
