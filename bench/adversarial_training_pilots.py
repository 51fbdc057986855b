"""Pilots of the adversarial-training regimes, tuned on a validation split, never on the test set.

Each run trains one FC100-100-10 under one regime of ``nnprobe.studies.adversarial.plan`` with
the paper config's keys (``config/config.yaml`` and the schema's defaults) and the overrides
given, on 50,000 of the prepared MNIST training images, and reports its error on the other
10,000 (a seeded split of the training set: the test set stays untouched until the full run).
One JSON line per run goes to ``--out``, the monitor log beside it.

    python bench/adversarial_training_pilots.py --regime dropout --set 'dropout=[0.1, 0.25]' --epochs 100
    python bench/adversarial_training_pilots.py --regime gradient_sign --set 'gradient_sign.epsilon=0.2'
    python bench/adversarial_training_pilots.py --summary     # the runs so far, as a Markdown table

Needs ``results/adversarial/data/train.npz`` (rule prepare_adversarial_dataset of the paper config).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import validate

from nnprobe.core.seeds import derive_seed
from nnprobe.core.splits import load_split
from nnprobe.engines.evaluation import error_rate
from nnprobe.engines.training import TrainOptions
from nnprobe.studies.adversarial.design import unit_pixels
from nnprobe.studies.adversarial.plan import REGIMES, regime_settings
from nnprobe.studies.adversarial.regimes import train_regime

REPO = Path(__file__).resolve().parents[1]
VALIDATION = 10_000


def paper_config(overrides: list[str]) -> dict:
    """The ``adversarial`` section of config/config.yaml with the schema's defaults and ``KEY=JSON`` overrides
    (KEY relative to ``adversarial.adversarial_training``; ``recipe.KEY`` for the section itself)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for item in overrides:
        key, value = item.split("=", 1)
        target = config["adversarial"] if key.startswith("recipe.") else config["adversarial"].setdefault(
            "adversarial_training", {})
        parts = key.removeprefix("recipe.").split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = json.loads(value)
    validate(config, schema=str(REPO / "config" / "schema.yaml"))
    return config["adversarial"]


def summary(path: Path) -> str:
    """The runs recorded in ``path``, one row each, errors in percent."""
    runs = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    table = pd.DataFrame({"run": runs["name"], "seed": runs["seed"], "epochs": runs["epochs"],
                          "training error (%)": (100 * runs["train_error"]).round(2),
                          "validation error (%)": (100 * runs["validation_error"]).round(2),
                          "seconds": runs["seconds"].round(0).astype(int)})
    return table.to_markdown(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", choices=REGIMES)
    parser.add_argument("--summary", action="store_true", help="print the runs of --out as a Markdown table")
    parser.add_argument("--set", action="append", default=[], help="KEY=JSON under adversarial_training")
    parser.add_argument("--epochs", type=int, help="override the regime's epochs")
    parser.add_argument("--seed", type=int, default=0, help="replicate")
    parser.add_argument("--name", default=None, help="the run's name in the output (default: regime and overrides)")
    parser.add_argument("--data", default=str(REPO / "results" / "adversarial" / "data" / "train.npz"))
    parser.add_argument("--out", default=str(REPO / "results" / "pilots" / "pilots.jsonl"))
    args = parser.parse_args()
    if args.summary:
        print(summary(Path(args.out)))
        return
    if args.regime is None:
        parser.error("--regime is required (or --summary)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)

    settings = regime_settings(paper_config(args.set), args.regime)
    if args.epochs:
        settings["epochs"] = args.epochs
    train = load_split(args.data)
    x, y = unit_pixels(train.images), torch.from_numpy(train.labels)
    order = np.random.default_rng(derive_seed(0, "pilot_validation_split")).permutation(len(train))
    fit_rows, val_rows = torch.from_numpy(order[VALIDATION:]), torch.from_numpy(order[:VALIDATION])
    name = args.name or " ".join([args.regime, *args.set])
    started = time.perf_counter()
    model, stats, rows = train_regime(args.regime, x[fit_rows], y[fit_rows], settings,
                                      TrainOptions(epochs=settings["epochs"], progress=False, name=name),
                                      seed=derive_seed(0, "pilot", args.seed), num_classes=len(train.classes))
    record = {"name": name, "regime": args.regime, "overrides": args.set, "seed": args.seed,
              "epochs": settings["epochs"], "train_error": error_rate(model, x[fit_rows], y[fit_rows]),
              "validation_error": error_rate(model, x[val_rows], y[val_rows]),
              "seconds": time.perf_counter() - started, **stats}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
    pd.DataFrame(rows).assign(name=name).to_parquet(out.parent / f"{slug}.monitor.parquet")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
