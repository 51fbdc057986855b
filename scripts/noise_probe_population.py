"""Snakemake script of rule noise_probe_population: the noise probes on the mislabel study's baseline CNNs.

Reads the population that holds the baseline pair "none" (clean labels), rebuilds each of its
networks (nnprobe.models.keras_cnn) and probes it exactly like a ResNet of the noise study;
the penultimate features are the 64-unit dense layer.
"""

import json
from pathlib import Path

import pandas as pd
import safetensors.torch
import torch
from safetensors import safe_open

from nnprobe.data import channel_stats, load_split
from nnprobe.models import keras_cnn
from nnprobe.noise import probe_sets, probe_tables
from nnprobe.resnet import embed
from nnprobe.seeds import derive_seed
from nnprobe.workflow import logged


def main(inputs, outputs, seed: int, probe: dict, accelerator: str, log) -> None:
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    with safe_open(inputs.weights, "pt") as f:
        metadata = f.metadata()
    architecture = json.loads(metadata["architecture"])
    members = [m["name"] for m in json.loads(metadata["members"])]
    baseline = [k for k, name in enumerate(members) if name.split("/")[0] == "none"]
    if not baseline:
        raise ValueError(f"{inputs.weights} holds no baseline (pair 'none') networks; its members are {members[:5]}...")
    stacked = safetensors.torch.load_file(inputs.weights)
    device = torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")
    mean, std = channel_stats(train.images)  # as rule train_population normalised
    sets = probe_sets(probe["sets"], probe["size"], mean, std, test.images,
                      derive_seed(seed, "noise_probe_sets"), probe["lowfreq_cutoff"])
    classes = list(test.classes)
    tables: list[list[pd.DataFrame]] = [[], [], []]
    for k in baseline:
        model = keras_cnn(architecture["in_channels"], architecture["num_classes"], architecture["input_size"],
                          architecture["padding"])
        model.load_state_dict({name: p[k] for name, p in stacked.items()})
        model.to(device).eval()

        def run(images, model=model):
            logits, features = embed(model.penultimate, model.fc2, images, mean, std, device)
            return logits.numpy(), features.numpy()

        test_logits, test_features = run(test.images)
        result = probe_tables(test_logits, test_features, test.labels, classes, classes,
                              {name: run(images) for name, images in sets.items()},
                              model.fc2.weight.detach().cpu().numpy(), model.fc2.bias.detach().cpu().numpy())
        for collected, table in zip(tables, result):
            table.insert(0, "model", members[k])
            table.insert(0, "source", "keras_cnn")
            collected.append(table)
        accuracy = (test_logits.argmax(1) == test.labels).mean()
        gaussian = result[0].set_index("group")
        log.info("%s: test accuracy %.4f; dominant class of each probe set %s", members[k], accuracy,
                 gaussian.loc[list(sets), "dominant_name"].to_dict())
    for collected, path in zip(tables, (outputs.groups, outputs.distances, outputs.mst)):
        pd.concat(collected, ignore_index=True).to_parquet(path, index=False)


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input, snakemake.output, log=log, **snakemake.params)  # noqa: F821
