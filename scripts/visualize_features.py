"""Snakemake script of rule visualize_features: activation maximization, caricatures and
inversions of one model, saved as arrays for the figure rule."""

import json
import time
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from nnprobe.data import channel_stats, load_split
from nnprobe.models import keras_cnn
from nnprobe.seeds import derive_seed
from nnprobe.topdown import Normalized, load_model
from nnprobe.visualize import Regularizers, activation_maximization, caricature, colour_matrix, invert
from nnprobe.workflow import logged

KERAS_LAYERS = ("conv1", "conv2", "conv3", "fc1")


def load_mislabel_baseline(path: str, train_images: np.ndarray, device: torch.device) -> Normalized:
    """Member 0 of the mislabel study's first population (the baseline "none", replicate 0),
    standardised as it was trained (the training data's channel mean and std)."""
    with safetensors.safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    arch = json.loads(metadata["architecture"])
    members = json.loads(metadata["members"])
    if not members or not members[0]["name"].startswith("none"):
        raise ValueError(f"{path}: member 0 is {members[:1]}, expected the baseline population 'none'; "
                         "the visualize study reads the first mislabel pack, which starts with 'none'")
    net = keras_cnn(arch["in_channels"], arch["num_classes"], arch["input_size"], arch["padding"])
    stacked = safetensors.torch.load_file(path)
    net.load_state_dict({name: tensor[0] for name, tensor in stacked.items()})
    mean, std = channel_stats(train_images)
    return Normalized(net, mean, std, layers=KERAS_LAYERS).to(device).eval()


def pick_images(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first correctly classified test image of classes 0, 1, ... (cycling; among the first 2,000)."""
    images, labels = images[:2000], labels[:2000]
    with torch.no_grad():
        correct = model(images.float() / 255).argmax(1) == labels
    num_classes = int(labels.max()) + 1
    picks: list[int] = []
    used: set[int] = set()
    for i in range(count):
        c = i % num_classes
        candidates = [j for j in torch.nonzero((labels == c) & correct).flatten().tolist() if j not in used]
        if candidates:
            picks.append(candidates[0])
            used.add(candidates[0])
    return torch.tensor(picks, dtype=torch.long)


def main(inputs, output: str, name: str, seed: int, vis: dict, threads: int, log) -> None:
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = load_split(Path(inputs.train)), load_split(Path(inputs.test))
    if name == "mislabel":
        model = load_mislabel_baseline(inputs.weights, train.images, device)
    else:
        model, _ = load_model(inputs.weights, device)
    layers = list(model.layers)
    num_classes = len(train.classes)
    shape = train.images.shape[1:]
    reg_cfg, feat = vis["regularizers"], vis["features"]
    reg = Regularizers(**reg_cfg)
    colour = colour_matrix(train.images)
    progress = vis["progress"]
    log.info("%s: layers %s, regularizers %s", name, layers, reg)

    started = time.perf_counter()
    am, am_logits, am_history = activation_maximization(
        model, num_classes, shape, seeds=feat["seeds"], steps=feat["steps"], lr=feat["lr"], reg=reg,
        seed=derive_seed(seed, "visualize_features", name, "am"), colour=colour, l2=feat["l2"], device=device,
        progress=progress)
    am_probs = torch.softmax(am_logits, -1)
    log.info("activation maximization: %.1f s, objective %.2f -> %.2f, mean softmax of the target class %.3f",
             time.perf_counter() - started, am_history[0], am_history[-1],
             am_probs[torch.arange(num_classes), :, torch.arange(num_classes)].mean())

    test_images = torch.from_numpy(test.images).to(device)
    test_labels = torch.from_numpy(test.labels).to(device)
    picks = pick_images(model, test_images, test_labels, feat["images"])
    originals = test_images[picks].float() / 255

    started = time.perf_counter()
    car, car_objective = caricature(
        model, originals, layers, target=feat["caricature_target"], channel=feat["caricature_channel"],
        steps=feat["caricature_steps"], lr=feat["lr"], reg=reg, seed=derive_seed(seed, "visualize_features", name, "caricature"),
        colour=colour, progress=progress)
    log.info("caricatures: %.1f s, objective per layer before %s after %s", time.perf_counter() - started,
             car_objective[0].mean(1).cpu().numpy().round(3), car_objective[1].mean(1).cpu().numpy().round(3))

    started = time.perf_counter()
    inv, inv_error = invert(
        model, originals, layers, steps=feat["inversion_steps"], lr=feat["lr"], reg=reg,
        seed=derive_seed(seed, "visualize_features", name, "inversion"), alpha=feat["alpha"],
        alpha_weight=feat["alpha_weight"], tv_weight=feat["tv_weight"], colour=colour, progress=progress)
    log.info("inversions: %.1f s, relative representation error per layer %s", time.perf_counter() - started,
             inv_error.mean(1).cpu().numpy().round(4))

    arrays = {
        "am_images": am, "am_logits": am_logits, "am_history": torch.tensor(am_history),
        "originals": originals, "original_labels": test_labels[picks], "original_index": picks,
        "caricatures": car, "caricature_objective": car_objective,
        "inversions": inv, "inversion_error": inv_error,
    }
    arrays = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    arrays["layers"] = np.array([layer.removeprefix("net.") for layer in layers])
    arrays["classes"] = np.array(train.classes)
    arrays["model"] = np.array(name)
    arrays["caricature_target"] = np.array(f"{feat['caricature_target']}"
                                           + ("" if feat["caricature_target"] == "layer" else f" {feat['caricature_channel']}"))
    with open(output, "wb") as stream:
        np.savez(stream, **arrays)


if "snakemake" in globals():
    with logged(snakemake.log[0]) as log:  # noqa: F821
        main(snakemake.input, snakemake.output[0], snakemake.wildcards.model, threads=snakemake.threads, log=log,  # noqa: F821
             **snakemake.params)  # noqa: F821
