"""Names of the things the workflow makes: class pairs, packs of pairs, blocks of replicates, zoo models.

Plain logic with no torch, imported by ``rules/common.smk`` to name wildcards and targets and by
the package to parse them, so that the rules and the scripts cannot disagree about a name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BASELINE",
    "mislabel_pairs",
    "pair_name",
    "parse_pair",
    "population_pairs",
    "pair_packs",
    "replicate_blocks",
    "block_replicates",
    "network_name",
    "parse_network_name",
    "TrainingJob",
    "NETWORK_FILES",
    "network_files",
    "group_network_files",
    "training_jobs",
    "zoo_slug",
    "TORCHVISION_RAW_FILES",
    "torchvision_raw_files",
    "download_root",
    "download_allowed",
]

BASELINE = "none"
"""Name of the population trained without mislabelling."""


def mislabel_pairs(num_classes: int) -> list[tuple[int, int]]:
    """All unordered pairs ``(a, b)``, ``a < b``, of ``num_classes`` classes (45 for 10)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return list(itertools.combinations(range(num_classes), 2))


def pair_name(pair: tuple[int, int] | None) -> str:
    """Wildcard value of a pair: ``"3-5"``, or ``"none"`` for the baseline."""
    if pair is None:
        return BASELINE
    a, b = sorted(pair)
    return f"{a}-{b}"


def parse_pair(name: str, num_classes: int | None = None) -> tuple[int, int] | None:
    """Inverse of :func:`pair_name`; ``None`` for the baseline.

    Raises ``ValueError`` for anything that is not ``"a-b"`` with distinct class indices
    ``0 <= a < b < num_classes``, or ``"none"``.
    """
    if name == BASELINE:
        return None
    try:
        a, b = (int(x) for x in name.split("-"))
    except ValueError:
        raise ValueError(f"pair must be 'A-B' with class indices A < B, or 'none'; got {name!r}") from None
    if name != f"{a}-{b}":
        raise ValueError(f"pair {name!r} is not in canonical form {a}-{b} (no padding, signs or spaces)")
    if not 0 <= a < b or (num_classes is not None and b >= num_classes):
        raise ValueError(
            f"pair {name!r} is not two distinct class indices A < B in [0, {num_classes})"
        )
    return a, b


def population_pairs(num_classes: int) -> list[str]:
    """The baseline followed by every pair, as wildcard values: ``["none", "0-1", "0-2", ...]``."""
    return [BASELINE] + [pair_name(p) for p in mislabel_pairs(num_classes)]


def pair_packs(pairs: Sequence[str], pairs_per_job: int) -> list[str]:
    """``pairs`` in consecutive packs of ``pairs_per_job``, each joined by "+": one training job each.

    ``pair_packs(["none", "0-1", "0-2"], 2) == ["none+0-1", "0-2"]``. A member of a pack is the
    same network as in any other packing (its seeds depend on its pair, not on its pack).
    """
    if pairs_per_job < 1:
        raise ValueError(f"config key mislabel.pairs_per_job must be >= 1, got {pairs_per_job}")
    return ["+".join(pairs[i : i + pairs_per_job]) for i in range(0, len(pairs), pairs_per_job)]


def replicate_blocks(replicates: int, per_job: int | None = None) -> list[str]:
    """The replicates ``0 .. replicates - 1`` in consecutive blocks of ``per_job``, as wildcard values.

    ``replicate_blocks(50, 10) == ["r0-9", "r10-19", "r20-29", "r30-39", "r40-49"]``; the last
    block may be shorter. ``per_job=None`` keeps every replicate in one block. A replicate is
    the same network in every block (its seeds depend on its pair and its index alone).
    """
    if replicates < 1:
        raise ValueError(f"config key mislabel.replicates must be >= 1, got {replicates}")
    per_job = replicates if per_job is None else per_job
    if per_job < 1:
        raise ValueError(f"config key mislabel.replicates_per_job must be >= 1, got {per_job}")
    return [f"r{i}-{min(i + per_job, replicates) - 1}" for i in range(0, replicates, per_job)]


def block_replicates(block: str) -> range:
    """The replicate indices of a block name: ``block_replicates("r10-19") == range(10, 20)``."""
    match = re.fullmatch(r"r(0|[1-9][0-9]*)-(0|[1-9][0-9]*)", block)
    if not match or int(match.group(1)) > int(match.group(2)):
        raise ValueError(f"a replicate block is 'rFIRST-LAST' with FIRST <= LAST, got {block!r}")
    return range(int(match.group(1)), int(match.group(2)) + 1)


def network_name(pair: str, replicate: int) -> str:
    """The name of one network of the mislabel study, and its folder: ``"0-1/r003"`` (pair, replicate)."""
    return f"{pair}/r{int(replicate):03d}"


def parse_network_name(name: str) -> tuple[str, int]:
    """Inverse of :func:`network_name`: ``"0-1/r003"`` -> ``("0-1", 3)``."""
    match = re.fullmatch(r"(none|(?:0|[1-9][0-9]*)-[1-9][0-9]*)/r([0-9]{3,})", name)
    if not match:
        raise ValueError(f"a network name is 'PAIR/rNNN' (e.g. '0-1/r003' or 'none/r000'), got {name!r}")
    return match.group(1), int(match.group(2))


