"""Snakemake script of rule cross_model_table: error of each model's adversarial examples on every model.

Rows: the successful minimal adversarial examples of each model, the clean attacked images, and
Gaussian noise of each configured stddev on them (Szegedy et al. 2013, Table 1's transfer part).
"""

from pathlib import Path

import numpy as np
import torch

from nnprobe.data import load_split
from nnprobe.seeds import derive_seed
from nnprobe.stats import to_tables
from nnprobe.szegedy import cross_model_error_matrix, gaussian_noise_control, load_zoo_model, rms_distortion, unit_pixels
from nnprobe.population import default_device
from nnprobe.workflow import logged


def main(names: list[str], weights: list[str], examples: list[str], test_path: str, noise_std: list[float], seed: int, stem: Path, log) -> None:
    device = default_device()
    test = load_split(test_path)
    sets, labels, distortion = {}, {}, {}
    for name, path in zip(names, examples):
        with np.load(path) as ex:
            ok = ex["success"]
            sets[f"{name} examples"] = torch.from_numpy(ex["adversarial"][ok]).to(device)
            labels[f"{name} examples"] = torch.from_numpy(ex["label"][ok]).to(device)
            distortion[f"{name} examples"] = float(np.mean(ex["distortion"][ok])) if ok.any() else float("nan")
            index = ex["index"]
    x = unit_pixels(test.images[index], device)
    y = torch.from_numpy(test.labels[index]).to(device)
    sets["clean images"], labels["clean images"], distortion["clean images"] = x, y, 0.0
    for std in noise_std:
        row = f"Gaussian noise, stddev={std:g}"
        sets[row] = gaussian_noise_control(x, std, derive_seed(seed, "cross_model_table", "noise", std))
        labels[row] = y
        distortion[row] = float(rms_distortion(sets[row], x).mean())
    models = {name: load_zoo_model(name, w, x[0].numel(), len(test.classes), device) for name, w in zip(names, weights)}
    matrix = cross_model_error_matrix(models, sets, labels)
    table = matrix.frame(distortion, {r: len(labels[r]) for r in matrix.rows})
    log.info("\n%s", table.to_string(index=False))
    to_tables(table, stem)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.params.names,  # noqa: F821
            list(snakemake.input.weights),  # noqa: F821
            list(snakemake.input.examples),  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.noise_std,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            Path(snakemake.output[0]).with_suffix(""),  # noqa: F821
            log,
        )
