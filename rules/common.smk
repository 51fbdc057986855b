# Config validation and helpers shared by the rule files; no rules live here.
import os
import re
import sys

import yaml
from snakemake.utils import validate

# The workflow's own folder (the parent of rules/), from this file's place: workflow.basedir is
# the folder of the main Snakefile, which is the host's when this workflow runs as a module
# (`module nnprobe: snakefile: ...`, config/README.md).
WORKFLOW_DIR = os.path.dirname(str(workflow.current_basedir))
if not os.path.isfile(os.path.join(WORKFLOW_DIR, "config", "schema.yaml")):
    raise ValueError(
        f"nnprobe runs from a local copy of its repository, not from {WORKFLOW_DIR}: every rule's "
        "code inputs are files of its package on disk. Clone it and name its Snakefile "
        '(module nnprobe: snakefile: "path/to/nnprobe/Snakefile"; config/README.md)'
    )

# The package's config checks and names (torch-free), importable wherever Snakemake runs.
sys.path.insert(0, os.path.join(WORKFLOW_DIR, "src"))
from nnprobe.core.checks import check_prepared_data, resolve_num_classes
from nnprobe.core.config import check_config
from nnprobe.core.provenance import imported_package_files
from nnprobe.studies.mislabel.plan import COMPARISONS, INFORMATION_VALUES, RESULT_KEYS
from nnprobe.studies.adversarial.plan import regime_settings
from nnprobe.studies.noise import plan as noise_plan
from nnprobe.studies.visualize import plan as visualize_plan
from nnprobe.core.naming import (
    BASELINE,
    TORCHVISION_RAW_FILES,
    download_root,
    network_files,
    torchvision_raw_files,
    training_jobs,
    zoo_slug,
)

with open(os.path.join(WORKFLOW_DIR, "config", "schema.yaml")) as schema_file:
    check_config(config, yaml.safe_load(schema_file))
validate(config, schema="../config/schema.yaml")  # fills the schema's defaults

# envs/*.post-deploy.sh install this checkout into each conda env (also with --directory).
os.environ.setdefault("NNPROBE_ROOT", WORKFLOW_DIR)

# dataset.num_classes, or the data's own count (auto); the prepared data must agree (check_dataset).
NUM_CLASSES = resolve_num_classes(config["dataset"])
# The networks of the mislabel study, by (pair, replicate): "none/r000" (the baseline, clean
# labels), "0-1/r000", ... Each training job trains a pack of pairs x a block of replicates as one
# population (mislabel.pairs_per_job, mislabel.replicates_per_job); the baseline is always a
# job of its own (the noise and visualize studies need it and nothing else).
MISLABEL_JOBS = training_jobs(
    NUM_CLASSES,
    config["mislabel"]["replicates"],
    config["mislabel"]["pairs_per_job"],
    config["mislabel"]["replicates_per_job"],
)
MISLABEL_NETWORKS = [name for job in MISLABEL_JOBS for name in job.networks]
NETWORKS = "results/mislabel/networks"
BASELINE_WEIGHTS = [
    f"{NETWORKS}/{name}/weights.safetensors"
    for name in MISLABEL_NETWORKS
    if name.startswith(f"{BASELINE}/")
]
TABLE_EXTS = [".parquet", ".csv", ".md"]


def code(script):
    """scripts/<script> and the package modules it runs, directly or through other modules.

    They are inputs of the rule that runs the script, so the rule reruns when the code it runs
    changes, and only then: a figure module reruns its figures, the training engine retrains.
    The paths are relative (to the working directory), so a finished run moved or cloned to
    another folder plans nothing: a code file that is newer than the outputs but has the
    checksum Snakemake recorded with them is unchanged (profiles/default leaves out Snakemake's
    "code" trigger, which would rerun a script's rule when the script is merely newer).
    """
    path = os.path.join(WORKFLOW_DIR, "scripts", script)
    modules = imported_package_files(path, os.path.join(WORKFLOW_DIR, "src", "nnprobe"))
    return [os.path.relpath(p) for p in [path, *modules]]


def mislabel_model():
    """The model keys the mislabel networks are built from (padding only for the Keras CNN)."""
    model = config["model"]
    if model["architecture"] == "keras_cnn":
        return {"architecture": "keras_cnn", "padding": model["padding"]}
    return {"architecture": model["architecture"], "width": model["width"]}


if config["model"]["architecture"] != "keras_cnn" and config["train"]["layout"] in (
    "grouped",
    "gemm",
):
    raise ValueError(
        f"config key train.layout is {config['train']['layout']!r}, but the packed layouts "
        f"(grouped, gemm) are written for model.architecture keras_cnn; "
        f"{config['model']['architecture']} trains in the loop or vmap layout: set train.layout to auto"
    )


# --------------------------------------------------------------------------- resources
# Where a job runs is decided by what the job itself asks for. A job that computes with networks
# asks for resources.train_gpu GPUs; only if that is > 0 does it go to the SLURM GPU partition,
# with a GPU model (docs/cluster.md: NNPROBE_SLURM_GPU_PARTITION, NNPROBE_SLURM_GPU_MODEL; every
# other job goes to the profile's default partition). Resources never rerun a job.
SLURM_GPU_PARTITION = os.environ.get("NNPROBE_SLURM_GPU_PARTITION", "")
SLURM_GPU_MODEL = os.environ.get("NNPROBE_SLURM_GPU_MODEL", "")


