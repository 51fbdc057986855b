# Config validation and helpers shared by the rule files; no rules live here.
import itertools
import os
import sys

import yaml
from snakemake.utils import validate

# The package's config checks, importable even where Snakemake runs outside the project's env.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from nnprobe.config import check_config

with open(os.path.join(workflow.basedir, "config", "schema.yaml")) as schema_file:
    check_config(config, yaml.safe_load(schema_file))
validate(config, schema="../config/schema.yaml")  # fills the schema's defaults

# envs/*.post-deploy.sh install this checkout into each conda env (also with --directory).
os.environ.setdefault("NNPROBE_ROOT", workflow.basedir)

NUM_CLASSES = config["dataset"]["num_classes"]
# The baseline population is the pair "none"; the others are class indices "a-b", a < b.
PAIRS = ["none"] + [
    f"{a}-{b}" for a, b in itertools.combinations(range(NUM_CLASSES), 2)
]
# A training job trains a pack of pairs as one population ("none+0-1+0-2"); with
# mislabel.pairs_per_job = 1 every pair is a job of its own.
PACKS = [
    "+".join(PAIRS[i : i + config["mislabel"]["pairs_per_job"]])
    for i in range(0, len(PAIRS), config["mislabel"]["pairs_per_job"])
]
COMPARISONS = ["confused_vs_clean", "confused_vs_baseline", "clean_vs_baseline"]
INFORMATION_VALUES = ["delta_logloss_bits", "kl_bits"]
TABLE_EXTS = [".parquet", ".csv", ".md"]


wildcard_constraints:
    pairs="(none|(0|[1-9][0-9]*)-[1-9][0-9]*)([+](0|[1-9][0-9]*)-[1-9][0-9]*)*",
    comparison="|".join(COMPARISONS),
    value="|".join(INFORMATION_VALUES),


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
