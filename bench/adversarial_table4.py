"""Table 4 of Szegedy et al. (2013) by experiment: which protocol choice moves its cells (issue 26, item 2).

Every network is trained with exactly the workflow's recipe (config/config.yaml's adversarial
section with the schema's defaults; :func:`~nnprobe.studies.adversarial.experiments.train_fc`)
and attacked with exactly its paper attack (:func:`~nnprobe.studies.adversarial.attacks.attack_record`
with the nearest-target extra off) on ``--images`` of the workflow's 1,000 attacked test images
(a seeded subset of them, their workflow targets), so that only the named choice differs:

* ``seed/NET/rK``: NET (``fc100_p1``, ``fc123_p1``, ``fc100_p2``) with replicate K's seed
  (K = 0: the workflow's own network);
* ``halves/NET/r0``: NET in ``fc100_first``, ``fc123_first``, ``fc100_last``, trained on the
  first / last 30,000 training images of the file, with the seeds of the workflow's network;
* ``order/fc123_p1/rK``: FC123-456-10 on P1 with its own initialisation (replicate K) and
  FC100-100-10 (P1)'s data order (replicate K's order seed).

One process per model (``model TAG``: train unless its weights exist, attack unless its attack
exists; weights and attacks under ``--work``); ``tables EXPERIMENT --to FOLDER`` writes the
per-model records, the transfer cells and the summaries.

    python bench/adversarial_table4.py model seed/fc100_p1/r0
    python bench/adversarial_table4.py tables seed --to docs/runs/2026-12-07-adversarial-table4-seeds
    python bench/adversarial_table4.py tables order --matched --to docs/runs/2026-12-07-adversarial-table4-order
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

from nnprobe.core.seeds import derive_seed, seeded_subset
from nnprobe.core.splits import load_split
from nnprobe.core.weights import save_weights
from nnprobe.engines.evaluation import error_rate
from nnprobe.models import load_model
from nnprobe.studies.adversarial.attacks import attack_record, random_wrong_labels
from nnprobe.studies.adversarial.design import p1_p2_split, unit_pixels
from nnprobe.studies.adversarial.experiments import (
    file_order_halves,
    pair_summary,
    replicate_seed,
    train_fc,
    transfer_cells,
)
from nnprobe.studies.adversarial.records import adversarial_rows
from nnprobe.studies.adversarial.zoo import zoo_architecture

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/work/main/results/adversarial/data")
NETS = {"fc100_p1": ("FC100-100-10", "p1"), "fc123_p1": ("FC123-456-10", "p1"), "fc100_p2": ("FC100-100-10", "p2"),
        "fc100_first": ("FC100-100-10", "first"), "fc123_first": ("FC123-456-10", "first"),
        "fc100_last": ("FC100-100-10", "last")}
DISPLAY = {"fc100_p1": "FC100-100-10 (P1)", "fc123_p1": "FC123-456-10 (P1)", "fc100_p2": "FC100-100-10' (P2)",
           "fc100_first": "FC100-100-10 (first)", "fc123_first": "FC123-456-10 (first)",
           "fc100_last": "FC100-100-10' (last)"}
EXPERIMENTS = {
    "seed": [f"seed/{net}/r{k}" for k in range(3) for net in ("fc100_p1", "fc123_p1", "fc100_p2")],
    "halves": ["halves/fc100_first/r0", "halves/fc123_first/r0", "halves/fc100_last/r0"],
    "order": [f"{e}/{net}/r{k}" for k in range(3) for e, net in
              (("seed", "fc100_p1"), ("order", "fc123_p1"), ("seed", "fc123_p1"), ("seed", "fc100_p2"))],
}


def paper_config() -> dict:
    """config/config.yaml validated against the schema (which fills the defaults)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, schema=str(REPO / "config" / "schema.yaml"))
    return config


def parse(tag: str) -> tuple[str, str, int]:
    experiment, net, replicate = tag.split("/")
    if experiment not in ("seed", "halves", "order") or net not in NETS or not replicate.startswith("r"):
        raise ValueError(f"tag must be seed|halves|order/NET/rK with NET in {sorted(NETS)}, got {tag!r}")
    return experiment, net, int(replicate[1:])


def seeds_of(tag: str, config_seed: int) -> dict[str, int]:
    """The initialisation and data-order seeds of a tag (the workflow's order is init + 2)."""
    experiment, net, k = parse(tag)
    name, trainset = NETS[net]
    # The halves in the file's order keep the seeds of the workflow's networks on P1 / P2.
    seed_set = {"first": "p1", "last": "p2"}.get(trainset, trainset)
    init = replicate_seed(config_seed, seed_set, name, k)
    order = init + 2
    if experiment == "order":  # FC100-100-10 (P1)'s data order, replicate k
        order = replicate_seed(config_seed, "p1", "FC100-100-10", k) + 2
    return {"init": init, "order": order}


