"""Tables of the noise study: per network (probe tables) and across networks (agreement,
the two-class networks, clutter and its correlation with the noise a class attracts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ...core.chance import at_chance
from ...stats import auroc, spearman
from .geometry import (
    bias_check,
    clutter,
    cosine_distance_matrix,
    dominant_agreement,
    max_softmax,
    minimum_spanning_tree,
    predicted_fractions,
)

__all__ = ["probe_tables", "network_accuracy", "without_networks_at_chance", "agreement_table", "binary_table",
           "clutter_table", "clutter_correlations"]


def probe_tables(
    test_logits: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    output_names: Sequence[str],
    probes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    weight: np.ndarray,
    bias: np.ndarray,
    in_distribution: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every probe of one network, as three tidy tables.

    Groups are the test images of each true class (``kind="class"``) and each probe set
    (``kind="noise"``; ``probes`` maps its name to ``(logits, features)``). Returns

    ``groups``: one row per group: ``n``, ``mean_confidence`` (mean max softmax),
    ``pred_{name}`` (share predicted as each output), ``dominant``/``dominant_name``/
    ``dominant_fraction``, the :func:`bias_check` columns, ``auroc`` (max softmax of the
    in-distribution test images against the group; noise groups only) and the feature-space
    clutter (:func:`clutter`; NaN for a group of one image).
    ``distances``: ``(1 - cos)/2`` between every pair of group mean features (both orders).
    ``mst``: for each probe set, the minimum spanning tree over the class means and that set's
    mean (``noise_set``, ``a``, ``b``, ``weight``).

    ``in_distribution`` lists the true classes the network was trained on (all by default):
    their test images are the positives of the AUROC.
    """
    test_labels = np.asarray(test_labels)
    k = len(output_names)
    if np.asarray(weight).shape[0] != k or np.asarray(test_logits).shape[1] != k:
        raise ValueError(f"{k} output names but weight {np.shape(weight)} and logits {np.shape(test_logits)}")
    classes = list(range(len(class_names)))
    in_distribution = classes if in_distribution is None else list(in_distribution)
    positive = max_softmax(test_logits[np.isin(test_labels, in_distribution)])
    groups: list[tuple[str, str, np.ndarray, np.ndarray]] = [
        (str(class_names[c]), "class", test_logits[test_labels == c], test_features[test_labels == c]) for c in classes
    ]
    groups += [(name, "noise", np.asarray(lg), np.asarray(ft)) for name, (lg, ft) in probes.items()]
    rows = []
    for name, kind, logits, features in groups:
        if not len(logits):
            raise ValueError(f"group {name!r} has no images")
        row: dict = {"group": name, "kind": kind, "n": len(logits),
                     "mean_confidence": float(max_softmax(logits).mean())}
        row.update({f"pred_{o}": f for o, f in zip(output_names, predicted_fractions(logits, k))})
        check = bias_check(features, weight, bias)
        row["dominant"] = check.pop("dominant")
        row["dominant_name"] = str(output_names[row["dominant"]])
        row.update(check)
        row["auroc"] = auroc(positive, max_softmax(logits)) if kind == "noise" else np.nan
        spread = clutter(features) if len(features) > 1 else {"mean_distance": np.nan, "participation_ratio": np.nan}
        row["feature_mean_distance"] = spread["mean_distance"]
        row["feature_participation_ratio"] = spread["participation_ratio"]
        rows.append(row)
    table = pd.DataFrame(rows)
    names = [g[0] for g in groups]
    means = np.stack([np.asarray(g[3], dtype=np.float64).mean(axis=0) for g in groups])
    d = cosine_distance_matrix(means)
    distances = pd.DataFrame(
        [{"a": names[i], "b": names[j], "kind_a": groups[i][1], "kind_b": groups[j][1], "distance": d[i, j]}
         for i in range(len(names)) for j in range(len(names)) if i != j]
    )
    mst_rows = []
    for s, name in enumerate(probes):
        nodes = classes + [len(classes) + s]
        for i, j, w in minimum_spanning_tree(d[np.ix_(nodes, nodes)]):
            mst_rows.append({"noise_set": name, "a": names[nodes[i]], "b": names[nodes[j]], "weight": w})
    mst = pd.DataFrame(mst_rows, columns=["noise_set", "a", "b", "weight"])
    return table, distances, mst


def network_accuracy(groups: pd.DataFrame) -> pd.DataFrame:
    """Each network's test accuracy, from its probe table: over the test images of the classes it
    has an output for, the share predicted as their own class (``sum_c n_c pred_c(c) / sum_c n_c``;
    a binary network counts its two classes only). One row per (source, model): ``accuracy``,
    ``outputs`` (its number of outputs) and ``at_chance`` (:func:`nnprobe.core.chance.at_chance`)."""
    rows = []
    for (source, model), sub in groups.groupby(["source", "model"], sort=False):
        outputs = [c.removeprefix("pred_") for c in sub.columns if c.startswith("pred_") and sub[c].notna().all()]
        own = sub[(sub["kind"] == "class") & sub["group"].isin(outputs)]
        right = sum(r["n"] * r[f"pred_{r['group']}"] for _, r in own.iterrows())
        accuracy = float(right / own["n"].sum())
        rows.append({"source": source, "model": model, "accuracy": accuracy, "outputs": len(outputs),
                     "at_chance": at_chance(accuracy, len(outputs))})
    return pd.DataFrame(rows)