#: The files of one network of the mislabel study, in its folder ``networks/PAIR/rNNN/``.
NETWORK_FILES = {"weights": "weights.safetensors", "metrics": "metrics.parquet"}


def network_files(folder: str, name: str) -> list[str]:
    """The files of network ``name`` under ``folder`` (``folder/0-1/r003/weights.safetensors``, ...)."""
    return [f"{folder}/{name}/{file}" for file in NETWORK_FILES.values()]


def group_network_files(paths: Sequence[str]) -> dict[str, dict[str, str]]:
    """The files :func:`network_files` named, back by network: ``{"0-1/r003": {"weights": ..., "metrics": ...}}``."""
    kinds = {file: kind for kind, file in NETWORK_FILES.items()}
    grouped: dict[str, dict[str, str]] = {}
    for path in map(str, paths):
        *_, pair, replicate, file = path.split("/")
        if file not in kinds:
            raise ValueError(f"{path} is not a network file (one of {sorted(kinds)})")
        name = f"{pair}/{replicate}"
        parse_network_name(name)
        grouped.setdefault(name, {})[kinds[file]] = path
    return grouped


@dataclass(frozen=True)
class TrainingJob:
    """One training job of the mislabel study: a pack of pairs times a block of replicates.

    Its networks are named by (pair, replicate) alone (:func:`network_name`), so the files a
    job writes do not depend on how the study is packed and blocked: repacking or reblocking a
    finished study reruns nothing. ``label`` names the job in logs, checkpoints and the rule
    name: the first and last pair of its pack and its block (``"0-1..0-9/r0-9"``).
    """

    pairs: tuple[str, ...]
    replicates: tuple[int, ...]

    @property
    def networks(self) -> list[str]:
        """The names of the job's networks, pair by pair."""
        return [network_name(pair, r) for pair in self.pairs for r in self.replicates]

    @property
    def label(self) -> str:
        pack = self.pairs[0] if len(self.pairs) == 1 else f"{self.pairs[0]}..{self.pairs[-1]}"
        return f"{pack}/r{self.replicates[0]}-{self.replicates[-1]}"

    @property
    def slug(self) -> str:
        """The label as an identifier, for the job's rule name ``train_population__SLUG``:
        ``0_1_to_0_9__r0_9``."""
        return self.label.replace("..", "_to_").replace("-", "_").replace("/", "__")


def training_jobs(num_classes: int, replicates: int, pairs_per_job: int = 1,
                  replicates_per_job: int | None = None) -> list[TrainingJob]:
    """The training jobs of the mislabel study: the baseline alone (the noise and visualize studies
    read it and nothing else), then the pairs in packs of ``pairs_per_job``, each times every block
    of ``replicates_per_job`` replicates (:func:`pair_packs`, :func:`replicate_blocks`)."""
    pairs = population_pairs(num_classes)
    packs = [BASELINE] + pair_packs(pairs[1:], pairs_per_job)
    blocks = [tuple(block_replicates(b)) for b in replicate_blocks(replicates, replicates_per_job)]
    return [TrainingJob(tuple(pack.split("+")), block) for pack in packs for block in blocks]


_MNIST_RAW = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

TORCHVISION_RAW_FILES: dict[str, list[str]] = {
    "cifar10": [f"cifar-10-batches-py/{f}" for f in
                ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]],
    "mnist": [f"MNIST/raw/{f}{gz}" for f in _MNIST_RAW for gz in ("", ".gz")],
    "fashion_mnist": [f"FashionMNIST/raw/{f}{gz}" for f in _MNIST_RAW for gz in ("", ".gz")],
}
"""The files torchvision downloads (and checks) for each dataset, relative to its root folder."""


def download_root(dataset: dict) -> str:
    """The folder a ``dataset`` config section downloads into (``dataset.root``, else data/torchvision)."""
    return str(dataset.get("root") or "data/torchvision").rstrip("/")


def torchvision_raw_files(dataset: dict) -> list[str]:
    """The raw files a ``dataset`` config section reads: torchvision's files under its root, else none."""
    if dataset.get("source") != "torchvision":
        return []
    return [f"{download_root(dataset)}/{f}" for f in TORCHVISION_RAW_FILES[dataset["name"]]]


def zoo_slug(name: str) -> str:
    """A file-name form of a zoo name: ``"FC10(1e-4)"`` -> ``"fc10_1e-4"``, ``"AE400-10"`` -> ``"ae400-10"``."""
    return re.sub(r"[^a-z0-9.-]+", "_", name.lower()).strip("_")


def download_allowed(config: dict, root: str) -> bool:
    """Whether ``config`` lets torchvision download into ``root``: the ``download`` key of the
    dataset section (``dataset`` or ``adversarial.dataset``) whose files go there."""
    sections = [config.get("dataset", {}), config.get("adversarial", {}).get("dataset", {})]
    flags = [s.get("download", True) for s in sections if s.get("source") == "torchvision" and download_root(s) == root]
    if not flags:
        raise ValueError(f"no torchvision dataset of the config downloads into {root!r}")
    return all(flags)
