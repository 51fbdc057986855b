"""Snakemake script of rule cross_training_set_tables: Tables 2 and 3 of Szegedy et al. (2013).

The models trained on the disjoint halves P1 and P2: their errors on P1, P2 and test (table
"models"), and the error of each model's adversarial examples, of the same examples rescaled to
a fixed RMS distortion, and of Gaussian noise on every model (table "matrix").
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nnprobe.data import load_split
from nnprobe.seeds import derive_seed
from nnprobe.stats import to_tables
from nnprobe.szegedy import (
    cross_model_error_matrix,
    gaussian_noise_control,
    load_zoo_model,
    rescale_to_rms,
    rms_distortion,
    unit_pixels,
)
from nnprobe.population import default_device
from nnprobe.workflow import logged


def main(models: list, weights, metrics, examples, test_path, noise_std, rescale_rms, seed, stems, log) -> None:
    device = default_device()
    test = load_split(test_path)
    display = [f"{name} ({trainset.upper()})" for name, trainset in models]
    rows, sets, labels, bases = [], {}, {}, {}
    for label, metrics_path, examples_path in zip(display, metrics, examples):
        m = json.loads(Path(metrics_path).read_text())
        with np.load(examples_path) as ex:
            ok, index = ex["success"], ex["index"]
            adv = torch.from_numpy(ex["adversarial"][ok]).to(device)
            y = torch.from_numpy(ex["label"][ok]).to(device)
            distortion = ex["distortion"][ok]
        x = unit_pixels(test.images[index[ok]], device)
        rows.append(
            {
                "model": label,
                "trained_on": m["trainset"].upper(),
                "p1_error": m["p1_error"],
                "p2_error": m["p2_error"],
                "test_error": m["test_error"],
                "mean_min_distortion": float(distortion.mean()) if ok.any() else float("nan"),
                "attacked": int(ok.size),
                "failed": int((~ok).sum()),
            }
        )
        scaled = f"{label} examples at RMS {rescale_rms:g}"
        sets[f"{label} examples"], sets[scaled] = adv, rescale_to_rms(adv, x, rescale_rms)
        for row in (f"{label} examples", scaled):
            labels[row], bases[row] = y, x
    x = unit_pixels(test.images[index], device)
    y = torch.from_numpy(test.labels[index]).to(device)
    for std in noise_std:
        row = f"Gaussian noise, stddev={std:g}"
        sets[row] = gaussian_noise_control(x, std, derive_seed(seed, "cross_training_set_tables", "noise", std))
        labels[row], bases[row] = y, x
    nets = {
        label: load_zoo_model(name, w, x[0].numel(), len(test.classes), device)
        for label, (name, _), w in zip(display, models, weights)
    }
    matrix = cross_model_error_matrix(nets, sets, labels)
    distortion = {r: float(rms_distortion(sets[r], bases[r]).mean()) for r in matrix.rows}
    table = matrix.frame(distortion, {r: len(labels[r]) for r in matrix.rows})
    models_table = pd.DataFrame(rows)
    log.info("\n%s\n\n%s", models_table.to_string(index=False), table.to_string(index=False))
    to_tables(models_table, stems[0])
    to_tables(table, stems[1])


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.params.models,  # noqa: F821
            list(snakemake.input.weights),  # noqa: F821
            list(snakemake.input.metrics),  # noqa: F821
            list(snakemake.input.examples),  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.noise_std,  # noqa: F821
            snakemake.params.rescale_rms,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            [Path(snakemake.output.models[0]).with_suffix(""), Path(snakemake.output.matrix[0]).with_suffix("")],  # noqa: F821
            log,
        )
