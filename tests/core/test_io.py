"""Files (nnprobe.core.io): the atomic JSON writer and the Parquet + CSV + Markdown tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnprobe.core.io import atomic_write, remove_stale_temporaries, write_json, write_tables, write_text


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


def test_atomic_write_flushes_the_file_and_its_folder_before_it_counts(tmp_path, monkeypatch):
    """After a crash of the machine the file holds its old or its whole new content: the data
    reaches the disk (fsync) before the rename, and the rename before the writer returns."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    target = tmp_path / "last.ckpt"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"epoch 3"))
    assert target.read_bytes() == b"epoch 3"
    assert len(synced) == 2 and synced[0].endswith(".tmp") and Path(synced[1]) == tmp_path


def test_temporaries_a_killed_process_left_are_removed_when_the_job_starts(tmp_path):
    outputs = tmp_path / "out"
    checkpoints = tmp_path / "checkpoints" / "job"
    (checkpoints / "stage").mkdir(parents=True)
    write_text("kept", outputs / "table.csv")
    stale = [outputs / ".table.csv.4242.0123abcd.tmp", checkpoints / "stage" / ".last.ckpt.77.deadbeef.tmp"]
    kept = [outputs / ".other.csv.4242.0123abcd.tmp", outputs / "notes.tmp", checkpoints / "last.ckpt"]
    for path in stale + kept:
        path.write_text("x")
    removed = remove_stale_temporaries([outputs / "table.csv", checkpoints, tmp_path / "missing" / "file"])
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