def gpu_job(minutes=None):
    """The resources of a job that computes with networks: resources.train_gpu GPUs, the training
    memory, and resources.train_runtime minutes (or ``minutes``), memory and time scaled by the
    attempt (a retry after an out-of-memory or time-limit failure asks for more)."""
    gpus = config["resources"]["train_gpu"]
    runtime = minutes or config["resources"]["train_runtime"]
    resources = {
        "gpu": gpus,
        "mem_mb": lambda wildcards, attempt: config["resources"]["train_mem_mb"]
        * attempt,
        "runtime": lambda wildcards, attempt: runtime * attempt,
    }
    if gpus > 0 and SLURM_GPU_PARTITION:
        resources["slurm_partition"] = SLURM_GPU_PARTITION
    if gpus > 0 and SLURM_GPU_MODEL:
        resources["gpu_model"] = SLURM_GPU_MODEL
    return resources


def figure(stem, caption, category, labels, subcategory=None):
    """A figure's outputs, declared once (``output: **figure(...)``): ``stem.pdf`` and
    ``stem.png``, the PNG in the report with the caption ``report/CAPTION.rst``, its category,
    subcategory and labels. A figure script reads ``snakemake.output.pdf`` and ``.png``.
    """
    return {
        "pdf": f"{stem}.pdf",
        "png": report(
            f"{stem}.png",
            caption=f"../report/{caption}.rst",
            category=category,
            subcategory=subcategory,
            labels=labels,
        ),
    }


def cpu_job(mem_mb, minutes):
    """The resources of a job that reads tables and writes tables or figures (no GPU)."""
    return {
        "mem_mb": lambda wildcards, attempt: mem_mb * attempt,
        "runtime": lambda wildcards, attempt: minutes * attempt,
    }


wildcard_constraints:
    comparison="|".join(COMPARISONS),
    value="|".join(INFORMATION_VALUES),


# The folders torchvision datasets are downloaded into (the download rules' {root} wildcard).
DOWNLOAD_ROOTS = sorted(
    {
        download_root(d)
        for d in (config["dataset"], config["adversarial"]["dataset"])
        if d.get("source") == "torchvision"
    }
)


wildcard_constraints:
    root="|".join(re.escape(root) for root in DOWNLOAD_ROOTS) or "(?!)",


def dataset_params(dataset):
    """What preparing a ``dataset`` config section reads: its keys and the root seed (the digits'
    split uses it). Not num_classes (the data's own count, checked by check_dataset) nor
    download (the download rules fetch the files): neither changes the prepared data."""
    return {
        **{
            k: v
            for k, v in dataset.items()
            if k not in ("num_classes", "download")
            # unset, it is no param: runs made before the key existed stay done
            and not (k == "train_per_class" and v is None)
        },
        "seed": config["seed"],
    }


# A key changed after the data was prepared (a class name, say) is checked against it now, before
# Snakemake plans any job: every problem at once (the same check as rule check_dataset).
check_prepared_data(
    config, "results/data/manifest.json", "dataset", dataset_params(config["dataset"])
)
check_prepared_data(
    config,
    "results/adversarial/data/manifest.json",
    "adversarial.dataset",
    dataset_params(config["adversarial"]["dataset"]),
)


def mislabel_targets():
    """Every table and figure of the mislabel study: in the paired design (mislabel.design) the
    paired tables and heatmaps besides the Welch ones."""
    paired = config["mislabel"]["design"] == "paired"
    tables = expand(
        "results/mislabel/tables/{stat}_{comparison}{ext}",
        stat=["welch", "information"]
        + (["paired", "paired_information"] if paired else []),
        comparison=COMPARISONS,
        ext=TABLE_EXTS,
    )
    heatmaps = [f"t_heatmap_{c}" for c in COMPARISONS] + [
        f"information_heatmap_{v}" for v in INFORMATION_VALUES
    ]
    figures = expand(
        "results/mislabel/figures/{name}.{ext}",
        name=heatmaps
        + ([f"paired_{name}" for name in heatmaps] if paired else [])
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


def adversarial_network_targets():
    """Every network of the adversarial study and its adversarial examples (the zoo, the P1/P2
    models, every adversarially trained network): what costs compute; every table and figure is
    made from these files (target rule adversarial_networks)."""
    return [
        *expand("results/adversarial/examples/full/{zoo}.npz", zoo=ZOO_SLUGS),
        *expand("results/adversarial/examples/{file}.npz", file=CTS_FILES),
        *expand(
            "results/adversarial/training/{regime}/{replicate}.{ext}",
            regime=REGIMES,
            replicate=range(ADV["adversarial_training"]["replicates"]),
            ext=["json", "monitor.parquet"],
        ),
    ]


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
# What the rules ask of the study lives in its plan module (nnprobe.studies.noise.plan).
NOISE_TASKS = list(noise_plan.TASKS)
NOISE_SPEED_KEYS = list(noise_plan.SPEED_KEYS)
NOISE_SEEDS = noise_plan.seeds(config["noise"])
NOISE_TABLES = list(noise_plan.TABLES)
NOISE_PROBES = noise_plan.probe_folders(config["noise"])
NOISE_SOURCES = noise_plan.sources(config["noise"], config["model"]["architecture"])
NOISE_PROBE_PARAMS = noise_plan.probe_params(config["noise"])


def noise_targets():
    """Every table and figure of the noise study."""
    return noise_plan.targets(
        config["noise"], config["model"]["architecture"], TABLE_EXTS
    )


# --------------------------------------------------------------------------- visualize study
# What the rules ask of the study lives in its plan module (nnprobe.studies.visualize.plan).
VISUALIZE_TRAINED = list(visualize_plan.TRAINED)
VISUALIZE_PATTERN_MODELS = list(visualize_plan.PATTERN_MODELS)
VISUALIZE_FEATURE_MODELS = config["visualize"]["feature_models"]
VISUALIZE_WEIGHTS = visualize_plan.weights(BASELINE_WEIGHTS[0])


def visualize_targets():
    """Every table and figure of the visualize study."""
    return visualize_plan.targets(config["visualize"], TABLE_EXTS)
