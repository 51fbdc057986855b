"""The jobs of the transfer tables (rules cross_model_table and cross_training_set_tables): the
zoo's and the P1/P2 models' examples, noise and magnified examples fed to every model
(Szegedy et al. 2013, Tables 2-4). ``scripts/adversarial/<rule>.py`` adapts Snakemake to them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ...core.io import read_json, write_tables
from ...core.splits import load_split
from ...models import load_model
from .design import unit_pixels
from .records import load_examples
from .transfer import cross_model_table, cross_training_set_tables, magnification_curve, rates_with_intervals

__all__ = ["cross_model", "cross_training_set"]

log = logging.getLogger("nnprobe.adversarial")


def cross_model(weights: Sequence[str], examples: Sequence[str], images_path: str, stem: str, *,
                names: Sequence[str], noise_std: Sequence[float], clipping: str, seed: int,
                device: torch.device) -> None:
    """Table 2: every model's examples (and the clean images, Gaussian noise, unclipped, clipped or
    both by ``clipping``) fed to every model; ``images_path`` is the split the models were attacked on."""
    split = load_split(images_path)
    loaded = {name: load_examples(path) for name, path in zip(names, examples, strict=True)}
    index = next(iter(loaded.values()))["index"]
    clean = unit_pixels(split.images[index], device)
    labels = torch.from_numpy(split.labels[index]).to(device)
    models = {name: load_model(w, device)[0] for name, w in zip(names, weights, strict=True)}
    table = cross_model_table(models, loaded, clean, labels, noise_std, seed, clipping)
    log.info("\n%s", table.to_string(index=False))
    write_tables(table, stem, markdown=rates_with_intervals(table))


def cross_training_set(weights: Sequence[str], metrics: Sequence[str], examples: Sequence[str], test_path: str,
                       stems: Sequence[str], *, models: Sequence[Sequence[str]], noise_std: Sequence[float],
                       magnify_rms: float, curve_rms: Sequence[float], clipping: str, seed: int,
                       device: torch.device) -> None:
    """Tables 3 and 4: the models of P1 and P2, and their examples (as made, magnified) and noise on
    each; then the transfer of every model's examples magnified to each of ``curve_rms`` (unclipped)."""
    test = load_split(test_path)
    display = [f"{name} ({trainset.upper()})" for name, trainset in models]
    nets = {label: load_model(w, device)[0] for label, w in zip(display, weights, strict=True)}
    records = {label: read_json(p) for label, p in zip(display, metrics, strict=True)}
    loaded = {label: load_examples(p) for label, p in zip(display, examples, strict=True)}
    models_table, matrix = cross_training_set_tables(nets, records, loaded, test.images, test.labels, noise_std,
                                                     magnify_rms, seed, device, clipping)
    curve = magnification_curve(nets, loaded, test.images, curve_rms, device)
    log.info("\n%s\n\n%s\n\n%s", models_table.to_string(index=False), matrix.to_string(index=False),
             curve.to_string(index=False))
    write_tables(models_table, stems[0])
    write_tables(matrix, stems[1], markdown=rates_with_intervals(matrix))
    write_tables(curve, stems[2])
