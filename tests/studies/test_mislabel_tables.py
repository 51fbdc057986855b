"""The tidy per-model table of the mislabel study (nnprobe.studies.mislabel.tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnprobe.studies.mislabel.tables import combine_tables, per_model_class_table


def test_per_model_class_table():
    k, c = 3, 3
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, size=(k, c, c))
    metrics = {
        "accuracy": rng.random((k, c)),
        "logloss_bits": rng.random((k, c)) * 3,
        "confusion": confusion,
        "mean_probs": rng.dirichlet(np.ones(c), size=(k, c)),
        "n_images": np.array([4, 5, 6]),
    }
    table = per_model_class_table(["none", "none", "0-2"], [0, 1, 0], [11, 12, 13], ["cat", "dog", "fox"], metrics)
    assert list(table.columns) == [
        "pair", "pair_a", "pair_b", "replicate", "seed", "design", "class", "class_name", "n_images", "accuracy",
        "logloss_bits", "pred_0", "pred_1", "pred_2", "prob_0", "prob_1", "prob_2",
    ]
    assert len(table) == k * c
    assert table["pair"].tolist() == ["none"] * 6 + ["0-2"] * 3
    assert table["pair_a"].tolist() == [-1] * 6 + [0] * 3 and table["pair_b"].tolist() == [-1] * 6 + [2] * 3
    assert table["replicate"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert table["seed"].tolist() == [11] * 3 + [12] * 3 + [13] * 3
    assert set(table["design"]) == {"independent"}  # the default; the job passes the config's design
    paired = per_model_class_table(["0-2"], [0], [13], ["cat", "dog", "fox"],
                                   {key: value[2:] if key != "n_images" else value for key, value in metrics.items()},
                                   design="paired")
    assert set(paired["design"]) == {"paired"}
    assert table["class"].tolist() == [0, 1, 2] * 3
    assert table["class_name"].tolist() == ["cat", "dog", "fox"] * 3
    assert table["n_images"].tolist() == [4, 5, 6] * 3
    np.testing.assert_allclose(table["accuracy"], metrics["accuracy"].ravel())
    np.testing.assert_allclose(table["logloss_bits"], metrics["logloss_bits"].ravel())
    np.testing.assert_array_equal(table[["pred_0", "pred_1", "pred_2"]].to_numpy(), confusion.reshape(k * c, c))
    np.testing.assert_allclose(
        table[["prob_0", "prob_1", "prob_2"]].to_numpy(), metrics["mean_probs"].reshape(k * c, c)
    )
    assert table["pred_0"].dtype.kind == "i" and table["accuracy"].dtype.kind == "f"


def test_per_model_class_table_checks_lengths_and_pairs():
    metrics = {
        "accuracy": np.zeros((1, 2)),
        "logloss_bits": np.zeros((1, 2)),
        "confusion": np.zeros((1, 2, 2), int),
        "mean_probs": np.full((1, 2, 2), 0.5),
        "n_images": np.array([1, 1]),
    }
    with pytest.raises(ValueError):
        per_model_class_table(["none", "none"], [0], [1], ["a", "b"], metrics)
    with pytest.raises(ValueError, match="pair"):
        per_model_class_table(["0-2"], [0], [1], ["a", "b"], metrics)
    assert isinstance(per_model_class_table(["0-1"], [0], [1], ["a", "b"], metrics), pd.DataFrame)


def two_class_table(pairs: list[str], replicates: list[int], seed: int) -> pd.DataFrame:
    k = len(pairs)
    rng = np.random.default_rng(seed)
    metrics = {
        "accuracy": rng.random((k, 2)),
        "logloss_bits": rng.random((k, 2)),
        "confusion": rng.integers(0, 5, size=(k, 2, 2)),
        "mean_probs": np.full((k, 2, 2), 0.5),
        "n_images": np.array([3, 4]),
    }
    return per_model_class_table(pairs, replicates, list(range(k)), ["a", "b"], metrics)


def test_combine_tables_orders_rows_whatever_the_order_of_the_tables():
    first = two_class_table(["none", "none"], [0, 1], seed=0)
    second = two_class_table(["0-1"], [0], seed=1)
    third = two_class_table(["0-1", "none"], [1, 2], seed=2)  # same pair or same replicate: other networks
    combined = combine_tables([first, second, third])
    assert combined.index.tolist() == list(range(10))
    assert list(zip(combined["pair"], combined["replicate"]))[::2] == [("none", 0), ("none", 1), ("none", 2),
                                                                       ("0-1", 0), ("0-1", 1)]
    assert combined["class"].tolist() == [0, 1] * 5
    for order in ([third, first, second], [second, third, first]):
        pd.testing.assert_frame_equal(combine_tables(order), combined, check_exact=True)
    rows = pd.concat([first, second, third], ignore_index=True)
    key = ["pair", "replicate", "class"]
    pd.testing.assert_frame_equal(combined.sort_values(key, ignore_index=True), rows.sort_values(key, ignore_index=True))


def test_combine_tables_orders_pairs_by_class_numbers():
    # pairs of a 12-class study, set by hand on two-class tables: only the order is checked
    tables = [two_class_table(["0-1"], [0], seed=i).assign(pair=pair) for i, pair in
              enumerate(["10-11", "2-10", "none", "2-3"])]
    assert combine_tables(tables)["pair"].unique().tolist() == ["none", "2-3", "2-10", "10-11"]


def test_combine_tables_refuses_a_network_trained_twice():
    first = two_class_table(["none", "0-1"], [0, 0], seed=0)
    again = two_class_table(["0-1"], [0], seed=1)  # (0-1, replicate 0) a second time
    with pytest.raises(ValueError, match=r"1 network\(s\) appear in more than one table, e\.g\. \['0-1/r0'\]; each "
                                         r"\(pair, replicate\) must be trained by exactly one job"):
        combine_tables([first, again])
    with pytest.raises(ValueError, match=r"2 network\(s\) appear in more than one table, "
                                         r"e\.g\. \['0-1/r0', 'none/r0'\]"):
        combine_tables([first, first])


def test_combine_tables_refuses_two_designs_and_reads_old_tables_as_independent():
    independent = two_class_table(["none"], [0], seed=0)
    paired = two_class_table(["0-1"], [0], seed=1).assign(design="paired")
    with pytest.raises(ValueError, match=r"designs \['independent', 'paired'\] \(.*\): the independent and paired "
                                         r"designs \(config key mislabel\.design\) are two experiments"):
        combine_tables([independent, paired])
    old = two_class_table(["0-1"], [0], seed=1).drop(columns="design")  # written before the key existed
    assert set(combine_tables([independent, old])["design"]) == {"independent"}
    with pytest.raises(ValueError, match="two experiments"):
        combine_tables([old, two_class_table(["none"], [0], seed=0).assign(design="paired")])
