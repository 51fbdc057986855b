"""Snakemake script of rule unit_inspection: top test images along units and random directions.

Szegedy et al. (2013), Sec. 3: the images that maximise a natural-basis unit of a hidden layer
look as semantically coherent as those that maximise a random direction of the same layer.
"""

from pathlib import Path

import numpy as np
import torch

from nnprobe.data import load_split
from nnprobe.plots import top_image_rows
from nnprobe.seeds import derive_seed
from nnprobe.szegedy import load_zoo_model, random_directions, top_activating_images, unit_pixels
from nnprobe.population import default_device
from nnprobe.workflow import logged


def main(weights: str, test_path: str, seed: int, units: dict, pdf: str, log) -> None:
    device = default_device()
    test = load_split(test_path)
    x = unit_pixels(test.images, device)
    model = load_zoo_model(units["model"], weights, x[0].numel(), len(test.classes), device)
    with torch.no_grad():
        layers = model.hidden(x)
    if not units["layer"] < len(layers):
        raise ValueError(f"{units['model']} has {len(layers)} hidden layer(s); units.layer must be < {len(layers)}")
    acts = layers[units["layer"]]
    width = acts.shape[1]
    rng = np.random.default_rng(derive_seed(seed, "unit_inspection", "units"))
    chosen = np.sort(rng.choice(width, size=min(units["units"], width), replace=False))
    directions = random_directions(width, units["directions"], derive_seed(seed, "unit_inspection", "directions"))
    images = test.images.astype(np.float64) / 255.0
    rows = {}
    for unit in chosen:
        rows[f"unit {unit}"] = images[top_activating_images(acts, int(unit), units["top_k"])]
    for i, v in enumerate(directions):
        rows[f"random direction {i + 1}"] = images[top_activating_images(acts, v, units["top_k"])]
    title = f"{units['model']}, hidden layer {units['layer']} ({width} units): top {units['top_k']} test images"
    written = top_image_rows(rows, Path(pdf).with_suffix(""), title)
    log.info("units %s; wrote %s", chosen.tolist(), [str(p) for p in written])


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.input.weights,  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.units,  # noqa: F821
            snakemake.output.pdf,  # noqa: F821
            log,
        )
