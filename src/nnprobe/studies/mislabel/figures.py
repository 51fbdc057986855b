"""Figures of the mislabel study: t heatmaps (Welch or paired) and information heatmaps, accuracy by pair,
dendrogram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from scipy.cluster import hierarchy as _hier

from ...plotting import (
    BASELINE_COLOR,
    PAIR_COLOR,
    Span,
    class_heatmap,
    save_figure,
    symmetric_norm,
)
from ...core.chance import chance_threshold
from ...stats import mean_interval

#: Below this many networks a pair is drawn as its points with the mean and its 95% t interval:
#: a box's quartiles over a handful of points say less than the points themselves.
BOX_MIN_NETWORKS = 10

__all__ = ["t_heatmap", "information_heatmap", "accuracy_by_pair", "class_dendrogram"]

def _matrix(df: pd.DataFrame, value: str) -> tuple[np.ndarray, list[str]]:
    """K x K matrix of ``df[value]`` (rows target, columns other) and class names."""
    for col in ("target", "other", value):
        if col not in df.columns:
            raise ValueError(f"heatmap needs column {col!r}; got {list(df.columns)}")
    if "comparison" in df.columns and df["comparison"].nunique() > 1:
        raise ValueError(
            f"heatmap needs a table of one comparison, got {sorted(df['comparison'].unique())}"
        )
    k = int(max(df["target"].max(), df["other"].max())) + 1
    m = np.full((k, k), np.nan)
    m[df["target"].to_numpy(int), df["other"].to_numpy(int)] = df[value].to_numpy(float)
    np.fill_diagonal(m, np.nan)
    names = [str(i) for i in range(k)]
    for idx_col, name_col in (("target", "target_name"), ("other", "other_name")):
        if name_col in df.columns:
            for i, n in df[[idx_col, name_col]].drop_duplicates(idx_col).itertuples(index=False):
                names[int(i)] = str(n)
    return m, names


def _comparison(df: pd.DataFrame) -> tuple[str, str]:
    """Group names (X, Y) of the table's comparison, e.g. ("confused", "clean")."""
    comp = str(df["comparison"].iloc[0]) if "comparison" in df.columns and len(df) else ""
    x, _, y = comp.partition("_vs_")
    return (x, y) if y else ("confused", "clean")


_GROUP_TEXT = {"confused": "pair holds C, not T", "clean": "pair holds neither T nor C",
               "baseline": "no mislabelling"}


def _other_label(gx: str, gy: str) -> str:
    return f"other class C ({gx}: {_GROUP_TEXT.get(gx, gx)}; {gy}: {_GROUP_TEXT.get(gy, gy)})"


def _test(table: pd.DataFrame) -> tuple[str, str]:
    """The test a table holds (its ``test`` column; Welch's t without one), and a line that says how
    a paired table's values were made ("" for the others)."""
    test = str(table["test"].iloc[0]) if "test" in table.columns and len(table) else "Welch t"
    if "n_replicates" not in table.columns or not len(table):
        return test, ""
    return test, (f"{test} over {int(table['n_replicates'].max())} replicates of the paired design "
                  "(within-replicate contrasts)")


def t_heatmap(
    welch: pd.DataFrame,
    stem: Path,
    order: list[int] | None = None,
    spans: Sequence[Span] | None = None,
    title: str | None = None,
    fdr_alpha: float = 0.05,
    shared: Sequence[pd.DataFrame] = (),
) -> list[Path]:
    """Heatmap of t (rows target T, columns other C) from a ``welch_table`` or a ``paired_table``.

    ``shared``: the tables of the run's other heatmaps of the same test; the colour scale is then
    symmetric to the largest |t| of all of them (one colour is one t in every heatmap; the colour
    bar says so), else to this table's own.

    Diverging colormap centred at 0 with symmetric limits (red: T more accurate with
    C confused, blue: less); a star marks cells with ``q_bh < fdr_alpha``; the diagonal is
    grey. ``order`` permutes rows and columns alike; ``spans`` ``(name, start, stop)``
    (positions after ordering) draw group separators and labels. Titles and the
    colorbar label follow the table's comparison: for the ``clean_vs_baseline``
    control, >0 reads "higher in clean than baseline models". The colorbar names the table's
    test (its ``test`` column: Welch t, paired t), and the title of a paired table says over
    how many replicates.
    """
    m, names = _matrix(welch, "t")
    marks = None
    if "q_bh" in welch.columns:
        q, _ = _matrix(welch, "q_bh")
        marks = np.nan_to_num(q, nan=1.0) < fdr_alpha
    gx, gy = _comparison(welch)
    test, how = _test(welch)
    if gx == "confused":
        cbar = f"{test} (T accuracy higher with C confused >0)"
        default_title = f"Effect of confusing C on T's accuracy ({gx} vs {gy} models)"
    else:  # clean_vs_baseline: a control, C is not confused in either group
        cbar = f"{test} (T accuracy higher in {gx} than {gy} models >0)"
        default_title = f"T's accuracy, {gx} vs {gy} models (control)"
    default_title += f"\n{how}" if how else ""
    title = _with_note(default_title if title is None else title, welch, m)
    others = [_matrix(t, "t")[0] for t in shared]
    norm = symmetric_norm([m, *others])
    if others:
        cbar += f"\none scale for the run's {len(others) + 1} {test} heatmaps (±{norm.vmax:.2f})"
    fig = class_heatmap(
        m, names, order, spans, cmap="RdBu_r", norm=norm, cbar_label=cbar,
        title=title, marks=marks, mark_label=f"BH q < {fdr_alpha:g}",
        ylabel="target class T (accuracy on T's test images)", xlabel=_other_label(gx, gy),
    )
    return save_figure(fig, stem)


