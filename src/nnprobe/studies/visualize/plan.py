"""What the workflow asks of the visualize study (torch-free): its networks, which of them its
patterns and feature visualisations cover, and its targets, from the config. ``rules/common.smk``
and ``rules/visualize.smk`` read this module wherever Snakemake runs; no job imports it, so editing
it reruns nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TRAINED", "PATTERN_MODELS", "FEATURE_FIGURES", "weights", "targets"]

TRAINED = ("natural", "backdoor", "adversarial", "topdown")
"""The study's own networks: the standard CNN trained naturally, on BadNets-poisoned data and
with PGD, and the top-down network."""

PATTERN_MODELS = ("natural", "backdoor", "adversarial")
"""Class-wise patterns are compared across the three training settings of the standard CNN."""

FEATURE_FIGURES = ("activation_maximization", "caricature", "inversion")
"""The figures drawn for every model of ``visualize.feature_models``."""


def weights(first_baseline_network: str) -> dict[str, str]:
    """The weights file of every model the study can visualize: its own networks, and
    ``mislabel``, the first network of the mislabel study's baseline population (a file that
    study's rules make)."""
    own = {name: f"results/visualize/models/{name}/weights.safetensors" for name in TRAINED}
    return {**own, "mislabel": first_baseline_network}


def targets(visualize: Mapping[str, Any], table_exts: list[str]) -> list[str]:
    """Every table and figure of the visualize study."""
    figures = [f"{name}_{model}" for name in FEATURE_FIGURES for model in visualize["feature_models"]]
    figures += ["class_patterns", "robustness"]
    tables = [f"results/visualize/tables/{name}{ext}" for name in ("models", "class_patterns") for ext in table_exts]
    return tables + [f"results/visualize/figures/{name}.{ext}" for name in figures for ext in ("pdf", "png")]
