"""Tables of the mislabel study: the tidy per-model, per-class table of test metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ...core.naming import parse_pair

__all__ = ["combine_tables", "per_model_class_table"]


def per_model_class_table(
    pairs: Sequence[str],
    replicates: Sequence[int],
    seeds: Sequence[int],
    classes: Sequence[str],
    metrics: Mapping[str, np.ndarray],
    design: str = "independent",
) -> pd.DataFrame:
    """The tidy table of a population: one row per (model, true class).

    Member k was trained for pair ``pairs[k]`` as replicate ``replicates[k]`` from init seed
    ``seeds[k]``. ``metrics`` holds per-member arrays as returned by
    :func:`nnprobe.engines.population.class_metrics`: ``accuracy``/``logloss_bits`` ``(K, C)``,
    ``confusion``/``mean_probs`` ``(K, C, C)`` and ``n_images`` ``(C,)``; ``design`` is the
    study's design that seeded them (config key ``mislabel.design``). Columns: pair,
    pair_a, pair_b (-1 for the baseline), replicate, seed, design, class, class_name, n_images,
    accuracy, logloss_bits, pred_0..pred_{C-1} (prediction counts: the confusion row),
    prob_0..prob_{C-1} (mean softmax over the class's test images).
    """
    num_classes = len(classes)
    rows = []
    for k, (pair, replicate, seed) in enumerate(zip(pairs, replicates, seeds, strict=True)):
        parsed = parse_pair(pair, num_classes)
        a, b = parsed if parsed is not None else (-1, -1)
        for c in range(num_classes):
            row = {
                "pair": pair,
                "pair_a": a,
                "pair_b": b,
                "replicate": int(replicate),
                "seed": int(seed),
                "design": str(design),
                "class": c,
                "class_name": str(classes[c]),
                "n_images": int(metrics["n_images"][c]),
                "accuracy": float(metrics["accuracy"][k, c]),
                "logloss_bits": float(metrics["logloss_bits"][k, c]),
            }
            row.update({f"pred_{j}": int(metrics["confusion"][k, c, j]) for j in range(num_classes)})
            row.update({f"prob_{j}": float(metrics["mean_probs"][k, c, j]) for j in range(num_classes)})
            rows.append(row)
    return pd.DataFrame(rows)


def combine_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The per-model tables of several training jobs as one, refusing a network that appears twice.

    A network is a (pair, replicate); two jobs that trained the same one (overlapping packs,
    or evidence from two runs) would weigh it twice in every test. Rows come in one canonical
    order (baseline first, then pairs as class numbers, replicate, class) whatever the order of
    the tables, so that packing, blocking or the order of evidence folders cannot change a bit
    of the statistics (sums of floats depend on their order). Networks of both designs
    (``design``: independent, paired) are not combined: they are two experiments. A table
    without a ``design`` column was written before the paired design existed: independent.
    """
    frame = pd.concat([t if "design" in t.columns else t.assign(design="independent") for t in tables],
                      ignore_index=True)
    designs = sorted(frame["design"].astype(str).unique())
    if len(designs) > 1:
        counts = frame.drop_duplicates(["pair", "replicate"])["design"].value_counts()
        raise ValueError(f"the tables hold networks of the designs {designs} ({counts.to_dict()} networks): the "
                         "independent and paired designs (config key mislabel.design) are two experiments; "
                         "combine the networks of one")
    rows_per_model = frame.groupby(["pair", "replicate"]).size()
    twice = rows_per_model[rows_per_model > frame["class"].nunique()]
    if len(twice):
        shown = [f"{p}/r{r}" for p, r in twice.index[:5]]
        raise ValueError(f"{len(twice)} network(s) appear in more than one table, e.g. {shown}; "
                         "each (pair, replicate) must be trained by exactly one job")
    pair_order = {pair: (-1, -1) if pair == "none" else tuple(int(c) for c in pair.split("-"))
                  for pair in frame["pair"].unique()}
    ranked = sorted(pair_order, key=pair_order.__getitem__)
    frame = frame.assign(_pair_rank=frame["pair"].map({pair: i for i, pair in enumerate(ranked)}))
    frame = frame.sort_values(["_pair_rank", "replicate", "class"], kind="stable", ignore_index=True)
    return frame.drop(columns="_pair_rank")
