"""Does the prepared data fit the configuration? Checked once it is prepared, before any network trains.

A study's config names classes (``mislabel.class_groups``, ``noise.binary_classes``), class
indices (``visualize.backdoor.target_class``), the number of classes (``dataset.num_classes``)
and architectures that need images of some size. :func:`dataset_problems` holds a prepared
dataset's manifest against what the config expects of it and returns every mismatch as a
sentence naming the config key, the value and what would fit; :func:`dataset_notes` says what
will be undefined for this data without being an error (a comparison that needs more classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "KERAS_CNN_MIN_SIDE",
    "DataConfigError",
    "data_expectations",
    "dataset_notes",
    "dataset_problems",
    "undefined_comparisons",
]


class DataConfigError(ValueError):
    """The prepared data does not fit the configuration."""


#: The smallest image side the Keras CNN takes, by padding (tests/models/test_keras_cnn.py holds these
#: equal to nnprobe.models.keras_cnn.keras_cnn_min_size: this module imports no torch).
KERAS_CNN_MIN_SIDE = {"valid": 18, "same": 4}


def data_expectations(config: Mapping[str, Any], study: str) -> dict[str, Any]:
    """What ``study``'s part of the workflow ``config`` expects of its prepared data (for
    :func:`dataset_problems`): class counts, class names, class indices, smallest image sides.

    The mislabel study's class groups are a figure option, checked by the figures
    (:func:`nnprobe.studies.mislabel.statistics.class_order`), not here: a changed figure option
    must not re-run this check, which every network of the study waits for.
    """
    if study == "mislabel":
        padding = config["model"]["padding"]
        return {"num_classes": {"key": "dataset.num_classes", "value": config["dataset"]["num_classes"]},
                "min_side": [{"key": "model.padding", "value": KERAS_CNN_MIN_SIDE[padding],
                              "why": f"the Keras CNN with {padding} padding"}]}
    if study == "noise":
        return {"class_names": [{"key": "noise.binary_classes", "names": list(config["noise"]["binary_classes"])}]}
    if study == "visualize":
        backdoor = config["visualize"]["backdoor"]
        return {"class_index": [{"key": "visualize.backdoor.target_class", "value": backdoor["target_class"]}],
                "min_side": [{"key": "visualize.backdoor.trigger_size",
                              "value": backdoor["trigger_size"] + backdoor["trigger_margin"],
                              "why": "the BadNets trigger (trigger_size + trigger_margin)"},
                             {"key": "visualize", "value": 4, "why": "the top-down network"}]}
    if study == "adversarial":
        return {"num_classes": {"key": "adversarial.dataset.num_classes",
                                "value": config["adversarial"]["dataset"]["num_classes"]}}
    raise ValueError(f"study must be mislabel, noise, visualize or adversarial, got {study!r}")


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
                        f"classes {classes}: set {count['key']} to {len(classes)}")
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
    """The job of rule check_dataset: raise :class:`DataConfigError` listing every problem, else
    log what the data leaves undefined and write the checks that passed to ``output`` (JSON)."""
    import logging

    from .io import read_json, write_json

    log = logging.getLogger("nnprobe.checks")
    manifest = read_json(manifest_path)
    problems = dataset_problems(manifest, expected)
    if problems:
        raise DataConfigError(f"the prepared data ({manifest_path}) does not fit the configuration of "
                              f"{', '.join(studies)}:\n  - " + "\n  - ".join(problems))
    notes = dataset_notes(manifest, studies)
    for note in notes:
        log.warning("%s", note)
    shape = manifest["splits"]["train"]["shape"]
    log.info("%d classes %s, images %s (C, H, W): fit %s", len(manifest["classes"]), manifest["classes"], shape,
             ", ".join(studies))
    write_json({"classes": manifest["classes"], "shape": shape, "studies": list(studies), "expected": dict(expected),
                "notes": notes}, output)
