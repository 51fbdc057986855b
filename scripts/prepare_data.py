"""Snakemake script: load the configured dataset and write the prepared splits.

Inputs (``snakemake.params.dataset``): the ``dataset`` config section, a dict with
keys source, root, name, download, test_fraction, seed, checksums.
Outputs: ``snakemake.output.train`` / ``.test`` (``.npz`` splits, see
``nnprobe.data.save_split``) and ``snakemake.output.manifest`` (JSON: classes,
counts, shapes, channel mean/std, sha256 of every input file).
"""

import logging
from pathlib import Path

from nnprobe.data import load_dataset, manifest, save_split, write_json_atomic
from nnprobe.workflow import logged

log = logging.getLogger("nnprobe.prepare_data")


def main(params: dict, train: Path, test: Path, manifest_path: Path) -> None:
    """Load the dataset described by ``params`` and write train, test and manifest."""
    root = params.get("root") or None
    source = params.get("source")
    splits, inputs = load_dataset(
        source,
        root=Path(root) if root is not None else None,
        name=params.get("name"),
        download=bool(params.get("download", False)),
        test_fraction=params.get("test_fraction", 0.2),
        seed=params.get("seed", 0),
        checksums=params.get("checksums") or None,
    )
    info = manifest(splits, inputs, source)
    for split_name, desc in info["splits"].items():
        log.info(
            "%s: %d images of shape %s (C, H, W), counts per class %s, mean %s, std %s",
            split_name,
            desc["n"],
            desc["shape"],
            desc["counts"],
            desc["mean"],
            desc["std"],
        )
    save_split(splits["train"], Path(train))
    save_split(splits["test"], Path(test))
    write_json_atomic(info, Path(manifest_path))
    log.info("wrote %s, %s, %s (%d input files hashed)", train, test, manifest_path, len(inputs))
    shape = "x".join(str(d) for d in splits["train"].images.shape[1:])
    print(
        f"prepared {source} dataset: {len(splits['train'])} train / {len(splits['test'])} test "
        f"images of {shape} (CxHxW), {len(splits['train'].classes)} classes -> {train}, {test}"
    )


if "snakemake" in globals():
    with logged(snakemake.log[0]):  # noqa: F821
        main(
            dict(snakemake.params.dataset),  # noqa: F821
            Path(snakemake.output.train),  # noqa: F821
            Path(snakemake.output.test),  # noqa: F821
            Path(snakemake.output.manifest),  # noqa: F821
        )
