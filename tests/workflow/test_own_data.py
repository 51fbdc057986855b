"""Own data through the workflow: a small image folder of 3 uneven classes of non-square colour
images runs the mislabel and visualize studies end to end, says what 3 classes leave undefined,
and flags networks that ended at chance; a config that names a class the data lacks fails when
the data is checked, before any network trains."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from nnprobe.core.chance import chance_threshold

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("ant", "bee", "cow")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """ROOT/{train,test}/CLASS/*.png: 20x24 RGB images, 30, 90 and 20 training images per class."""
    root = tmp_path_factory.mktemp("own_data")
    rng = np.random.default_rng(0)
    for split, counts in (("train", (30, 90, 20)), ("test", (10, 10, 10))):
        for k, (name, count) in enumerate(zip(CLASSES, counts)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 80, (20, 24, 3), dtype=np.uint8)
                image[:, :, k] += 120  # each class a colour of its own: learnable in one epoch
                Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


def config(tmp_path: Path, root: Path, class_groups: dict, lr: float, binary_classes=("ant", "bee")) -> Path:
    """demo.yaml with the image folder as dataset and small budgets (one file: nested keys replaced, not merged)."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    demo["dataset"] = {"source": "image_folder", "root": str(root), "num_classes": 3}
    demo["model"]["padding"] = "valid"
    demo["train"].update(epochs=2, lr=lr)
    demo["mislabel"].update(replicates=2, class_groups=class_groups)
    demo["noise"]["binary_classes"] = list(binary_classes)
    vis = demo["visualize"]
    vis["feature_models"] = ["natural", "mislabel"]
    vis["train"].update(epochs=1, lr=lr)
    vis["adversarial"].update(eval_epsilons=[8], eval_images=10)
    vis["patterns"].update(steps=5, search_images=30, batch_size=4)
    vis["features"].update(seeds=1, steps=4, images=2, caricature_steps=2, inversion_steps=4)
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


@pytest.mark.slow
def test_own_image_folder_runs_and_says_what_is_undefined_or_untrained(image_folder, run_snakemake, tmp_path):
    own = config(tmp_path, image_folder, {"insects": ["ant", "bee"]}, lr=1e-12)  # lr: every network stays at chance
    proc = run_snakemake(["mislabel", "visualize", "--cores", "2", "--resources", "gpu=1"], directory=tmp_path,
                         configfiles=(own,), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-5000:]
    results = tmp_path / "results"

    # 3 classes: no pair holds neither T nor C, so confused_vs_clean is undefined, and says why
    welch = pd.read_parquet(results / "mislabel" / "tables" / "welch_confused_vs_clean.parquet")
    assert welch["t"].isna().all() and (welch["note"].str.contains("needs 4 classes or more")).all()
    log = (results / "logs" / "mislabel" / "welch_table" / "confused_vs_clean.log").read_text()
    assert "every entry is undefined" in log
    defined = pd.read_parquet(results / "mislabel" / "tables" / "welch_confused_vs_baseline.parquet")
    assert (defined["note"] == "").all()
    check = (results / "logs" / "data" / "check_dataset.log").read_text()
    assert "confused_vs_clean is undefined with 3 classes" in check and "classes are uneven: 20 to 90" in check

    # networks at chance (lr 1e-12: most stay there): flagged in the logs (with the keys to look at),
    # the tables and the figures, exactly those below the threshold
    table = pd.read_parquet(results / "mislabel" / "tables" / "per_model_class.parquet")
    table["correct"] = table["accuracy"] * table["n_images"]
    models = table.groupby(["pair", "replicate"]).agg(correct=("correct", "sum"), n=("n_images", "sum"),
                                                       at_chance=("at_chance", "first"))
    expected = models["correct"] / models["n"] < chance_threshold(3)
    assert expected.any() and (models["at_chance"] == expected).all()
    logs = "\n".join(p.read_text() for p in (results / "logs" / "mislabel" / "train_population").rglob("*.log"))
    for (pair, replicate), row in models.iterrows():
        if row["at_chance"]:
            assert re.search(rf"ended at chance.*'{pair}/r{replicate:03d}'.*train\.lr", logs), (pair, replicate)
    networks = pd.read_parquet(results / "visualize" / "tables" / "models.parquet").set_index("model")
    assert (networks["at_chance"] == (networks["clean_accuracy"] < chance_threshold(3))).all()
    for name in networks.index[networks["at_chance"]]:
        text = (results / "logs" / "visualize" / "visualize_train" / f"{name}.log").read_text()
        assert "ended at chance" in text and "visualize.train.lr" in text, name
    for figure in ("mislabel/figures/accuracy_by_pair.png", "visualize/figures/robustness.png",
                   "visualize/figures/class_patterns.png", "mislabel/figures/t_heatmap_confused_vs_clean.png"):
        assert (results / figure).stat().st_size > 5000, figure
    assert not (results / "checkpoints").exists()


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory) -> Path:
    """ROOT/{train,test}/CLASS/*: 5 classes of 30x22 grey images, one class three times larger, JPEG and PNG mixed."""
    root = tmp_path_factory.mktemp("five_classes")
    rng = np.random.default_rng(1)
    for split, count in (("train", 12), ("test", 4)):
        for k, name in enumerate(("ant", "bee", "cat", "dog", "emu")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count * (3 if name == "cat" else 1)):
                image = Image.fromarray(rng.integers(0, 60, (22, 30), dtype=np.uint8) + 40 * k, mode="L")
                image.save(folder / (f"{i:03d}.jpg" if i % 2 else f"{i:03d}.png"))
    return root


@pytest.mark.slow
def test_every_foreign_class_key_stops_the_run_before_any_network_trains(five_classes, run_snakemake, tmp_path):
    """The digits' demo config with only the dataset keys pointed at an own folder of 5 classes:
    one run prepares the data and stops, naming every key that does not fit (a wrong class
    count, the digits' class groups, the digits' binary classes), and trains nothing; run again,
    it stops when the workflow is parsed, with the same list."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    demo["dataset"] = {"source": "image_folder", "root": str(five_classes), "num_classes": 10}
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump(demo))
    targets = ["mislabel", "noise", "visualize", "--cores", "2", "--resources", "gpu=1"]
    proc = run_snakemake(targets, directory=tmp_path, configfiles=(own,), timeout=600)
    assert proc.returncode != 0, proc.stdout[-3000:]
    log = (tmp_path / "results" / "logs" / "data" / "check_dataset.log").read_text()
    bad_keys = ["dataset.num_classes is 10", "mislabel.class_groups.round names ['0', '6', '8', '9']",
                "mislabel.class_groups.straight names ['1', '4', '7']", "noise.binary_classes names ['3', '8']"]
    for key in bad_keys:
        assert key in log, (key, log[-3000:])
    assert "4 problems" in log and "['ant', 'bee', 'cat', 'dog', 'emu']" in log
    trained = [p for p in (tmp_path / "results" / "logs").rglob("*.log")
               if any(part in p.parts for part in ("train_population", "noise_train", "visualize_train"))]
    assert not trained, trained

    again = run_snakemake(["-n", *targets], directory=tmp_path, configfiles=(own,))
    assert again.returncode != 0 and "Building DAG" not in again.stdout, again.stdout[-3000:]
    assert "does not fit the data prepared in results/data/manifest.json (4 problems)" in again.stdout
    assert all(key in again.stdout for key in bad_keys), again.stdout[-3000:]

    # fixed as README says (num_classes auto, the groups and binary classes of this data): it plans to train
    demo["dataset"].pop("num_classes")
    demo["mislabel"]["class_groups"] = {"winged": ["bee"]}
    demo["noise"]["binary_classes"] = ["cat", "dog"]
    own.write_text(yaml.safe_dump(demo))
    fixed = run_snakemake(["-n", *targets], directory=tmp_path, configfiles=(own,))
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert "train_population__none__r0_3" in fixed.stdout and "rule check_dataset:" in fixed.stdout
