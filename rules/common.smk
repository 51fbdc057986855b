# Config validation and helpers shared by the rule files; no rules live here.
import os
import re
import sys

import yaml
from snakemake.utils import validate

# The package's config checks and names (torch-free), importable wherever Snakemake runs.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from nnprobe.core.config import check_config
from nnprobe.core.provenance import imported_package_files
from nnprobe.studies.adversarial.plan import regime_settings
from nnprobe.core.naming import (
    BASELINE,
    TORCHVISION_RAW_FILES,
    download_root,
    torchvision_raw_files,
    pair_packs,
    population_pairs,
    replicate_blocks,
    zoo_slug,
)

with open(os.path.join(workflow.basedir, "config", "schema.yaml")) as schema_file:
    check_config(config, yaml.safe_load(schema_file))
validate(config, schema="../config/schema.yaml")  # fills the schema's defaults

# envs/*.post-deploy.sh install this checkout into each conda env (also with --directory).
os.environ.setdefault("NNPROBE_ROOT", workflow.basedir)

NUM_CLASSES = config["dataset"]["num_classes"]
# The baseline population is the pair "none"; the others are class indices "a-b", a < b.
PAIRS = population_pairs(NUM_CLASSES)
# A training job trains a pack of pairs ("0-1+0-2") and a block of replicates ("r0-9") as one
# population. The baseline is a job of its own (the noise and visualize studies need it and
# nothing else); the other pairs go mislabel.pairs_per_job to a job.
PACKS = [BASELINE] + pair_packs(PAIRS[1:], config["mislabel"]["pairs_per_job"])
BLOCKS = replicate_blocks(
    config["mislabel"]["replicates"], config["mislabel"]["replicates_per_job"]
)
BASELINE_WEIGHTS = expand(
    "results/mislabel/populations/{pack}/{block}/weights.safetensors",
    pack=BASELINE,
    block=BLOCKS,
)
COMPARISONS = ["confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline"]
INFORMATION_VALUES = ["delta_logloss_bits", "kl_bits"]
TABLE_EXTS = [".parquet", ".csv", ".md"]


def code(script):
    """The package modules that scripts/<script> runs, directly or through other modules.

    They are inputs of the rule that runs the script, so the rule reruns when the code it runs
    changes, and only then: a figure module reruns its figures, the training engine retrains.
    """
    return [
        str(path)
        for path in imported_package_files(
            os.path.join(workflow.basedir, "scripts", script),
            os.path.join(workflow.basedir, "src", "nnprobe"),
        )
    ]


wildcard_constraints:
    pairs="(none|(0|[1-9][0-9]*)-[1-9][0-9]*)([+](0|[1-9][0-9]*)-[1-9][0-9]*)*",
    block="r(0|[1-9][0-9]*)-(0|[1-9][0-9]*)",
    comparison="|".join(COMPARISONS),
    value="|".join(INFORMATION_VALUES),


# The folders torchvision datasets are downloaded into (the download rules' {root} wildcard).
DOWNLOADS = {
    download_root(d): d.get("download", True)
    for d in (config["dataset"], config["adversarial"]["dataset"])
    if d.get("source") == "torchvision"
}


wildcard_constraints:
    root="|".join(re.escape(root) for root in DOWNLOADS) or "(?!)",


def download_allowed(root):
    """Whether the config lets torchvision download into ``root`` (dataset.download)."""
    return DOWNLOADS[root]


def dataset_params():
    """The dataset keys plus the root seed (used by sources that split deterministically)."""
    return {**config["dataset"], "seed": config["seed"]}


def mislabel_targets():
    """Every table and figure of the mislabel study."""
    tables = expand(
        "results/mislabel/tables/{stat}_{comparison}{ext}",
        stat=["welch", "information"],
        comparison=COMPARISONS,
        ext=TABLE_EXTS,
    )
    figures = expand(
        "results/mislabel/figures/{name}.{ext}",
        name=[f"t_heatmap_{c}" for c in COMPARISONS]
        + [f"information_heatmap_{v}" for v in INFORMATION_VALUES]
        + ["accuracy_by_pair", "class_dendrogram"],
        ext=["pdf", "png"],
    )
    return ["results/mislabel/tables/per_model_class.parquet", *tables, *figures]


# --------------------------------------------------------------------------- adversarial study
ADV = config["adversarial"]


# The cross-training-set models of Table 3: (zoo name, training set).
CROSS_TRAINING_SET = [
    ("FC100-100-10", "p1"),
    ("FC123-456-10", "p1"),
    ("FC100-100-10", "p2"),
]
ZOO_NAMES = {zoo_slug(n): n for n in ADV["models"] + [n for n, _ in CROSS_TRAINING_SET]}
ZOO_SLUGS = [zoo_slug(n) for n in ADV["models"]]
CTS_FILES = [f"{trainset}/{zoo_slug(n)}" for n, trainset in CROSS_TRAINING_SET]
# The adversarial-training regimes run (nnprobe.studies.adversarial.plan.REGIMES, in its order).
REGIMES = ADV["adversarial_training"]["regimes"]
ADV_TABLES = [
    "zoo",
    "cross_model",
    "cross_training_set_models",
    "cross_training_set",
    "cross_training_set_magnification",
    "paper_comparison",
    "paper_comparison_counts",
]


