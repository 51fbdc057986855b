"""Does the prepared data fit the configuration? Checked once it is prepared, before any network trains.

A config names classes (``mislabel.class_groups``, ``noise.binary_classes``), class indices
(``visualize.backdoor.target_class``), the number of classes (``dataset.num_classes``) and
architectures that need images of some size. :func:`data_expectations` gathers every such key
of every study that uses a dataset; :func:`dataset_problems` holds a prepared dataset's manifest
against them and returns every mismatch as a sentence naming the config key, the value and
what would fit, so that one run reports them all; :func:`dataset_notes` says what will be
undefined for this data without being an error (a comparison that needs more classes).

:func:`dataset_class_count` reads the number of classes from the data itself when the workflow
is parsed (``dataset.num_classes: auto``): plain Python, no torch or numpy, so the Snakefile can
call it wherever Snakemake runs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "KERAS_CNN_MIN_SIDE",
    "VGG_CNN_MIN_SIDE",
    "TORCHVISION_CLASS_COUNTS",
    "DataConfigError",
    "data_expectations",
    "check_prepared_data",
    "dataset_class_count",
    "resolve_num_classes",
    "dataset_notes",
    "dataset_problems",
    "undefined_comparisons",
]


class DataConfigError(ValueError):
    """The prepared data does not fit the configuration."""


#: The smallest image side the Keras CNN takes, by padding (tests/models/test_keras_cnn.py holds these
#: equal to nnprobe.models.keras_cnn.keras_cnn_min_size: this module imports no torch).
KERAS_CNN_MIN_SIDE = {"valid": 18, "same": 4}
#: The smallest image side of the VGG-style CNN (nnprobe.models.vgg_cnn.VGG_CNN_MIN_SIDE, tested equal).
VGG_CNN_MIN_SIDE = 8
#: Classes of the datasets torchvision downloads.
TORCHVISION_CLASS_COUNTS = {"cifar10": 10, "mnist": 10, "fashion_mnist": 10}
_IDX_LABEL_NAMES = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")


def dataset_class_count(dataset: Mapping[str, Any]) -> int:
    """The number of classes of the dataset a config's ``dataset`` section names, read from the data.

    torchvision datasets and the digits by their name; an image folder by the class folders
    of ``ROOT/train``; idx files by their largest label plus one. Raises
    :class:`DataConfigError`, naming ``dataset.root``, when the data is not there to count.
    """
    source = dataset.get("source")
    if source == "torchvision":
        return TORCHVISION_CLASS_COUNTS[dataset["name"]]
    if source == "sklearn_digits":
        return 10
    root = Path(dataset.get("root") or "")
    if source == "image_folder":
        train = root / "train"
        if not train.is_dir():
            raise DataConfigError(f"dataset.num_classes is auto, so the classes are counted in dataset.root, but "
                                  f"{train} is not a folder: set dataset.root to the folder holding train/ and test/, "
                                  f"or set dataset.num_classes")
        return len([d for d in os.listdir(train) if not d.startswith(".") and (train / d).is_dir()])
    if source == "idx":
        largest = -1
        for name in _IDX_LABEL_NAMES:
            found = next((f for folder in (root, root / "MNIST" / "raw", root / "FashionMNIST" / "raw", root / "raw")
                          for f in (folder / name,) if f.is_file()), None)
            if found is None:
                raise DataConfigError(f"dataset.num_classes is auto, so the classes are counted in the idx labels, but "
                                      f"{name} is not in dataset.root {root} (nor its MNIST/raw, FashionMNIST/raw or "
                                      f"raw folder); set dataset.root, or set dataset.num_classes")
            data = found.read_bytes()
            count = struct.unpack(">I", data[4:8])[0]
            largest = max(largest, max(data[8 : 8 + count], default=-1))
        return largest + 1
    raise DataConfigError(f"dataset.source must be one of torchvision, image_folder, idx, sklearn_digits, got {source!r}")


def resolve_num_classes(dataset: Mapping[str, Any]) -> int:
    """``dataset.num_classes``, or the data's own count (:func:`dataset_class_count`) when it is ``auto``."""
    value = dataset.get("num_classes", "auto")
    return dataset_class_count(dataset) if value in ("auto", None) else int(value)