def attacked(config: dict, images: int):
    """The attacked test images: a seeded subset of the workflow's 1,000 (rule attack_zoo_model), with
    their workflow targets."""
    test = load_split(str(DATA / "test.npz"))
    seed, attack = config["seed"], config["adversarial"]["attack"]
    index = seeded_subset(len(test), attack["examples"], derive_seed(seed, "attacked_subset"))
    target = random_wrong_labels(test.labels[index], len(test.classes), derive_seed(seed, "attack_target"))
    keep = seeded_subset(len(index), images, derive_seed(seed, "issue26_table4_subset"))
    return test, index[keep], target[keep]


def model_job(tag: str, work: Path, images: int) -> None:
    config = paper_config()
    adv = config["adversarial"]
    experiment, net, _ = parse(tag)
    name, trainset = NETS[net]
    base = work / tag
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, metrics_path, attack_path = (base.with_suffix(s) for s in (".safetensors", ".json", ".attack.npz"))
    train = load_split(str(DATA / "train.npz"))
    test, index, target = attacked(config, images)
    x, y = unit_pixels(train.images), torch.from_numpy(train.labels)
    xt, yt = unit_pixels(test.images), torch.from_numpy(test.labels)
    p1, p2 = p1_p2_split(len(train), derive_seed(config["seed"], "p1_p2_split"))
    first, last = file_order_halves(len(train))
    rows = torch.from_numpy({"p1": p1, "p2": p2, "first": first, "last": last}[trainset])
    seeds = seeds_of(tag, config["seed"])
    if not weights.exists():
        started = time.perf_counter()
        model = train_fc(name, x[rows], y[rows], adv, init_seed=seeds["init"], order_seed=seeds["order"],
                         num_classes=len(train.classes))
        seconds = time.perf_counter() - started
        metrics = {"tag": tag, "model": name, "trainset": trainset, "seeds": seeds, "train_seconds": seconds,
                   "train_error": error_rate(model, x[rows], y[rows]), "test_error": error_rate(model, xt, yt),
                   "p1_error": error_rate(model, x[torch.from_numpy(p1)], y[torch.from_numpy(p1)]),
                   "p2_error": error_rate(model, x[torch.from_numpy(p2)], y[torch.from_numpy(p2)]),
                   "first_error": error_rate(model, x[torch.from_numpy(first)], y[torch.from_numpy(first)]),
                   "last_error": error_rate(model, x[torch.from_numpy(last)], y[torch.from_numpy(last)])}
        save_weights(weights, model.state_dict(), architecture=zoo_architecture(model),
                     config={"model": name, "trainset": trainset, "tag": tag}, seeds=seeds, extra={"metrics": metrics})
        metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
        logging.info("%s trained: %s", tag, metrics)
    if not attack_path.exists():
        model, _ = load_model(weights)
        settings = {**adv["attack"], "nearest_target": {**adv["attack"]["nearest_target"], "enabled": False}}
        record = attack_record(model, unit_pixels(test.images[index]), torch.from_numpy(test.labels[index]),
                               torch.from_numpy(target), settings)
        np.savez_compressed(attack_path, index=index, label=test.labels[index], **record)
        metrics = json.loads(metrics_path.read_text())
        kept = record["distortion"][adversarial_rows(record)]
        metrics.update({"attack_seconds": float(record["seconds"]), "attacked": int(len(index)),
                        "already_wrong": int((~record["correct"]).sum()),
                        "failed": int((record["correct"] & ~record["success"]).sum()),
                        "mean_distortion": float(kept.mean())})
        metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
        logging.info("%s attacked: %d images, mean distortion %.4f, %.0f s", tag, len(index), kept.mean(),
                     record["seconds"])


PAPER = {("FC100-100-10 (P1)", "as made"): (100, 26.2, 5.9), ("FC100-100-10 (P1)", "magnified to 0.1"): (100, 98, 43),
         ("FC123-456-10 (P1)", "as made"): (6.25, 100, 5.1), ("FC123-456-10 (P1)", "magnified to 0.1"): (96, 100, 22),
         ("FC100-100-10' (P2)", "as made"): (8.2, 8.2, 100), ("FC100-100-10' (P2)", "magnified to 0.1"): (27, 50, 100)}
"""Szegedy et al. (2013), Table 4 (%): rows' examples on FC100-100-10 (P1), FC123-456-10 (P1), FC100-100-10' (P2)."""


