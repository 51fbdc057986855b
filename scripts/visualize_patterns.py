"""Snakemake script of rule visualize_patterns: class-wise predictive patterns (Zhao et al. 2021)
of one network of the visualize study.

Canvases come from the training set as the network saw it (for the backdoor network: with its
poisoned images, labelled as it was trained); masks are searched on clean training images and
the patterns' predictive power is measured on the test split, so search and evaluation images
are disjoint.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nnprobe.data import load_split
from nnprobe.patterns import (badnets_poison, choose_canvases, class_patterns, predictive_power, region_overlap,
                              to_unit, top_k_mask, trigger_region)
from nnprobe.seeds import derive_seed
from nnprobe.topdown import load_model
from nnprobe.workflow import logged


def main(inputs, outputs, name: str, seed: int, vis: dict, threads: int, log) -> None:
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    model, _ = load_model(inputs.weights, device)
    num_classes = len(train.classes)
    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    bd, cfg = vis["backdoor"], vis["patterns"]
    poisoned = torch.zeros(len(labels), dtype=torch.bool, device=device)
    seen_images, seen_labels = images, labels
    if name == "backdoor":  # the training set exactly as rule visualize_train poisoned it
        seen_images, seen_labels, poisoned = badnets_poison(
            images, labels, fraction=bd["poison_fraction"], target=bd["target_class"], size=bd["trigger_size"],
            margin=bd["trigger_margin"], seed=derive_seed(seed, "visualize_train", "backdoor", "poison"))
    canvas_index = choose_canvases(model, seen_images, seen_labels, num_classes)
    canvases = to_unit(seen_images[canvas_index])
    clean = torch.nonzero(~poisoned).flatten()[: cfg["search_images"]]
    started = time.perf_counter()
    masks, history = class_patterns(
        model, canvases, images[clean], labels[clean], steps=cfg["steps"], lr=cfg["lr"], l1=cfg["l1"],
        batch_size=cfg["batch_size"], seed=derive_seed(seed, "visualize_patterns", name), progress=vis["progress"])
    seconds = time.perf_counter() - started
    binary = top_k_mask(masks, cfg["fraction"])
    test_images = torch.from_numpy(test.images).to(device)
    test_labels = torch.from_numpy(test.labels).to(device)
    power = predictive_power(model, canvases, binary, test_images, test_labels)
    rows, cols = trigger_region(*train.images.shape[-2:], bd["trigger_size"], bd["trigger_margin"])
    precision, recall = region_overlap(binary, rows, cols)
    table = pd.DataFrame({
        "model": name,
        "class": np.arange(num_classes),
        "class_name": list(train.classes),
        "predictive_power": power.numpy(),
        "pattern_pixels": binary.flatten(1).sum(1).cpu().numpy().astype(int),
        "mask_mean": masks.flatten(1).mean(1).cpu().numpy(),
        "in_trigger_region": precision.cpu().numpy(),
        "trigger_region_covered": recall.cpu().numpy(),
        "canvas_index": canvas_index.cpu().numpy(),
        "canvas_poisoned": poisoned[canvas_index].cpu().numpy(),
        "backdoor_target": np.arange(num_classes) == bd["target_class"],
        "search_images": len(clean),
        "eval_images_per_class": [int((test_labels != c).sum()) for c in range(num_classes)],
        "seconds": seconds,
    })
    table.to_parquet(outputs.table, index=False)
    log.info("masks in %.1f s; final %s", seconds, history[-1])
    for row in table.itertuples():
        log.info("class %s: predictive power %.3f, %.0f%% of the pattern in the trigger region%s", row.class_name,
                 row.predictive_power, 100 * row.in_trigger_region, " (canvas poisoned)" if row.canvas_poisoned else "")
    with open(outputs.arrays, "wb") as stream:
        np.savez(stream, canvases=canvases.cpu().numpy(), masks=masks.cpu().numpy(), patterns=binary.cpu().numpy(),
                 predictive_power=power.numpy(), classes=np.array(train.classes),
                 trigger=np.array([rows.start, rows.stop, cols.start, cols.stop]), target=np.array(bd["target_class"]))


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input, snakemake.output, snakemake.wildcards.model, threads=snakemake.threads, log=log,  # noqa: F821
             **snakemake.params)  # noqa: F821
