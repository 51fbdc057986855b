"""Snakemake script of rule visualize_train: train one network of the visualize study and evaluate it.

natural: the standard CNN on clean data; backdoor: the same on BadNets-poisoned data;
adversarial: the same with PGD adversarial training; topdown: the coarse-to-fine network on
clean data. Every network is evaluated on the test split: clean accuracy, the BadNets trigger's
success rate (a control for all but the backdoor network) and PGD robust accuracy per epsilon.
"""

import json
import time
from pathlib import Path

import pandas as pd
import safetensors.torch
import torch

from nnprobe.data import channel_stats, load_split
from nnprobe.models import count_parameters
from nnprobe.patterns import PGD, accuracy, badnets_poison, robust_accuracy, train_classifier, trigger_success
from nnprobe.seeds import derive_seed
from nnprobe.topdown import Normalized, standard_cnn, topdown_net
from nnprobe.workflow import logged


def main(inputs, outputs, name: str, seed: int, vis: dict, threads: int, log) -> None:
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    channels, num_classes = train.images.shape[1], len(train.classes)
    mean, std = channel_stats(train.images)
    images = torch.from_numpy(train.images).to(device)
    labels = torch.from_numpy(train.labels).to(device)
    bd, adv, cfg = vis["backdoor"], vis["adversarial"], vis["train"]
    if bd["target_class"] >= num_classes:
        raise ValueError(f"config key visualize.backdoor.target_class is {bd['target_class']}, but the data has "
                         f"{num_classes} classes; choose a class in [0, {num_classes - 1}]")
    if name == "backdoor":
        images, labels, poisoned = badnets_poison(
            images, labels, fraction=bd["poison_fraction"], target=bd["target_class"], size=bd["trigger_size"],
            margin=bd["trigger_margin"], seed=derive_seed(seed, "visualize_train", "backdoor", "poison"))
        log.info("BadNets: %d of %d training images carry the trigger, relabelled %s", int(poisoned.sum()),
                 len(labels), train.classes[bd["target_class"]])
    architecture = "topdown" if name == "topdown" else "standard"
    generator = torch.Generator().manual_seed(derive_seed(seed, "visualize_train", name, "init"))
    build = topdown_net if architecture == "topdown" else standard_cnn
    model = Normalized(build(channels, num_classes, cfg["width"], generator), mean, std).to(device)
    attack = None
    if name == "adversarial":
        attack = PGD(adv["train_epsilon"] / 255, adv["train_steps"], adv["train_step_size"] / 255)
    log.info("%s: %s, %d parameters, %d training images %s on %s", name, type(model.net).__name__,
             count_parameters(model), len(labels), tuple(images.shape[1:]), device)
    started = time.perf_counter()
    history = train_classifier(
        model, images, labels, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        weight_decay=cfg["weight_decay"], flip=cfg["flip"], adversarial=attack,
        seed=derive_seed(seed, "visualize_train", name, "order"), progress=vis["progress"], log=log.info)
    train_seconds = time.perf_counter() - started
    pd.DataFrame(history).to_csv(outputs.history, index=False)

    test_images = torch.from_numpy(test.images).to(device)
    test_labels = torch.from_numpy(test.labels).to(device)
    rows = [{"metric": "clean_accuracy", "epsilon": 0.0, "value": accuracy(model, test_images, test_labels),
             "n_images": len(test_labels)}]
    success = trigger_success(model, test_images, test_labels, bd["target_class"], bd["trigger_size"], bd["trigger_margin"])
    rows.append({"metric": "trigger_success", "epsilon": 0.0, "value": success,
                 "n_images": int((test_labels != bd["target_class"]).sum())})
    n_attacked = adv["eval_images"] or len(test_labels)
    for eps in adv["eval_epsilons"]:
        value = robust_accuracy(model, test_images[:n_attacked], test_labels[:n_attacked],
                                PGD.madry(eps / 255, adv["eval_steps"]),
                                derive_seed(seed, "visualize_train", name, "pgd", eps))
        rows.append({"metric": "robust_accuracy", "epsilon": float(eps), "value": value,
                     "n_images": min(n_attacked, len(test_labels))})
    eval_seconds = time.perf_counter() - started - train_seconds
    metrics = pd.DataFrame(rows).assign(model=name, architecture=architecture, parameters=count_parameters(model),
                                        train_seconds=train_seconds, eval_seconds=eval_seconds)
    metrics.to_parquet(outputs.metrics, index=False)
    for row in rows:
        log.info("%s (eps %g/255): %.4f", row["metric"], row["epsilon"], row["value"])
    log.info("trained in %.1f s, evaluated in %.1f s", train_seconds, eval_seconds)

    metadata = {"model": name, "architecture": json.dumps({
        "name": architecture, "in_channels": channels, "num_classes": num_classes, "width": cfg["width"],
        "mean": mean.tolist(), "std": std.tolist(), "classes": list(train.classes)})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, outputs.weights, metadata)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input, snakemake.output, snakemake.wildcards.model, threads=snakemake.threads, log=log,  # noqa: F821
             **snakemake.params)  # noqa: F821
