"""Snakemake script of rule noise_probe: every probe of one ResNet-18 of the noise study.

The test images of each class and every probe set go through the network; the predicted
classes, confidences, OOD AUROC, bias split, feature-space clutter, class-mean distances and
minimum spanning trees are written as three tidy tables (nnprobe.noise.probe_tables).
"""

import json
from pathlib import Path

import safetensors.torch
import torch
from safetensors import safe_open

from nnprobe.data import channel_stats, load_split
from nnprobe.noise import probe_sets, probe_tables
from nnprobe.resnet import embed, resnet18_cifar
from nnprobe.seeds import derive_seed
from nnprobe.workflow import logged


def main(inputs, outputs, task: str, seed_index: int, seed: int, probe: dict, accelerator: str, log) -> None:
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    with safe_open(inputs.weights, "pt") as f:
        metadata = f.metadata()
    architecture, metrics = json.loads(metadata["architecture"]), json.loads(metadata["metrics"])
    model = resnet18_cifar(architecture["num_classes"], architecture["in_channels"], architecture["width"])
    model.load_state_dict(safetensors.torch.load_file(inputs.weights))
    device = torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    data_mean, data_std = channel_stats(train.images)  # the probe sets follow the whole training set
    sets = probe_sets(probe["sets"], probe["size"], data_mean, data_std, test.images,
                      derive_seed(seed, "noise_probe_sets"), probe["lowfreq_cutoff"])

    def run(images):
        logits, features = embed(model.features, model.fc, images, metrics["mean"], metrics["std"], device)
        return logits.numpy(), features.numpy()

    test_logits, test_features = run(test.images)
    classes = list(test.classes)
    in_distribution = [classes.index(c) for c in metrics["classes"]] if task == "binary" else None
    groups, distances, mst = probe_tables(
        test_logits, test_features, test.labels, classes, metrics["classes"],
        {name: run(images) for name, images in sets.items()},
        model.fc.weight.detach().cpu().numpy(), model.fc.bias.detach().cpu().numpy(), in_distribution,
    )
    source = "resnet18_binary" if task == "binary" else "resnet18"
    for table, path in ((groups, outputs.groups), (distances, outputs.distances), (mst, outputs.mst)):
        table.insert(0, "model", f"seed{seed_index}")
        table.insert(0, "source", source)
        table.to_parquet(path, index=False)
    noise = groups[groups["kind"] == "noise"]
    for row in noise.itertuples():
        log.info("%s: dominant %s (%.3f), mean confidence %.3f, AUROC %.3f, bias argmax %s", row.group,
                 row.dominant_name, row.dominant_fraction, row.mean_confidence, row.auroc,
                 metrics["classes"][row.bias_argmax])


if "snakemake" in globals():
    torch.set_num_threads(snakemake.threads)  # noqa: F821  (the rule's threads, 1 by default)
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(
            snakemake.input,  # noqa: F821
            snakemake.output,  # noqa: F821
            snakemake.wildcards.task,  # noqa: F821
            int(snakemake.wildcards.seed),  # noqa: F821
            log=log,
            **snakemake.params,  # noqa: F821
        )