def data_expectations(config: Mapping[str, Any], dataset: str = "dataset") -> dict[str, Any]:
    """What the studies that use the dataset of config section ``dataset`` (``"dataset"``: the
    mislabel, noise and visualize studies; ``"adversarial.dataset"``: the adversarial study)
    expect of it (for :func:`dataset_problems`): class counts, class names, class indices,
    smallest image sides, each with the config key that sets it.

    Every key is here, figure options included (``mislabel.class_groups``): the check runs
    before any network trains and reports every problem at once. The check job has no params,
    so a key changed after a run reruns neither it nor a network (the job that uses the key
    checks it again, and the workflow checks the prepared data at parse time).
    """
    if dataset == "adversarial.dataset":
        count = config["adversarial"]["dataset"].get("num_classes", "auto")
        return {"num_classes": None if count in ("auto", None) else {"key": "adversarial.dataset.num_classes",
                                                                     "value": int(count)}}
    if dataset != "dataset":
        raise ValueError(f"dataset must be 'dataset' or 'adversarial.dataset', got {dataset!r}")
    count = config["dataset"].get("num_classes", "auto")
    model, visualize = config["model"], config["visualize"]
    groups = config["mislabel"].get("class_groups") or {}
    backdoor = visualize["backdoor"]
    if model["architecture"] == "vgg_cnn":
        network = {"key": "model.architecture", "value": VGG_CNN_MIN_SIDE, "why": "the VGG CNN (three 2x2 poolings)"}
    else:
        network = {"key": "model.padding", "value": KERAS_CNN_MIN_SIDE[model["padding"]],
                   "why": f"the Keras CNN with {model['padding']} padding"}
    return {
        "num_classes": None if count in ("auto", None) else {"key": "dataset.num_classes", "value": int(count)},
        "class_names": [{"key": f"mislabel.class_groups.{group}", "names": list(names)}
                        for group, names in groups.items()]
        + [{"key": "noise.binary_classes", "names": list(config["noise"]["binary_classes"])}],
        "class_index": [{"key": "visualize.backdoor.target_class", "value": backdoor["target_class"]}],
        "min_side": [network,
                     {"key": "visualize.backdoor.trigger_size", "value": backdoor["trigger_size"]
                      + backdoor["trigger_margin"], "why": "the BadNets trigger (trigger_size + trigger_margin)"},
                     {"key": "visualize", "value": 4, "why": "the top-down network"}],
    }