def without_networks_at_chance(tables: Mapping[str, pd.DataFrame], networks: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``tables`` (each with ``source`` and ``model`` columns) without the rows of the networks
    that ``networks`` (:func:`network_accuracy`) flags at chance: such a network learnt next to
    nothing, so where it sends noise says nothing about what classifiers learn."""
    failed = set(map(tuple, networks.loc[networks["at_chance"], ["source", "model"]].to_numpy().tolist()))
    return {name: t[[(s, m) not in failed for s, m in zip(t["source"], t["model"])]].reset_index(drop=True)
            for name, t in tables.items()}


def agreement_table(groups: pd.DataFrame) -> pd.DataFrame:
    """Per source and probe set, across its networks: is the dominant class the same?

    Columns: ``models``, ``mode`` (most common dominant class, and ``mode_name``),
    ``mode_fraction`` (share of networks whose dominant class it is), ``distinct``,
    ``all_same``, and means over networks of ``dominant_fraction``, ``mean_confidence``,
    ``auroc`` and ``bias_predicts_dominant`` (the share of networks where the bias alone
    predicts the dominant class).
    """
    rows = []
    noise = groups[groups["kind"] == "noise"]
    for (source, group), sub in noise.groupby(["source", "group"], sort=False):
        agree = dominant_agreement(sub["dominant"].tolist())
        names = dict(zip(sub["dominant"], sub["dominant_name"]))
        rows.append({"source": source, "noise_set": group, **agree, "mode_name": names[agree["mode"]],
                     "mean_dominant_fraction": sub["dominant_fraction"].mean(),
                     "mean_confidence": sub["mean_confidence"].mean(), "mean_auroc": sub["auroc"].mean(),
                     "bias_predicts_dominant": sub["bias_predicts_dominant"].mean()})
    return pd.DataFrame(rows)


def binary_table(groups: pd.DataFrame, first_class: str, source: str = "resnet18_binary") -> pd.DataFrame:
    """Share of every test class and probe set that the binary networks assign to ``first_class``.

    Output 0 of a binary network is the first of ``noise.binary_classes`` (e.g. cat); one row
    per group with the mean, standard deviation, minimum and maximum over networks.
    """
    sub = groups[groups["source"] == source]
    column = f"pred_{first_class}"
    if sub.empty or column not in sub.columns or sub[column].isna().any():
        raise ValueError(
            f"no share of {first_class!r} for source {source!r} in the probe table (sources "
            f"{sorted(groups['source'].unique())}); is {first_class!r} the first of noise.binary_classes?"
        )
    table = (sub.groupby(["group", "kind"], sort=False)[column]
             .agg(models="count", mean="mean", sd="std", min="min", max="max").reset_index())
    table.insert(2, "first_class", first_class)
    return table


def clutter_table(groups: pd.DataFrame, input_clutter: pd.DataFrame) -> pd.DataFrame:
    """Per source and class: clutter in pixel space and feature space, and the noise each class attracts.

    Feature-space clutter (``feature_mean_distance``, ``feature_participation_ratio``) and
    ``attraction_{set}`` (share of the probe set predicted as the class) are means over the
    source's networks; pixel-space clutter comes from ``input_clutter`` (rule
    noise_input_clutter). Sources whose outputs are not the classes (binary networks) are left out.
    """
    rows = []
    classes = input_clutter["group"].tolist()
    for source, sub in groups.groupby("source", sort=False):
        if not all(f"pred_{c}" in sub.columns and sub[f"pred_{c}"].notna().all() for c in classes):
            continue
        per_class = sub[sub["kind"] == "class"].groupby("group")[["feature_mean_distance",
                                                                  "feature_participation_ratio"]].mean()
        noise = sub[sub["kind"] == "noise"]
        for c, name in enumerate(classes):
            row = {"source": source, "class": c, "group": name,
                   **input_clutter.set_index("group").loc[name, ["input_mean_distance",
                                                                  "input_participation_ratio"]].to_dict(),
                   **per_class.loc[name].to_dict()}
            for set_name, s in noise.groupby("group", sort=False):
                row[f"attraction_{set_name}"] = s[f"pred_{name}"].mean()
            rows.append(row)
    return pd.DataFrame(rows)


def clutter_correlations(clutter_rows: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between each clutter measure and each probe set's attraction, per source.

    Also names the most cluttered class and the most attracting class, and whether they are
    the same ("does the most cluttered class attract the noise?").
    """
    measures = ["input_mean_distance", "input_participation_ratio", "feature_mean_distance",
                "feature_participation_ratio"]
    rows = []
    for source, sub in clutter_rows.groupby("source", sort=False):
        for attraction in [c for c in sub.columns if c.startswith("attraction_")]:
            for measure in measures:
                rho, p = spearman(sub[measure], sub[attraction])
                rows.append({"source": source, "noise_set": attraction.removeprefix("attraction_"),
                             "measure": measure, "classes": len(sub), "rho": rho, "p": p,
                             "most_cluttered": sub.loc[sub[measure].idxmax(), "group"],
                             "most_attracting": sub.loc[sub[attraction].idxmax(), "group"],
                             "most_cluttered_attracts": bool(sub[measure].idxmax() == sub[attraction].idxmax())})
    return pd.DataFrame(rows)
