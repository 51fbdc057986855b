"""Figures of the visualize study: robustness curves, class-wise patterns, feature visualisations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plotting import image_grid, save_figure

__all__ = ["robustness_curves", "class_pattern_grid", "feature_figures"]


def robustness_curves(metrics: pd.DataFrame, stem: Path, highlight: Sequence[str] = ("natural", "topdown")) -> list[Path]:
    """Test accuracy under PGD against the L-inf radius, one line per model (clean accuracy at 0).

    ``metrics`` has columns model, metric (``clean_accuracy`` / ``robust_accuracy``), epsilon
    (1/255 units), value, parameters. The models in ``highlight`` (the standard CNN and the
    top-down net of similar size) are drawn solid, the others dashed.
    """
    for col in ("model", "metric", "epsilon", "value", "parameters"):
        if col not in metrics.columns:
            raise ValueError(f"robustness_curves needs column {col!r}; got {list(metrics.columns)}")
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    models = list(dict.fromkeys(metrics["model"]))
    for i, model in enumerate(models):
        m = metrics[(metrics["model"] == model) & metrics["metric"].isin(["clean_accuracy", "robust_accuracy"])]
        m = m.sort_values("epsilon")
        params = int(m["parameters"].iloc[0])
        chance = " — AT CHANCE: untrained" if "at_chance" in m and bool(m["at_chance"].iloc[0]) else ""
        ax.plot(m["epsilon"], m["value"], marker="o", color=f"C{i}",
                linestyle="-" if model in highlight else "--", linewidth=2 if model in highlight else 1.2,
                label=f"{model} ({params:,} parameters){chance}")
    eps = sorted(metrics.loc[metrics["metric"] == "robust_accuracy", "epsilon"].unique())
    ax.set_xticks([0, *eps], ["clean", *[f"{e:g}" for e in eps]])
    ax.set_xlabel("PGD L∞ radius ε (in 1/255; step 2.5ε/steps, random start)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Accuracy under PGD: top-down vs standard CNN of similar size\n(solid); backdoored and PGD-trained CNNs for reference (dashed)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


_OUTSIDE_PATTERN = (0.72, 0.84, 0.96)  # light blue: pixels outside a pattern, unlike any grey


def class_pattern_grid(
    settings: Sequence[str],
    canvases: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    patterns: Sequence[np.ndarray],
    power: Sequence[np.ndarray],
    classes: Sequence[str],
    trigger: tuple[int, int, int, int],
    target: int,
    stem: Path,
) -> list[Path]:
    """Class-wise patterns (Zhao et al. 2021) of several models: per model one row of the
    patterns (canvas pixels under the top-k mask, the rest light blue, with the predictive power)
    and one row of the continuous masks (0 black to 1 white). A red box marks the BadNets trigger
    region in every panel; the backdoor target class's column title is red."""
    n, k = len(settings), len(classes)
    r0, r1, c0, c1 = trigger
    fig, axes = plt.subplots(2 * n, k, figsize=(0.95 * k + 1.6, 2.1 * n + 0.9), squeeze=False)
    for s, name in enumerate(settings):
        for c in range(k):
            canvas = np.clip(np.asarray(canvases[s][c], dtype=float), 0, 1)
            keep = np.asarray(patterns[s][c], dtype=float)[0][..., None]  # (H, W, 1)
            rgb = np.repeat(canvas, 3, axis=0) if canvas.shape[0] == 1 else canvas
            shown = rgb.transpose(1, 2, 0) * keep + np.array(_OUTSIDE_PATTERN) * (1 - keep)
            for row, (img, cmap) in enumerate([(shown, None), (np.asarray(masks[s][c])[0], "gray")]):
                ax = axes[2 * s + row, c]
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                ax.add_patch(matplotlib.patches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                                          edgecolor="red", linewidth=0.8, linestyle=":"))
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.text(0.03, 0.97, f"{100 * power[s][c]:.0f}%", transform=ax.transAxes, ha="left", va="top",
                            fontsize=7, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
                if s == 0 and row == 0:
                    ax.set_title(str(classes[c]), fontsize=8, color="red" if c == target else "black")
            axes[2 * s, 0].set_ylabel(f"{name}\npattern", fontsize=8, rotation=0, ha="right", va="center")
            axes[2 * s + 1, 0].set_ylabel(f"{name}\nmask", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Class-wise patterns: canvas pixels under the top-k mask (light blue: not in the pattern);\n"
                 "% = held-out images of the other classes turned into the class; red box: BadNets trigger region",
                 fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return save_figure(fig, stem)


def feature_figures(arrays: dict[str, np.ndarray], am_stem: Path, caricature_stem: Path,
                    inversion_stem: Path) -> list[Path]:
    """The three figures of one model's feature visualisations (the arrays of
    :func:`nnprobe.studies.visualize.features.visualize_features`): images maximising each class
    (with the softmax probability of the class), caricatures and inversions per layer."""
    a = arrays
    model, classes, layers = str(a["model"]), [str(c) for c in a["classes"]], [str(name) for name in a["layers"]]
    k, seeds = a["am_images"].shape[:2]
    probs = np.exp(a["am_logits"] - a["am_logits"].max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    notes = np.array([[f"p={probs[c, s, c]:.2f}" for s in range(seeds)] for c in range(k)])
    written = image_grid(
        a["am_images"], am_stem, [f"class {n}" for n in classes], [f"seed {s}" for s in range(seeds)],
        f"{model}: images maximising each class logit\n(p = softmax probability of the class)", notes)

    labels = [classes[i] for i in a["original_labels"]]
    before, after = a["caricature_objective"]
    kind, _, channel = str(a["caricature_target"]).partition(" ")
    what = {"layer": "the mean squared activation", "channel": f"the mean of channel {channel}",
            "unit": f"the centre unit of channel {channel}"}[kind]
    rows = np.concatenate([a["originals"][None], a["caricatures"]])
    notes = np.array([labels] + [[f"×{after[layer, i] / max(before[layer, i], 1e-12):.1f}" for i in range(len(labels))]
                                 for layer in range(len(layers))])
    written += image_grid(
        rows, caricature_stem, ["test image", *layers], None,
        f"{model}: caricatures from the test image, maximising {what} of each layer\n"
        "(× = objective after / before)", notes)

    rows = np.concatenate([a["originals"][None], a["inversions"]])
    err = a["inversion_error"]
    notes = np.array([labels] + [[f"err {err[layer, i]:.2f}" for i in range(len(labels))]
                                 for layer in range(len(layers))])
    written += image_grid(
        rows, inversion_stem, ["test image", *layers], None,
        f"{model}: what each layer keeps — inversions of its representation\n"
        "(alpha-norm + TV prior; err = relative representation error)", notes)
    return written