def dataset_problems(manifest: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Every way the dataset of ``manifest`` (``nnprobe.core.splits.manifest``) breaks ``expected``.

    ``expected`` may hold ``num_classes`` (``{"key", "value"}``), ``class_names`` (a list of
    ``{"key", "names"}``: every name must be a class), ``class_index`` (a list of ``{"key",
    "value"}``: an index below the number of classes) and ``min_side`` (a list of ``{"key",
    "value", "why"}``: the images' height and width must be at least ``value``).
    """
    classes = list(manifest["classes"])
    _, height, width = manifest["splits"]["train"]["shape"]
    problems = []
    count = expected.get("num_classes")
    if count is not None and count["value"] != len(classes):
        problems.append(f"config key {count['key']} is {count['value']}, but the prepared data has {len(classes)} "
                        f"classes {classes}: set {count['key']} to {len(classes)} or to auto (the data decides)")
    for item in expected.get("class_names", []):
        missing = [name for name in item["names"] if name not in classes]
        if missing:
            problems.append(f"config key {item['key']} names {missing}, which are not classes of the prepared data; "
                            f"its classes are {classes}")
    for item in expected.get("class_index", []):
        if not 0 <= item["value"] < len(classes):
            problems.append(f"config key {item['key']} is {item['value']}, but the data has {len(classes)} classes: "
                            f"choose an index in [0, {len(classes) - 1}]")
    for item in expected.get("min_side", []):
        if min(height, width) < item["value"]:
            problems.append(f"the images are {height}x{width} pixels, but {item['why']} needs at least "
                            f"{item['value']}x{item['value']} (config key {item['key']})")
    return problems


def check_prepared_data(config: Mapping[str, Any], manifest_path: str | Path, dataset: str,
                        prepared_with: Mapping[str, Any]) -> None:
    """Hold ``config`` against data prepared earlier, when the workflow is parsed.

    If ``manifest_path`` exists and records that it was prepared from ``prepared_with`` (the
    dataset params of the current config; otherwise the data is prepared again and checked by
    rule check_dataset), raise :class:`DataConfigError` with every problem of
    :func:`dataset_problems`: a class name changed after the data was prepared fails before
    Snakemake plans a job, not when the job that reads it runs.
    """
    import json

    path = Path(manifest_path)
    if not path.is_file():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("dataset") != json.loads(json.dumps(dict(prepared_with))):
        return
    problems = dataset_problems(manifest, data_expectations(config, dataset))
    if problems:
        raise DataConfigError(f"the configuration does not fit the data prepared in {path} ({len(problems)} "
                              f"problem{'s' if len(problems) > 1 else ''}):\n  - " + "\n  - ".join(problems))


def undefined_comparisons(num_classes: int) -> dict[str, str]:
    """The mislabel study's comparisons that have an empty group with ``num_classes`` classes, and why.

    For target T and other class C, "confused" models hold a pair with C but not T (K - 2 pairs,
    so K >= 3 is needed) and "clean" ones a pair with neither (C(K - 2, 2) pairs, K >= 4).
    """
    confused = "no pair holds C without T (needs 3 classes or more)"
    clean = "no pair holds neither T nor C (needs 4 classes or more)"
    groups = {"confused_vs_clean": [confused, clean], "confused_vs_baseline": [confused], "clean_vs_baseline": [clean]}
    needs = {confused: 3, clean: 4}
    notes = {}
    for comparison, reasons in groups.items():
        missing = [why for why in reasons if num_classes < needs[why]]
        if missing:
            notes[comparison] = f"undefined with {num_classes} classes: {missing[0]}"
    return notes


def dataset_notes(manifest: Mapping[str, Any], studies: Sequence[str]) -> list[str]:
    """What the prepared data leaves undefined for ``studies`` (not errors: the log and tables say so)."""
    classes = list(manifest["classes"])
    notes = []
    if "mislabel" in studies:
        for comparison, why in undefined_comparisons(len(classes)).items():
            notes.append(f"mislabel comparison {comparison} is {why}")
    counts = manifest["splits"]["train"]["counts"]
    smallest, largest = min(counts.values()), max(counts.values())
    if largest > 3 * smallest:
        notes.append(f"classes are uneven: {smallest} to {largest} training images per class ({counts})")
    return notes


def check_dataset(manifest_path: str, output: str, *, expected: Mapping[str, Any], studies: Sequence[str]) -> None:
    """The job of rules check_dataset and check_adversarial_dataset: raise :class:`DataConfigError`
    listing every problem, else log what the data leaves undefined and write the checks that
    passed to ``output`` (JSON)."""
    import logging

    from .io import read_json, write_json

    log = logging.getLogger("nnprobe.checks")
    manifest = read_json(manifest_path)
    problems = dataset_problems(manifest, expected)
    if problems:
        raise DataConfigError(f"the prepared data ({manifest_path}) does not fit the configuration of the "
                              f"{', '.join(studies)} {'study' if len(studies) == 1 else 'studies'}; "
                              f"{len(problems)} problem{'s' if len(problems) > 1 else ''}, fix them all before "
                              "running again (README: own data):\n  - " + "\n  - ".join(problems))
    notes = dataset_notes(manifest, studies)
    for note in notes:
        log.warning("%s", note)
    shape = manifest["splits"]["train"]["shape"]
    log.info("%d classes %s, images %s (C, H, W): fit %s", len(manifest["classes"]), manifest["classes"], shape,
             ", ".join(studies))
    write_json({"classes": manifest["classes"], "shape": shape, "studies": list(studies), "expected": dict(expected),
                "notes": notes}, output)