def information_heatmap(
    info: pd.DataFrame,
    stem: Path,
    order: list[int] | None = None,
    spans: Sequence[Span] | None = None,
    value: str = "delta_logloss_bits",
    fdr_alpha: float = 0.05,
) -> list[Path]:
    """Heatmap of an ``information_table`` or ``paired_information_table`` column in bits (rows
    target T, columns other C).

    ``delta_logloss_bits`` (signed) uses a diverging colormap centred at 0; the KL
    columns (non-negative) a sequential one from 0. Cell values are printed when
    K <= 12. A paired table's title says that each value is a mean over replicates of
    within-replicate values, and its ``delta_logloss_bits`` cells with ``q_bh < fdr_alpha``
    (the paired t) are starred.
    """
    m, names = _matrix(info, value)
    gx, gy = _comparison(info)
    if value == "delta_logloss_bits":
        norm = symmetric_norm(m)
        cmap = "PuOr_r"
        label = "Δ log2-loss (bits)"
        title = (f"Δ log2-loss on T's images, {gx} − {gy} models\n"
                 f"(>0: {gx} models need more bits per image of T)")
    else:
        finite = m[np.isfinite(m)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        norm = mcolors.Normalize(vmin=0.0, vmax=vmax)
        cmap = "viridis"
        what = {"kl_bits": "mean softmax", "kl_counts_bits": "pooled predictions, add-one smoothed"}
        label = f"KL({gx} ‖ {gy}) (bits)"
        title = (f"KL divergence of the predicted distribution on T's images\n"
                 f"({what.get(value, value)}), {gx} ‖ {gy} models")
    test, how = _test(info)
    marks, mark_label = None, None
    if how:
        title += f"\n{how}"
        if value == "delta_logloss_bits" and "q_bh" in info.columns:
            q, _ = _matrix(info, "q_bh")
            marks, mark_label = np.nan_to_num(q, nan=1.0) < fdr_alpha, f"{test}: BH q < {fdr_alpha:g}"
    amax = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
    fmt = ".2f" if amax >= 0.1 else ".3f"
    fig = class_heatmap(m, names, order, spans, cmap=cmap, norm=norm, cbar_label=label,
                         title=_with_note(title, info, m), annotate_fmt=fmt, marks=marks, mark_label=mark_label,
                         ylabel="target class T (measured on T's test images)",
                         xlabel=_other_label(gx, gy))
    return save_figure(fig, stem)


def _with_note(title: str, table: pd.DataFrame, m: np.ndarray) -> str:
    """The title, with the reason when no cell has a value (a comparison undefined for this data)."""
    off_diagonal = ~np.eye(len(m), dtype=bool)
    if "note" in table.columns and not np.isfinite(m[off_diagonal]).any():
        notes = [n for n in table["note"] if n]
        if notes:
            return f"{title}\n{notes[0]}"
    return title


def _model_accuracy(pmc: pd.DataFrame) -> pd.DataFrame:
    """Overall accuracy per model: sum(accuracy * n_images) / sum(n_images) over classes."""
    for col in ("pair", "replicate", "class", "accuracy", "n_images"):
        if col not in pmc.columns:
            raise ValueError(f"accuracy_by_pair needs column {col!r}; got {list(pmc.columns)}")
    keys = ["pair", "replicate"] + (["seed"] if "seed" in pmc.columns else [])
    d = pmc.assign(_correct=pmc["accuracy"] * pmc["n_images"])
    g = d.groupby(keys, sort=False)[["_correct", "n_images"]].sum().reset_index()
    g["model_accuracy"] = g["_correct"] / g["n_images"]
    return g[["pair", "model_accuracy"]]


def _pair_label(pair: str, names: dict[int, str]) -> str:
    if pair == "none":
        return "none (baseline)"
    try:
        a, b = (int(x) for x in str(pair).split("-"))
    except ValueError:
        return str(pair)
    return f"{names.get(a, a)}–{names.get(b, b)}"


def accuracy_by_pair(per_model_class: pd.DataFrame, stem: Path) -> list[Path]:
    """Overall test accuracy of each model, grouped by mislabelled pair.

    One point per replicate for each pair, with a box (quartiles, whiskers 1.5 IQR) when every
    pair has at least :data:`BOX_MIN_NETWORKS` networks, else the mean and its 95% Student-t
    interval (:func:`nnprobe.stats.mean_interval`); pairs sorted by median (boxes) or mean; the
    baseline ("none") is drawn in orange with a dashed line at its median or mean. Networks at
    chance (:func:`nnprobe.core.chance.chance_threshold`) are marked with red crosses. Overall
    accuracy weights classes by ``n_images``. Legends sit below the axes, over no point.
    """
    acc = _model_accuracy(per_model_class)
    names: dict[int, str] = {}
    if "class_name" in per_model_class.columns:
        for c, n in per_model_class[["class", "class_name"]].drop_duplicates("class").itertuples(index=False):
            names[int(c)] = str(n)
    boxes = acc.groupby("pair").size().min() >= BOX_MIN_NETWORKS
    centre = acc.groupby("pair")["model_accuracy"].agg("median" if boxes else "mean").sort_values(kind="stable")
    pairs = list(centre.index)
    data = [acc.loc[acc["pair"] == p, "model_accuracy"].to_numpy() for p in pairs]
    labels = [_pair_label(p, names) for p in pairs]
    n = len(pairs)
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 0.24 * n + 1.9)))
    if boxes:
        bp = ax.boxplot(data, orientation="horizontal", tick_labels=labels, widths=0.6,
                        showfliers=False, patch_artist=True, medianprops={"color": "black"})
    else:
        ax.set_yticks(range(1, n + 1), labels)
    rng = np.random.default_rng(0)  # jitter only
    for i, (p, vals) in enumerate(zip(pairs, data)):
        color = BASELINE_COLOR if p == "none" else PAIR_COLOR
        if boxes:
            bp["boxes"][i].set(facecolor=mcolors.to_rgba(color, 0.25), edgecolor=color)
        else:
            mean, low, high = mean_interval(vals)
            err = [[mean - low], [high - mean]] if np.isfinite(low) else None
            ax.errorbar([mean], [i + 1], xerr=err, fmt="D", ms=4, color="black", capsize=3, zorder=4,
                        label="mean, 95% t interval" if i == 0 else None)
        ax.scatter(vals, i + 1 + rng.uniform(-0.15, 0.15, len(vals)), s=10, color=color,
                   alpha=0.8, zorder=3, linewidths=0)
    k = per_model_class["class"].nunique()
    chance = chance_threshold(k)
    failed = acc["model_accuracy"] < chance
    if failed.any():
        rows = [pairs.index(p) + 1 for p in acc.loc[failed, "pair"]]
        ax.scatter(acc.loc[failed, "model_accuracy"], rows, marker="x", s=40, color="red", zorder=4,
                   label=f"at chance ({int(failed.sum())} networks: check train.lr, train.epochs)")
        ax.axvline(chance, color="red", linestyle=":", linewidth=1, zorder=1)
    if "none" in pairs:
        i = pairs.index("none")
        ax.get_yticklabels()[i].set(color=BASELINE_COLOR, fontweight="bold")
        ax.axvline(centre["none"], color=BASELINE_COLOR, linestyle="--", linewidth=1,
                   label=f"baseline {'median' if boxes else 'mean'}", zorder=1)
    if ax.get_legend_handles_labels()[0]:  # at the foot of the figure, over no point
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.tick_params(axis="y", labelsize=8 if n > 20 else 9)
    ax.set_xlabel("overall test accuracy of a model (classes weighted by test images)")
    ax.set_ylabel("mislabelled pair (half of each class labelled as the other)")
    reps = acc.groupby("pair").size()
    rep_txt = f"{reps.min()}" if reps.min() == reps.max() else f"{reps.min()}–{reps.max()}"
    ax.set_title(f"Model accuracy by mislabelled pair\n({rep_txt} replicates each, sorted by "
                 f"{'median' if boxes else 'mean'})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(0.4, n + 0.6)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return save_figure(fig, stem)


def class_dendrogram(linkage: np.ndarray, class_names: Sequence[str], stem: Path) -> list[Path]:
    """Dendrogram of a class linkage (``stats.class_linkage``), leaves labelled by class name."""
    linkage = np.asarray(linkage, dtype=float)
    k = linkage.shape[0] + 1
    if len(class_names) != k:
        raise ValueError(f"linkage has {k} leaves but {len(class_names)} class names were given")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * k + 2.0), 4.5))
    _hier.dendrogram(linkage, labels=[str(c) for c in class_names], ax=ax,
                     leaf_rotation=45, leaf_font_size=10, color_threshold=0,
                     above_threshold_color="0.2")
    for lab in ax.get_xticklabels():
        lab.set(ha="right", rotation_mode="anchor")
    ax.set_ylabel("distance d = (t_ab + t_ba)/2 − min\n"
                  "(Welch t, average linkage;\nlow: confusing one hurts the other)",
                  fontsize=9)
    top = float(np.nanmax(linkage[:, 2])) if len(linkage) else 1.0
    ax.set_ylim(-0.03 * top, 1.05 * top)  # the first merge is at d ~ 0: keep it visible
    ax.set_xlabel("class")
    ax.set_title("Classes clustered by the mutual effect of confusing them")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, stem)
