"""Snakemake script of rule example_grid: original, adversarial and difference per zoo model.

Shows the first attacked test images that every model classified correctly and every attack moved.
"""

from pathlib import Path

import numpy as np

from nnprobe.data import load_split
from nnprobe.plots import adversarial_example_grid
from nnprobe.workflow import logged


def main(names: list[str], examples: list[str], test_path: str, figures: dict, pdf: str, log) -> None:
    test = load_split(test_path)
    loaded = []
    for path in examples:
        with np.load(path) as ex:
            loaded.append({key: ex[key] for key in ("index", "label", "target", "success", "distortion", "adversarial")})
    # Images every model classified correctly (distortion > 0) and every attack moved.
    everywhere = np.logical_and.reduce([ex["success"] & (ex["distortion"] > 0) for ex in loaded])
    pick = np.flatnonzero(everywhere)[: figures["examples"]]
    if pick.size == 0:
        raise RuntimeError(
            f"no attacked image is classified correctly by, and has an adversarial example for, every model "
            f"{names}; attack more images (adversarial.attack.examples) or see the attack logs"
        )
    originals = test.images[loaded[0]["index"][pick]].astype(np.float64) / 255.0
    classes = test.classes
    adversarial, captions = {}, {}
    for name, ex in zip(names, loaded):
        adversarial[name] = ex["adversarial"][pick].astype(np.float64)
        captions[name] = [
            f"{classes[ex['label'][i]]}→{classes[ex['target'][i]]}, {ex['distortion'][i]:.3f}" for i in pick
        ]
    written = adversarial_example_grid(originals, adversarial, captions, Path(pdf).with_suffix(""), figures["magnify"])
    log.info("wrote %s (test images %s)", [str(p) for p in written], loaded[0]["index"][pick].tolist())


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.params.names,  # noqa: F821
            list(snakemake.input.examples),  # noqa: F821
            snakemake.input.test,  # noqa: F821
            snakemake.params.figures,  # noqa: F821
            snakemake.output.pdf,  # noqa: F821
            log,
        )
