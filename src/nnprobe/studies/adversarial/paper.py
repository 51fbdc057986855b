"""The paper's numbers (Szegedy et al. 2013, Tables 1-4 and Sec. 4.2) and our tables set beside them.

Every value below is the paper's, in its units (errors and rates as fractions, distortion as
RMS of pixels in [0, 1]): C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan,
I. Goodfellow, R. Fergus, "Intriguing properties of neural networks", arXiv:1312.6199v4
(ICLR 2014). How they were checked: Table 1, Table 2's columns FC10(1e-4), FC100-100-10 and
AE400-10, its row FC10(1), and Table 4's first row and both noise rows agree with two public
summaries of the paper found by this project (a reading note and a Korean summary, which also
quotes the magnification formula); the remaining cells are our transcription of the paper, and
they give exactly the per-table counts that the issue reporting the previous run states
(41 of 48 cells of Table 2 within 10 points, 18 of 24 of Table 4). Table 3's test errors are
2%, 2.1%, 2.1% (an earlier version of docs/results.md quoted the P2 and P1 errors of the last
two models as their test errors).

:func:`paper_comparison` sets every comparable cell of our tables beside the paper's value,
with our 95% interval; :func:`comparison_counts` counts, per table, the cells whose paper
value lies inside our interval and the cells within the tolerances of :data:`TOLERANCES`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["PAPER_TABLE_1", "PAPER_TABLE_2", "PAPER_TABLE_3", "PAPER_TABLE_4", "PAPER_TRAINING", "TOLERANCES",
           "comparison_counts", "paper_comparison"]

ZOO_NAMES = ("FC10(1e-4)", "FC10(1e-2)", "FC10(1)", "FC100-100-10", "FC200-200-10", "AE400-10")

#: Table 1: training error, test error, mean minimal distortion.
PAPER_TABLE_1 = {
    "FC10(1e-4)": {"train_error": 0.067, "test_error": 0.074, "distortion": 0.062},
    "FC10(1e-2)": {"train_error": 0.10, "test_error": 0.094, "distortion": 0.1},
    "FC10(1)": {"train_error": 0.212, "test_error": 0.20, "distortion": 0.14},
    "FC100-100-10": {"train_error": 0.0, "test_error": 0.0164, "distortion": 0.058},
    "FC200-200-10": {"train_error": 0.0, "test_error": 0.0154, "distortion": 0.065},
    "AE400-10": {"train_error": 0.0057, "test_error": 0.019, "distortion": 0.086},
}

_T2 = {  # row (examples made for): errors on FC10(1e-4), FC10(1e-2), FC10(1), FC100-100-10, FC200-200-10, AE400-10
    "FC10(1e-4) examples": (1.0, 0.117, 0.227, 0.02, 0.039, 0.027),
    "FC10(1e-2) examples": (0.871, 1.0, 0.352, 0.359, 0.273, 0.098),
    "FC10(1) examples": (0.719, 0.762, 1.0, 0.481, 0.47, 0.344),
    "FC100-100-10 examples": (0.289, 0.137, 0.211, 1.0, 0.066, 0.02),
    "FC200-200-10 examples": (0.382, 0.14, 0.238, 0.203, 1.0, 0.027),
    "AE400-10 examples": (0.234, 0.16, 0.248, 0.094, 0.066, 1.0),
    "Gaussian noise, stddev=0.1": (0.05, 0.101, 0.183, 0.0, 0.0, 0.008),
    "Gaussian noise, stddev=0.3": (0.156, 0.113, 0.227, 0.05, 0.043, 0.031),
}
#: Table 2: error of every row's examples on every model (noise rows: the paper lists their
#: distortion as their stddev, which our unclipped rows have).
PAPER_TABLE_2 = {row: dict(zip(ZOO_NAMES, values)) for row, values in _T2.items()}

#: Table 3: error on P1, on P2, on the test set, and mean minimal distortion (test images).
PAPER_TABLE_3 = {
    "FC100-100-10 (P1)": {"p1_error": 0.0, "p2_error": 0.024, "test_error": 0.02, "distortion": 0.062},
    "FC123-456-10 (P1)": {"p1_error": 0.0, "p2_error": 0.025, "test_error": 0.021, "distortion": 0.059},
    "FC100-100-10 (P2)": {"p1_error": 0.023, "p2_error": 0.0, "test_error": 0.021, "distortion": 0.058},
}

_CTS = ("FC100-100-10 (P1)", "FC123-456-10 (P1)", "FC100-100-10 (P2)")
_T4 = {
    "FC100-100-10 (P1) examples": (1.0, 0.262, 0.059),
    "FC123-456-10 (P1) examples": (0.0625, 1.0, 0.051),
    "FC100-100-10 (P2) examples": (0.082, 0.082, 1.0),
    "Gaussian noise, stddev=0.06": (0.022, 0.026, 0.024),
    "FC100-100-10 (P1) examples magnified to RMS 0.1": (1.0, 0.98, 0.43),
    "FC123-456-10 (P1) examples magnified to RMS 0.1": (0.96, 1.0, 0.22),
    "FC100-100-10 (P2) examples magnified to RMS 0.1": (0.27, 0.50, 1.0),
    "Gaussian noise, stddev=0.1": (0.026, 0.028, 0.027),
}
#: Table 4: error of every row's examples on the P1/P2 models ("amplified to stddev=0.1" in the paper).
PAPER_TABLE_4 = {row: dict(zip(_CTS, values)) for row, values in _T4.items()}

#: Sec. 4.2: test error of FC100-100-10 by regime ("below 1.2%" for the pools, an upper bound).
PAPER_TRAINING = {"weight_decay": 0.016, "dropout": 0.013, "adversarial_pool": 0.012}

#: What "within tolerance" means, per kind of cell: (tight, loose) absolute tolerances for rates
#: and model errors (fractions), relative ones for mean distortions. A rate from 1,000 images
#: has a 95% interval of about +-3 points near 50%; the paper gives no sample sizes.
TOLERANCES = {"rate": (0.05, 0.10), "model error": (0.0025, 0.005), "distortion": (0.10, 0.20)}


def _cell(table: str, row: str, column: str, kind: str, ours: float, low: float, high: float, paper: float,
          by_construction: bool = False) -> dict:
    tight, loose = TOLERANCES[kind]
    difference = ours - paper
    scale = abs(paper) if kind == "distortion" else 1.0
    return {"table": table, "row": row, "column": column, "kind": kind, "ours": ours, "ours_low": low,
            "ours_high": high, "paper": paper, "difference": difference,
            "inside_interval": bool(low <= paper <= high) if np.isfinite(low) and np.isfinite(high) else False,
            "within_tight": bool(abs(difference) <= tight * scale + 1e-12),
            "within_loose": bool(abs(difference) <= loose * scale + 1e-12),
            "by_construction": by_construction}


def _matrix_cells(name: str, table: pd.DataFrame, paper: Mapping[str, Mapping[str, float]]) -> list[dict]:
    cells = []
    rows = table.set_index("examples")
    for row, values in paper.items():
        if row not in rows.index:
            continue
        for column, value in values.items():
            if column not in rows.columns or not np.isfinite(rows.loc[row, column]):
                continue
            own = row == f"{column} examples"  # a model's own examples at their own distortion: 100% by construction
            cells.append(_cell(name, row, column, "rate", float(rows.loc[row, column]),
                               float(rows.loc[row, f"{column} low"]), float(rows.loc[row, f"{column} high"]), value,
                               own))
    return cells


def paper_comparison(zoo: pd.DataFrame, cross_model: pd.DataFrame, cts_models: pd.DataFrame,
                     cts_matrix: pd.DataFrame) -> pd.DataFrame:
    """Every cell of Tables 1-4 that the paper reports and we measured, ours beside the paper's.

    Inputs are the study's tables (``zoo``, ``cross_model``, ``cross_training_set_models``,
    ``cross_training_set``, with their interval columns). One row per cell: table, row, column,
    kind (rate, model error, distortion), ours with its 95% interval, the paper's value, the
    difference, ``inside_interval`` (the paper's value lies in our interval), ``within_tight``
    and ``within_loose`` (:data:`TOLERANCES`; relative for distortions) and ``by_construction``
    (a model's own examples at their own distortion, 100% whatever the model). Table 2's and
    Table 4's noise rows are compared in their unclipped form (what the paper's distortion
    column describes), and the magnified rows of Table 4 likewise.
    """
    cells = []
    zoo = zoo.set_index("model")
    for model, values in PAPER_TABLE_1.items():
        if model not in zoo.index:
            continue
        r = zoo.loc[model]
        for key in ("train_error", "test_error"):
            cells.append(_cell("Table 1", model, key, "model error", float(r[key]), float(r[f"{key}_low"]),
                               float(r[f"{key}_high"]), values[key]))
        cells.append(_cell("Table 1", model, "mean_min_distortion", "distortion", float(r["mean_min_distortion"]),
                           float(r["distortion_low"]), float(r["distortion_high"]), values["distortion"]))
    cells += _matrix_cells("Table 2", cross_model, PAPER_TABLE_2)
    models = cts_models.set_index("model")
    for model, values in PAPER_TABLE_3.items():
        if model not in models.index:
            continue
        r = models.loc[model]
        for key in ("p1_error", "p2_error"):  # measured on the 30,000 images of a half: no interval kept
            cells.append(_cell("Table 3", model, key, "model error", float(r[key]), np.nan, np.nan, values[key]))
        cells.append(_cell("Table 3", model, "test_error", "model error", float(r["test_error"]),
                           float(r["test_error_low"]), float(r["test_error_high"]), values["test_error"]))
        cells.append(_cell("Table 3", model, "mean_min_distortion", "distortion", float(r["mean_min_distortion"]),
                           float(r["distortion_low"]), float(r["distortion_high"]), values["distortion"]))
    cells += _matrix_cells("Table 4", cts_matrix, PAPER_TABLE_4)
    return pd.DataFrame(cells)


def comparison_counts(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per table: cells compared, and how many lie inside our interval, within the tight and the
    loose tolerance; then the same without the cells that are 100% by construction."""
    rows = []
    for table, group in comparison.groupby("table", sort=True):
        free = group[~group["by_construction"]]
        rows.append({"table": table, "cells": len(group), "inside_interval": int(group["inside_interval"].sum()),
                     "within_tight": int(group["within_tight"].sum()), "within_loose": int(group["within_loose"].sum()),
                     "cells_not_by_construction": len(free), "free_within_tight": int(free["within_tight"].sum()),
                     "free_within_loose": int(free["within_loose"].sum())})
    return pd.DataFrame(rows)
