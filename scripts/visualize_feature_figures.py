"""Snakemake script of rule visualize_feature_figures: the activation-maximization grid, the
caricature strips and the inversion rows of one model."""

from pathlib import Path

import numpy as np

from nnprobe.plots import visualize_image_grid
from nnprobe.workflow import logged


def main(arrays: str, outputs, log) -> None:
    with np.load(arrays, allow_pickle=False) as npz:
        a = {k: npz[k] for k in npz.files}
    model, classes, layers = str(a["model"]), [str(c) for c in a["classes"]], [str(name) for name in a["layers"]]
    k, seeds = a["am_images"].shape[:2]
    probs = np.exp(a["am_logits"] - a["am_logits"].max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    notes = np.array([[f"p={probs[c, s, c]:.2f}" for s in range(seeds)] for c in range(k)])
    written = visualize_image_grid(
        a["am_images"], Path(outputs.am_pdf).with_suffix(""), [f"class {n}" for n in classes],
        [f"seed {s}" for s in range(seeds)],
        f"{model}: images maximising each class logit\n(p = softmax probability of the class)", notes)

    labels = [classes[i] for i in a["original_labels"]]
    before, after = a["caricature_objective"]
    target = str(a["caricature_target"])
    kind, _, channel = target.partition(" ")
    what = {"layer": "the mean squared activation", "channel": f"the mean of channel {channel}",
            "unit": f"the centre unit of channel {channel}"}[kind]
    rows = np.concatenate([a["originals"][None], a["caricatures"]])
    notes = np.array([[f"{labels[i]}" for i in range(len(labels))]]
                     + [[f"×{after[l, i] / max(before[l, i], 1e-12):.1f}" for i in range(len(labels))] for l in range(len(layers))])
    written += visualize_image_grid(
        rows, Path(outputs.caricature_pdf).with_suffix(""), ["test image", *layers], None,
        f"{model}: caricatures from the test image, maximising {what} of each layer\n"
        "(× = objective after / before)", notes)

    rows = np.concatenate([a["originals"][None], a["inversions"]])
    err = a["inversion_error"]
    notes = np.array([[f"{labels[i]}" for i in range(len(labels))]]
                     + [[f"err {err[l, i]:.2f}" for i in range(len(labels))] for l in range(len(layers))])
    written += visualize_image_grid(
        rows, Path(outputs.inversion_pdf).with_suffix(""), ["test image", *layers], None,
        f"{model}: what each layer keeps — inversions of its representation\n"
        "(alpha-norm + TV prior; err = relative representation error)", notes)
    log.info("wrote %s", [str(p) for p in written])


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input[0], snakemake.output, log)  # noqa: F821
