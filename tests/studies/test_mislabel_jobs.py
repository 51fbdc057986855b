"""The mislabel study's training job: any packing of pairs and blocking of replicates gives the same networks.

A network's seeds, data order and labels depend only on (config seed, pair, replicate) (in the paired
design, its initialisation and data order on (config seed, replicate) alone), and on the
CPU the population computes member by member (layout ``auto`` is ``loop`` there), so a network's
weights and per-class metrics are bitwise the same whether it is trained in one job with every
replicate and pair, in blocks or alone, at a given number of threads. Each network's files are
its own (``networks/PAIR/rNNN``), so they do not even depend on the job's name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from nnprobe.core.naming import network_files, network_name
from nnprobe.core.splits import load_split
from nnprobe.core.weights import read_weights
from nnprobe.engines.population import epoch_permutations, init_population
from nnprobe.models import load_model
from nnprobe.studies.mislabel.design import mislabel_members
from nnprobe.studies.mislabel.jobs import build_member, population_architecture, train_population

TRAIN = {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "eps": 1e-7, "precision": "32-true"}
MODEL = {"architecture": "keras_cnn", "padding": "same"}


@pytest.fixture(scope="module")
def digits(cut_training_split, tmp_path_factory):
    """The prepared digits, the training split cut to its first 400 images (quick jobs, every class in them)."""
    return cut_training_split(tmp_path_factory.mktemp("digits400"), {"train": 400})


def train(digits: Path, folder: Path, pairs, replicates, *, threads: int = 1, layout: str = "auto",
          model=MODEL, recipe=TRAIN, design: str = "independent") -> dict[str, dict[str, str]]:
    """Train one job of ``pairs`` x ``replicates`` into ``folder``; its networks' files by name."""
    names = [network_name(p, r) for p in pairs for r in replicates]
    networks = {name: dict(zip(("weights", "metrics"), network_files(str(folder / "networks"), name)))
                for name in names}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_population(str(digits / "train.npz"), str(digits / "test.npz"), networks, str(folder / "history.csv"),
                         seed=0, num_classes=10, fraction=0.5, design=design, model=model, train=recipe,
                         speed={"layout": layout, "compile": "none"}, engine={"progress": False},
                         checkpoints=str(folder / "checkpoints"), device=torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    return networks


def assert_same_networks(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(pd.read_parquet(a[name]["metrics"]), pd.read_parquet(b[name]["metrics"]),
                                      check_exact=True)
        ours, theirs = read_weights(a[name]["weights"]), read_weights(b[name]["weights"])
        assert ours.tensors.keys() == theirs.tensors.keys()
        for key, tensor in ours.tensors.items():
            assert torch.equal(tensor, theirs.tensors[key]), f"{name}: {key} differs"


def test_any_packing_or_blocking_gives_the_same_networks(digits, tmp_path):
    pairs = ["0-1", "2-7"]
    whole = train(digits, tmp_path / "whole", pairs, range(2))
    blocks = {**train(digits, tmp_path / "b0", pairs, [0]), **train(digits, tmp_path / "b1", pairs, [1])}
    alone = {**train(digits, tmp_path / "a0", ["0-1"], [1]), **train(digits, tmp_path / "a1", ["2-7"], [0])}
    assert_same_networks(whole, blocks)
    assert_same_networks({name: whole[name] for name in alone}, alone)
    assert not (tmp_path / "whole" / "checkpoints").exists()  # removed once the outputs were written


def test_at_two_threads_too_but_the_thread_count_changes_the_rounding(digits, tmp_path):
    """A convolution's reduction is split among the threads, so the number of threads (the rule's
    ``threads``, 1 in this workflow) changes the last bits; the packing still changes nothing."""
    pairs = ["0-1", "2-7"]
    whole = train(digits, tmp_path / "whole", pairs, range(2), threads=2)
    blocks = {**train(digits, tmp_path / "b0", pairs, [0], threads=2),
              **train(digits, tmp_path / "b1", pairs, [1], threads=2)}
    assert_same_networks(whole, blocks)
    one = train(digits, tmp_path / "one", ["0-1"], [0], threads=1)["0-1/r000"]
    ours, theirs = read_weights(one["weights"]).tensors, read_weights(whole["0-1/r000"]["weights"]).tensors
    for key, tensor in ours.items():
        torch.testing.assert_close(tensor, theirs[key], rtol=1e-3, atol=1e-4)
    accuracy = [pd.read_parquet(m["metrics"])["accuracy"].mean() for m in (one, whole["0-1/r000"])]
    assert abs(accuracy[0] - accuracy[1]) < 0.01, accuracy


def test_each_network_file_says_what_it_is(digits, tmp_path):
    networks = train(digits, tmp_path, ["none", "3-5"], [3])
    saved = read_weights(networks["3-5/r003"]["weights"])
    assert saved.extra["network"] == "3-5/r003" and saved.extra["pair"] == "3-5" and saved.extra["replicate"] == 3
    assert saved.architecture["name"] == "keras_cnn" and saved.seeds["init_seed"] != saved.seeds["order_seed"]
    model, _ = load_model(networks["3-5/r003"]["weights"])
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert saved.config["design"] == "independent"
    table = pd.read_parquet(networks["none/r003"]["metrics"])
    assert set(table["pair"]) == {"none"} and set(table["replicate"]) == {3} and len(table) == 10
    assert set(table["design"]) == {"independent"}
    assert (table["pair_a"] == -1).all() and (table["pair_b"] == -1).all()


def test_a_job_trains_every_replicate_of_every_pair_it_names(digits, tmp_path):
    networks = {"0-1/r000": {"weights": str(tmp_path / "a"), "metrics": str(tmp_path / "b")},
                "0-2/r001": {"weights": str(tmp_path / "c"), "metrics": str(tmp_path / "d")}}
    with pytest.raises(ValueError, match="every replicate of every pair"):
        train_population(str(digits / "train.npz"), str(digits / "test.npz"), networks, str(tmp_path / "h.csv"),
                         seed=0, num_classes=10, fraction=0.5, model=MODEL, train=TRAIN,
                         speed={"layout": "auto", "compile": "none"}, engine={"progress": False},
                         checkpoints=str(tmp_path / "c"), device=torch.device("cpu"))


def test_the_deeper_cnn_trains_as_a_population(digits, tmp_path):
    """model.architecture vgg_cnn: the same job, the VGG-style network, learning the digits."""
    networks = train(digits, tmp_path, ["none"], [0, 1], model={"architecture": "vgg_cnn", "width": 8},
                     recipe={**TRAIN, "epochs": 6, "lr": 3e-3})
    saved = read_weights(networks["none/r000"]["weights"])
    assert saved.architecture == {"name": "vgg_cnn", "in_channels": 1, "num_classes": 10, "input_size": [8, 8],
                                  "width": 8}
    table = pd.read_parquet(networks["none/r001"]["metrics"])
    accuracy = (table["accuracy"] * table["n_images"]).sum() / table["n_images"].sum()
    assert accuracy > 0.6, accuracy  # far above chance (0.1)


# --------------------------------------------------------------------------- the paired design


@pytest.mark.parametrize("design", ["independent", "paired"])
def test_paired_replicates_start_from_the_same_weights_and_see_the_same_order(digits, design):
    """Paired: replicate r of two pairs and of the baseline starts from identical initial weights
    and sees the training images in the same order every epoch (only its labels differ);
    independent: neither. Built as the job builds its population (the same functions)."""
    split = load_split(digits / "train.npz")
    pairs, replicates = ["none", "0-1", "2-7"], [0, 1]
    members = mislabel_members(pairs, split.labels, 10, seed=0, replicates=replicates, design=design)
    architecture = population_architecture(MODEL, split.images.shape[1:], 10)
    population = init_population(lambda g: build_member(architecture, g), [m.init_seed for m in members])
    index = {m.name: k for k, m in enumerate(members)}
    orders = [epoch_permutations([m.order_seed for m in members], epoch, len(split.labels)) for epoch in (0, 1)]

    def same_start(a: str, b: str) -> bool:
        ours, theirs = population.member_state(index[a]), population.member_state(index[b])
        return all(torch.equal(ours[key], theirs[key]) for key in ours)

    def same_order(a: str, b: str) -> bool:
        return all(torch.equal(perm[index[a]], perm[index[b]]) for perm in orders)

    for r in replicates:
        first = network_name("0-1", r)
        for other in (network_name("2-7", r), network_name("none", r)):
            assert same_start(first, other) == (design == "paired"), (first, other)
            assert same_order(first, other) == (design == "paired"), (first, other)
        assert not (members[index[first]].labels == split.labels).all()  # its own, mislabelled labels
    # two replicates of one pair differ in both designs
    assert not same_start("0-1/r000", "0-1/r001") and not same_order("0-1/r000", "0-1/r001")


def test_paired_design_any_packing_or_blocking_gives_the_same_networks(digits, tmp_path):
    pairs = ["none", "0-1"]
    whole = train(digits, tmp_path / "whole", pairs, range(2), design="paired")
    blocks = {**train(digits, tmp_path / "b0", pairs, [0], design="paired"),
              **train(digits, tmp_path / "b1", pairs, [1], design="paired")}
    alone = train(digits, tmp_path / "alone", ["0-1"], [1], design="paired")
    assert_same_networks(whole, blocks)
    assert_same_networks({name: whole[name] for name in alone}, alone)
    # every file says which design made it; the weights record the shared seeds of a replicate
    saved = {name: read_weights(files["weights"]) for name, files in whole.items()}
    assert {w.config["design"] for w in saved.values()} == {"paired"}
    for r in range(2):
        assert saved[f"none/r{r:03d}"].seeds == saved[f"0-1/r{r:03d}"].seeds
    assert saved["0-1/r000"].seeds != saved["0-1/r001"].seeds
    tables = pd.concat([pd.read_parquet(files["metrics"]) for files in whole.values()])
    assert set(tables["design"]) == {"paired"}
    # and the design changes the networks: the independent design's baseline is another network
    independent = train(digits, tmp_path / "independent", ["none"], [0])
    theirs = read_weights(independent["none/r000"]["weights"])
    assert theirs.seeds != saved["none/r000"].seeds
    assert any(not torch.equal(tensor, theirs.tensors[key]) for key, tensor in saved["none/r000"].tensors.items())