def layout(summary: pd.DataFrame) -> str:
    """The summary as Table 4: a row per (source network, variant), a column per network; a cell is
    the mean over model pairs +- their sd [min, max] (pairs); a network on its own examples adds
    ``own`` (each model on its own examples) before the other seeds of the same network."""
    nets = list(dict.fromkeys(summary["model"]))
    lines = ["| examples | variant | " + " | ".join(nets) + " | paper (P1, P1, P2) |", "|---" * (len(nets) + 3) + "|"]
    for (src, variant), group in summary.groupby(["source", "variant"], sort=False):
        cells = []
        for net in nets:
            row = group[group["model"] == net]
            if row.empty:
                cells.append("")
                continue
            r = row.iloc[0]
            text = ""
            if pd.notna(r.get("own", np.nan)):
                text = f"own {r['own']:.1f}" + (f" [{r['own_min']:.1f}, {r['own_max']:.1f}]"
                                                 if r["own_min"] != r["own_max"] else "") + "; "
            if r["pairs"]:
                sd = "" if pd.isna(r["sd"]) else f" +- {r['sd']:.1f}"
                text += f"{r['mean']:.1f}{sd} [{r['min']:.1f}, {r['max']:.1f}] ({int(r['pairs'])})"
            cells.append(text.rstrip("; "))
        paper = PAPER.get((src, variant))
        lines.append(f"| {src} | {variant} | " + " | ".join(cells) + " | "
                     + (" / ".join(f"{v:g}" for v in paper) if paper else "") + " |")
    return "\n".join(lines)


def restrict(record: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """An attack record on the images ``keep`` (a subset of its ``index``), in the order of ``keep``."""
    pos = {int(i): p for p, i in enumerate(record["index"])}
    rows = np.array([pos[int(i)] for i in keep])
    return {k: (v[rows] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(record["index"]) else v)
            for k, v in record.items()}


def tables(experiment: str, work: Path, to: Path, tags: list[str] | None = None, matched: bool = False) -> None:
    """Transfer cells of every pair of ``tags`` on the images every one of them was attacked on
    (models attacked on 1,000 images are restricted to the 500 of the others: each image's
    attack is its own problem, so the restriction is what a 500-image attack gives). ``matched``
    keeps only the pairs of the same replicate (the order experiment: FC100-100-10 (P1) rK with
    the FC123-456-10 rK that shares its data order, and with the one that does not)."""
    tags = tags or EXPERIMENTS[experiment]
    tags = [t for t in tags if (work / t).with_suffix(".attack.npz").exists()]
    if not tags:
        raise SystemExit(f"no model of experiment {experiment!r} has been attacked yet under {work}")
    models, attacks, records, per_image = {}, {}, [], []
    for tag in tags:
        model, _ = load_model((work / tag).with_suffix(".safetensors"))
        models[tag] = model
        with np.load((work / tag).with_suffix(".attack.npz")) as npz:
            attacks[tag] = {k: npz[k] for k in npz.files}
        records.append(json.loads((work / tag).with_suffix(".json").read_text()))
        a = attacks[tag]
        per_image.append(pd.DataFrame({"model": tag, "index": a["index"], "label": a["label"], "target": a["target"],
                                       "correct": a["correct"], "success": a["success"],
                                       "distortion": a["distortion"], "c": a["c"]}))
    common = np.sort(list(set.intersection(*(set(a["index"].tolist()) for a in attacks.values()))))
    attacks = {t: restrict(a, common) for t, a in attacks.items()}
    clean = unit_pixels(load_split(str(DATA / "test.npz")).images[common])
    cells = transfer_cells(models, attacks, clean)
    if matched:
        cells = cells[[parse(a)[2] == parse(b)[2] for a, b in zip(cells["source"], cells["model"])]]
    network_of = {t: DISPLAY[parse(t)[1]] + (" same order" if parse(t)[0] == "order" else "") for t in tags}
    summary = pair_summary(cells, network_of)
    to.mkdir(parents=True, exist_ok=True)
    (to / "per_model").mkdir(exist_ok=True)
    pd.DataFrame(records).to_csv(to / "per_model" / "models.csv", index=False)
    pd.concat(per_image).to_parquet(to / "per_model" / "attacks.parquet", index=False)
    cells.to_csv(to / "per_model" / "cells.csv", index=False)
    summary.to_csv(to / "summary.csv", index=False)
    text = f"{len(common)} attacked test images common to {len(tags)} models\n\n" + summary.to_markdown(
        index=False, floatfmt=".1f")
    (to / "summary.md").write_text(text + "\n")
    (to / "table4.md").write_text(f"{len(common)} attacked test images common to {len(tags)} models; error (%) "
                                  "of the row's examples on the column's network: mean +- sd [min, max] over "
                                  "(source model, target model) pairs (number of pairs)\n\n" + layout(summary) + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("model")
    one.add_argument("tag")
    tab = sub.add_parser("tables")
    tab.add_argument("experiment", choices=sorted(EXPERIMENTS))
    tab.add_argument("--to", required=True)
    tab.add_argument("--tags", nargs="*")
    tab.add_argument("--matched", action="store_true", help="only pairs of the same replicate")
    for p in (one, tab):
        p.add_argument("--work", default=str(REPO / "results" / "issue26" / "t4"))
    one.add_argument("--images", type=int, default=1000, help="attacked test images (of the workflow's 1,000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    if args.command == "model":
        model_job(args.tag, Path(args.work), args.images)
    else:
        tables(args.experiment, Path(args.work), Path(args.to), args.tags, args.matched)


if __name__ == "__main__":
    main()
