"""Files (nnprobe.core.io): the atomic JSON writer and the Parquet + CSV + Markdown tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnprobe.core.io import write_json, write_tables


def test_write_json_atomic(tmp_path):
    path = tmp_path / "sub" / "m.json"
    write_json({"a": np.float64(0.5), "b": np.arange(2), "p": Path("x")}, path)
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1], "p": "x"}
    assert os.listdir(path.parent) == ["m.json"]
    with pytest.raises(TypeError):
        write_json({"bad": object()}, path)
    assert os.listdir(path.parent) == ["m.json"]


def test_write_tables_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"target": np.arange(6) % 3, "other": np.arange(6) // 3, "comparison": "confused_vs_clean",
                          "t": rng.normal(size=6), "q_bh": rng.random(6), "significant": rng.random(6) < 0.5})
    stem = tmp_path / "new" / "dir" / "welch.confused_vs_clean"
    table.loc[2, "t"] = np.nan  # a degenerate test: NaN survives every format
    write_tables(table, stem)
    files = {p.name for p in stem.parent.iterdir()}
    assert files == {f"{stem.name}.{s}" for s in ("parquet", "csv", "md")}
    back = pd.read_parquet(stem.with_name(stem.name + ".parquet"))
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    csv = pd.read_csv(stem.with_name(stem.name + ".csv"))
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    md = stem.with_name(stem.name + ".md").read_text()
    assert md.lstrip("| ").startswith("target") and md.count("\n") == len(table) + 2
