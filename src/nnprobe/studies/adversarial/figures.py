"""Figures of the adversarial study: error matrices, minimal distortions, example grids,
adversarial training, and the top images along units and random directions."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plotting import BASELINE_COLOR, PAIR_COLOR, display_image, save_figure

__all__ = [
    "adversarial_example_grid",
    "signed_difference",
    "distortion_distributions",
    "error_by_regime",
    "error_matrix_heatmap",
    "magnification_curves",
    "top_image_rows",
    "training_monitor",
]


def error_matrix_heatmap(table: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Heatmap of an error-rate table (Szegedy et al. 2013, Tables 2 and 4) with every cell's percentage.

    ``table`` has a column ``examples`` (the row's example set), a column ``distortion`` (its
    mean RMS distortion), optionally ``n`` (its size), ``already_wrong`` (images left out of the
    row) and the distortion's interval, and one column per model with the error rate in [0, 1]
    (with its interval in ``"<model> low"`` and ``"<model> high"``, which are not drawn).
    """
    for col in ("examples", "distortion"):
        if col not in table.columns:
            raise ValueError(f"table needs columns 'examples' and 'distortion'; it has {list(table.columns)}")
    meta = ("examples", "distortion", "distortion_low", "distortion_high", "n", "already_wrong")
    models = [c for c in table.columns if c not in meta and not c.endswith((" low", " high"))]
    err = table[models].to_numpy(dtype=float) * 100
    rows = [f"{e}  (RMS {d:.3f})" for e, d in zip(table["examples"], table["distortion"])]
    fig, ax = plt.subplots(figsize=(1.1 * len(models) + 3.5, 0.45 * len(rows) + 1.6))
    im = ax.imshow(err, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for i in range(err.shape[0]):
        for j in range(err.shape[1]):
            ax.text(j, i, f"{err[i, j]:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if err[i, j] > 60 else "black")
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("model the examples are fed to")
    ax.set_ylabel("example set (mean RMS distortion)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="error rate (%)", fraction=0.04)
    fig.tight_layout()
    return save_figure(fig, stem)


def distortion_distributions(distortions: dict[str, np.ndarray], excluded: dict[str, tuple[int, int]], stem: Path,
                             nearest: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Minimal RMS distortion per attacked image, one box + points per model, means marked.

    ``distortions[model]`` holds the distortions of the model's adversarial examples (the
    paper's attack: one random target per image); ``excluded[model]`` is ``(already_wrong,
    failed)``: images left out because the model misclassified them unperturbed, and images
    whose attack reached no target, both shown in the model's label. ``nearest[model]``, when
    given, holds the nearest-target attack's distortions, whose mean is marked too.
    """
    names = list(distortions)
    labels = [f"{n}\n(already wrong: {excluded[n][0]}, failed: {excluded[n][1]})" for n in names]
    fig, ax = plt.subplots(figsize=(7.0, 0.55 * len(names) + 1.6))
    data = [np.asarray(distortions[n], dtype=float) for n in names]
    ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False,
               medianprops={"color": "black"}, tick_labels=labels)
    ax.invert_yaxis()  # the first model on top
    rng = np.random.default_rng(0)  # jitter only
    for i, vals in enumerate(data):
        ax.scatter(vals, i + 1 + rng.uniform(-0.18, 0.18, len(vals)), s=8, alpha=0.6, color=PAIR_COLOR, linewidths=0)
        if len(vals):
            ax.scatter([vals.mean()], [i + 1], marker="D", color=BASELINE_COLOR, zorder=4,
                       label="mean (random target)" if i == 0 else None)
        near = np.asarray((nearest or {}).get(names[i], []), dtype=float)
        if near.size:
            ax.scatter([near.mean()], [i + 1], marker="v", s=45, facecolors="none", edgecolors="black", zorder=4,
                       label="mean (nearest target, on the boundary)" if i == 0 else None)
    ax.set_xlabel("minimal RMS distortion sqrt(sum (x' - x)^2 / n), pixels in [0, 1]")
    ax.set_title("Distortion needed to move each image to its random wrong label")
    # below the axes: inside, the legend would cover a model's box
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.5 / len(names)), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, stem)


def signed_difference(original: np.ndarray, adversarial: np.ndarray) -> np.ndarray:
    """The perturbation ``x' - x`` of a ``(C, H, W)`` or ``(H, W)`` image as one ``(H, W)`` map:
    the mean over colour channels (a grey image's own difference)."""
    diff = np.asarray(adversarial, dtype=float) - np.asarray(original, dtype=float)
    return diff if diff.ndim == 2 else diff.mean(axis=0)


def adversarial_example_grid(
    originals: np.ndarray,
    adversarial: dict[str, np.ndarray],
    captions: dict[str, list[str]],
    stem: Path,
    magnify: float = 10.0,
) -> list[Path]:
    """Original, adversarial and the perturbation, for every model (rows) and example.

    ``originals`` (k, C, H, W) and ``adversarial[model]`` (k, C, H, W) are in [0, 1]. The
    perturbation ``x' - x`` (:func:`signed_difference`) is drawn in a diverging map, blue for
    darker and red for brighter pixels, white for unchanged, on one symmetric scale for the
    whole figure, ``±max(1/magnify, largest |x' - x| shown)``: no panel saturates, panels
    compare, and figures whose changes stay below ``1/magnify`` share one scale (the colour bar
    states it).
    ``captions[model][i]`` titles example i (e.g. "7→3, 0.061").
    """
    names = list(adversarial)
    k = originals.shape[0]
    diffs = {name: [signed_difference(originals[i], adversarial[name][i]) for i in range(k)] for name in names}
    limit = max([1.0 / magnify] + [float(np.abs(d).max()) for ds in diffs.values() for d in ds])
    fig, axes = plt.subplots(len(names), 3 * k, figsize=(0.85 * 3 * k + 1.9, 1.05 * len(names) + 0.6), squeeze=False)
    shown_diff = None
    for r, name in enumerate(names):
        for i in range(k):
            for p in range(3):
                ax = axes[r, 3 * i + p]
                if p < 2:
                    shown, cmap = display_image((originals[i], adversarial[name][i])[p])
                    ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                else:
                    shown_diff = ax.imshow(diffs[name][i], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                           interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if p == 1:
                    ax.set_title(captions[name][i], fontsize=6, pad=2)
                if r == 0:
                    ax.set_xlabel(("original", "adversarial", "x' − x")[p], fontsize=6, labelpad=1)
                    ax.xaxis.set_label_position("top")
            if i == 0:
                axes[r, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Minimal adversarial examples (title: true→target label, RMS distortion)", fontsize=9)
    fig.tight_layout(pad=0.3, w_pad=0.1, h_pad=0.4, rect=(0, 0, 0.93, 1))
    bar = fig.colorbar(shown_diff, cax=fig.add_axes((0.945, 0.15, 0.012, 0.7)))
    bar.set_label(f"x' − x (one scale, ±{limit:.3g})", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return save_figure(fig, stem)


def error_by_regime(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Test error of every replicate per training regime (points), with mean ± sd.

    ``table`` has columns ``regime`` and ``test_error`` (fraction), one row per network.
    """
    regimes = list(dict.fromkeys(table["regime"]))
    fig, ax = plt.subplots(figsize=(6.0, 0.7 * len(regimes) + 1.6))
    for i, regime in enumerate(regimes):
        vals = table.loc[table["regime"] == regime, "test_error"].to_numpy(dtype=float) * 100
        ax.scatter(vals, np.full(len(vals), i), color=PAIR_COLOR, s=25, zorder=3, label="network" if i == 0 else None)
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        ax.errorbar([vals.mean()], [i], xerr=[sd], fmt="D", color=BASELINE_COLOR, capsize=4, zorder=4,
                    label="mean ± sd" if i == 0 else None)
    ax.set_yticks(range(len(regimes)), [r.replace("_", " ") for r in regimes])
    ax.set_ylim(len(regimes) - 0.4, -0.6)  # the first regime on top
    ax.set_xlabel("test error (%)")
    ax.set_title("FC100-100-10 under every regime of the comparison (one point per seed)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, stem)


def magnification_curves(curve: pd.DataFrame, stem: Path) -> list[Path]:
    """Error of every model's examples magnified to each RMS, one panel per source model.

    ``curve`` is :func:`~.transfer.magnification_curve`'s table (source, rms, realised_rms,
    model, error, error_low, error_high); the examples as made are the points at their own
    mean RMS (open markers). One line per model fed, with its Wilson band.
    """
    sources = list(dict.fromkeys(curve["source"]))
    models = list(dict.fromkeys(curve["model"]))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.8), squeeze=False, sharey=True)
    for ax, source in zip(axes[0], sources):
        for i, model in enumerate(models):
            part = curve[(curve["source"] == source) & (curve["model"] == model)]
            magnified = part[part["rms"].notna()].sort_values("rms")
            native = part[part["rms"].isna()]
            colour = colours(i % 10)
            ax.plot(magnified["rms"], magnified["error"] * 100, "-o", ms=3, color=colour, label=model)
            ax.fill_between(magnified["rms"], magnified["error_low"] * 100, magnified["error_high"] * 100,
                            color=colour, alpha=0.15, lw=0)
            ax.plot(native["realised_rms"], native["error"] * 100, "o", mfc="none", color=colour)
        ax.set_title(f"examples of {source}", fontsize=9)
        ax.set_xlabel("RMS distortion (magnified; open: as made)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("error on the model fed (%)")
    axes[0, -1].legend(fontsize=7, title="fed to", title_fontsize=7)
    fig.suptitle("Transfer of minimal adversarial examples as they are magnified (Szegedy et al. 2013, Table 4)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


def training_monitor(monitor: pd.DataFrame, stem: Path) -> list[Path]:
    """Every network's log as it trains: clean training error (top) and mean distortion (bottom).

    ``monitor`` has one row per logged moment with columns regime, replicate, epochs_done,
    clean_train_error, and the distortions a regime logs: ``pool_<layer>_mean_distortion`` (the
    examples a pool holds; solid for the input, dashed for hidden layers, whose units are
    sigmoid activations) or ``perturbation_rms``. One colour per regime, one line per network.
    """
    regimes = list(dict.fromkeys(monitor["regime"]))
    colours = plt.get_cmap("tab10")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.0), sharex=True)
    distortion_columns = [c for c in monitor.columns
                          if (c.startswith("pool_") and c.endswith("_mean_distortion")) or c == "perturbation_rms"]
    for i, regime in enumerate(regimes):
        for j, (_, run) in enumerate(monitor[monitor["regime"] == regime].groupby("replicate", sort=True)):
            run = run.sort_values("epochs_done")
            label = regime.replace("_", " ") if j == 0 else None
            top.plot(run["epochs_done"], run["clean_train_error"] * 100, color=colours(i % 10), lw=0.8, label=label)
            for column in distortion_columns:
                values = run[column]
                if values.notna().any():
                    hidden = column.startswith("pool_") and not column.startswith("pool_input")
                    bottom.plot(run["epochs_done"], values, color=colours(i % 10), lw=0.8,
                                ls="--" if hidden else "-")
    top.set_ylabel("clean training error (%)")
    top.set_yscale("symlog", linthresh=1.0)
    top.legend(fontsize=7, ncol=2)
    top.grid(alpha=0.3)
    bottom.set_ylabel("mean RMS distortion trained on")
    bottom.set_xlabel("epoch")
    bottom.grid(alpha=0.3)
    bottom.set_title("solid: pixels (input pool, on-the-fly perturbation); dashed: hidden-layer pools", fontsize=8)
    fig.suptitle("FC100-100-10 as it trains, per regime (one line per seed)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


def top_image_rows(rows: dict[str, np.ndarray], stem: Path, title: str) -> list[Path]:
    """One row of images per direction (``rows[label]``: (k, C, H, W) in [0, 1]), labels on the left."""
    labels = list(rows)
    k = max(v.shape[0] for v in rows.values())
    fig, axes = plt.subplots(len(labels), k, figsize=(0.8 * k + 1.6, 0.85 * len(labels) + 0.6), squeeze=False)
    for r, label in enumerate(labels):
        for i in range(k):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if i < rows[label].shape[0]:
                shown, cmap = display_image(rows[label][i])
                ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return save_figure(fig, stem)