def attacked_split(trainset):
    """The images a model is attacked on: Table 1 measures the distortion "to reach 0% accuracy
    on the training set" (the zoo, trained on all of it); the P1/P2 models of Tables 3-4 are
    attacked on test images, which none of them saw."""
    split = "train" if trainset == "full" else "test"
    return f"results/adversarial/data/{split}.npz"


if ADV["units"]["model"] not in ADV["models"]:
    raise ValueError(
        f"config key adversarial.units.model: {ADV['units']['model']!r} is not one of "
        f"adversarial.models {ADV['models']}; add it there or pick one of them"
    )


wildcard_constraints:
    trainset="full|p1|p2",
    zoo="|".join(re.escape(s) for s in ZOO_NAMES),
    regime="|".join(REGIMES),
    replicate="[0-9]+",
    matrix="cross_model|cross_training_set",


def adversarial_targets():
    """Every table and figure of the adversarial study."""
    tables = expand(
        "results/adversarial/tables/{table}{ext}",
        table=ADV_TABLES + ["adversarial_training"],
        ext=TABLE_EXTS,
    )
    figures = expand(
        "results/adversarial/figures/{name}.{ext}",
        name=[
            "cross_model",
            "cross_training_set",
            "magnification",
            "distortion",
            "examples",
            "adversarial_training",
            "adversarial_training_monitor",
            "units",
        ],
        ext=["pdf", "png"],
    )
    return tables + figures


# --------------------------------------------------------------------------- noise study
NOISE_TASKS = ["multiclass", "binary"]
NOISE_SEEDS = list(range(config["noise"]["seeds"]))
NOISE_TABLES = [
    "groups",
    "agreement",
    "distances",
    "mst",
    "binary",
    "clutter",
    "clutter_correlations",
    "training",
]
NOISE_PROBES = expand(
    "results/noise/probes/{task}/seed{seed}",
    task=NOISE_TASKS,
    seed=NOISE_SEEDS,
) + (["results/noise/probes/population"] if config["noise"]["population"] else [])
NOISE_SOURCES = ["resnet18"] + (["keras_cnn"] if config["noise"]["population"] else [])
NOISE_PROBE_PARAMS = {
    "sets": config["noise"]["probe_sets"],
    "size": config["noise"]["probe_size"],
    "lowfreq_cutoff": config["noise"]["lowfreq_cutoff"],
}


def noise_targets():
    """Every table and figure of the noise study."""
    return [
        *expand(
            "results/noise/tables/{name}{ext}",
            name=NOISE_TABLES,
            ext=TABLE_EXTS,
        ),
        *expand(
            "results/noise/figures/{name}.{ext}",
            name=[f"predicted_classes_{s}" for s in NOISE_SOURCES]
            + [f"mst_{s}" for s in config["noise"]["probe_sets"]]
            + ["distance_to_noise", "binary", "auroc", "clutter"],
            ext=["pdf", "png"],
        ),
    ]


# --------------------------------------------------------------------------- visualize study
# The study's own networks: the standard CNN trained naturally, on BadNets-poisoned data and
# with PGD, and the top-down network.
VISUALIZE_TRAINED = ["natural", "backdoor", "adversarial", "topdown"]
# Class-wise patterns are compared across the three training settings of the standard CNN.
VISUALIZE_PATTERN_MODELS = ["natural", "backdoor", "adversarial"]
VISUALIZE_FEATURE_MODELS = config["visualize"]["feature_models"]
# "mislabel" visualizes the first network of the mislabel study's baseline population.
VISUALIZE_WEIGHTS = {
    **{
        name: f"results/visualize/models/{name}/weights.safetensors"
        for name in VISUALIZE_TRAINED
    },
    "mislabel": BASELINE_WEIGHTS[0],
}


def visualize_targets():
    """Every table and figure of the visualize study."""
    figures = expand(
        "results/visualize/figures/{name}_{model}.{ext}",
        name=["activation_maximization", "caricature", "inversion"],
        model=VISUALIZE_FEATURE_MODELS,
        ext=["pdf", "png"],
    ) + expand(
        "results/visualize/figures/{name}.{ext}",
        name=["class_patterns", "robustness"],
        ext=["pdf", "png"],
    )
    tables = expand(
        "results/visualize/tables/{name}{ext}",
        name=["models", "class_patterns"],
        ext=TABLE_EXTS,
    )
    return [*tables, *figures]
