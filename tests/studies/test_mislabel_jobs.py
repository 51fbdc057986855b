"""The mislabel study's training job: packs of pairs and blocks of replicates give the same networks.

A member's seeds, data order and labels depend only on (config seed, pair, replicate), so the
union of the per-model tables of two blocks equals, bit for bit on the CPU, the table of one
job that trains every replicate; the same holds for the weights.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from nnprobe.core.naming import block_replicates, replicate_blocks
from nnprobe.core.sources import prepare_dataset
from nnprobe.engines.population import load_population
from nnprobe.studies.mislabel.jobs import train_population
from nnprobe.studies.mislabel.tables import combine_tables

TRAIN = {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "eps": 1e-7, "precision": "32-true",
         "layout": "vmap", "compile": "none"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    prepare_dataset({"source": "sklearn_digits", "test_fraction": 0.25, "seed": 0}, folder / "train.npz",
                    folder / "test.npz", folder / "manifest.json")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield folder
    torch.set_num_threads(threads)


def train(digits, folder, pairs, replicates):
    outputs = {name: folder / f"{name}.{ext}" for name, ext in
               (("weights", "safetensors"), ("metrics", "parquet"), ("history", "csv"))}
    train_population(str(digits / "train.npz"), str(digits / "test.npz"), outputs, pairs=pairs, seed=0,
                     num_classes=10, replicates=replicates, fraction=0.5, padding="same", train=TRAIN,
                     engine={"progress": False}, checkpoints=str(folder / "checkpoints"), device=torch.device("cpu"))
    return outputs


def test_blocks_of_replicates_give_the_networks_of_one_job(digits, tmp_path):
    pairs = ["0-1", "2-7"]
    whole = train(digits, tmp_path / "whole", pairs, range(4))
    blocks = [train(digits, tmp_path / block, pairs, block_replicates(block)) for block in replicate_blocks(4, 2)]
    union = combine_tables([pd.read_parquet(b["metrics"]) for b in blocks])
    one = pd.read_parquet(whole["metrics"])
    key = ["pair", "replicate", "class"]
    pd.testing.assert_frame_equal(union.sort_values(key, ignore_index=True), one.sort_values(key, ignore_index=True),
                                  check_exact=True)
    full, saved = load_population(whole["weights"])
    assert saved.extra["members"] == ["0-1/r000", "0-1/r001", "0-1/r002", "0-1/r003",
                                      "2-7/r000", "2-7/r001", "2-7/r002", "2-7/r003"]
    parts = [load_population(b["weights"]) for b in blocks]
    for name, tensor in full.params.items():
        # members are pair-major: block 1 holds r0, r1 of each pair, block 2 r2, r3
        stacked = torch.cat([parts[0][0].params[name][:2], parts[1][0].params[name][:2],
                             parts[0][0].params[name][2:], parts[1][0].params[name][2:]])
        assert torch.equal(stacked, tensor), name
    assert not (tmp_path / "whole" / "checkpoints").exists()  # removed once the outputs were written


def test_the_baseline_trains_alone_with_clean_labels(digits, tmp_path):
    outputs = train(digits, tmp_path, ["none"], [3])
    table = pd.read_parquet(outputs["metrics"])
    assert set(table["pair"]) == {"none"} and set(table["replicate"]) == {3}
    assert (table["pair_a"] == -1).all() and (table["pair_b"] == -1).all()
