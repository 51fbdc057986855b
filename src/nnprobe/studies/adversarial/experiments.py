"""Table 4 of Szegedy et al. (2013) by experiment (issue 26, item 2): which protocol choice moves its cells.

The workflow trains each network of Tables 3-4 once (FC100-100-10 and FC123-456-10 on P1,
FC100-100-10' on P2; P1/P2 seeded random halves of the training set) and attacks it on the
same seeded test images. These functions retrain the same networks with exactly the
workflow's recipe (:func:`train_fc`, the FC branch of
:func:`~nnprobe.studies.adversarial.training.train_zoo_model`) while changing one named choice:

* the seed of a network (its initialisation and data order; :func:`replicate_seed`,
  replicate 0 being the workflow's own network);
* the halves: the first and last 30,000 training images in the file's order
  (:func:`file_order_halves`) instead of the random split;
* the data order alone: a network trained with another network's order seed;

and evaluate every pair of networks (:func:`transfer_cells`) on the examples as made, magnified
to RMS 0.1 (the paper's rows) and magnified only when below 0.1 (:func:`magnify_below`).
:func:`pair_summary` reduces the cells to a mean and spread over seed pairs.

Nothing here is a code input of the workflow's rules.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...core.seeds import derive_seed
from ...engines.lbfgs import rms_distortion
from ...engines.training import TrainOptions, fit
from .records import adversarial_rows
from .training import ZooClassifierTask
from .transfer import magnify_to_rms
from .zoo import ZOO, build_zoo_model

__all__ = ["file_order_halves", "magnify_below", "pair_summary", "replicate_seed", "train_fc", "transfer_cells"]


def replicate_seed(config_seed: int, trainset: str, name: str, replicate: int) -> int:
    """The model seed of replicate ``replicate`` of the zoo network ``name`` on ``trainset``.

    Replicate 0 is the workflow's own seed (:func:`~nnprobe.studies.adversarial.jobs.train_zoo`:
    ``derive_seed(config_seed, "train_zoo_model", trainset, name)``); replicate r > 0 adds
    ``("replicate", r)`` to the parts. The seed gives the initialisation; the data order is the
    seed + 2, as in :func:`~nnprobe.studies.adversarial.training.train_zoo_model`.
    """
    if isinstance(replicate, bool) or not isinstance(replicate, (int, np.integer)) or replicate < 0:
        raise ValueError(f"replicate must be an integer >= 0, got {replicate!r}")
    parts = (config_seed, "train_zoo_model", trainset, name)
    return derive_seed(*parts) if replicate == 0 else derive_seed(*parts, "replicate", int(replicate))


def file_order_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last ``n // 2`` indices of ``range(n)``: halves in the file's order.

    The paper says only "we spit the 60000 images of the MNIST training set into two parts P1 and
    P2 of size 30000 each"; a split in the file's order is the other natural reading of that.
    For odd ``n`` the last index is in neither half (as in
    :func:`~nnprobe.studies.adversarial.design.p1_p2_split`).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    half = int(n) // 2
    return np.arange(half, dtype=np.int64), np.arange(half, 2 * half, dtype=np.int64)


def train_fc(name: str, images: torch.Tensor, labels: torch.Tensor, settings: Mapping, *, init_seed: int,
             order_seed: int, num_classes: int = 10) -> nn.Module:
    """A sigmoid zoo network ``name`` trained with the workflow's recipe, its initialisation and
    data order seeded apart.

    Exactly the FC branch of :func:`~nnprobe.studies.adversarial.training.train_zoo_model`
    (weights from ``torch.Generator().manual_seed(init_seed)``, :class:`ZooClassifierTask` with
    the zoo's weight decay, Adam, ``settings``' epochs, batch_size, lr, schedule and
    decay_normalization), which uses ``order_seed = init_seed + 2``: with that order seed the
    network is the workflow's.
    """
    if name not in ZOO or name.startswith("AE"):
        raise ValueError(f"name must be a softmax or sigmoid network of the zoo, got {name!r}")
    num_inputs = int(np.prod(images.shape[1:]))
    model = build_zoo_model(name, num_inputs, num_classes, torch.Generator().manual_seed(int(init_seed)))
    model = model.to(images.device, images.dtype)
    task = ZooClassifierTask(model, images, labels, weight_decay=ZOO[name].weight_decay,
                             normalize=settings["decay_normalization"], batch_size=settings["batch_size"],
                             lr=settings["lr"], order_seed=int(order_seed), schedule=settings["schedule"])
    fit(task, TrainOptions(epochs=settings["epochs"], progress=False, name=name))
    return model.eval()


def magnify_below(x_adv: torch.Tensor, x: torch.Tensor, rms: float) -> torch.Tensor:
    """Magnify to RMS ``rms`` only the examples whose distortion is below it; keep the others as made.

    :func:`~nnprobe.studies.adversarial.transfer.magnify_to_rms` gives *every* example RMS
    ``rms``, shrinking those already beyond it, and those are the examples its own model
    classifies right again. Here an example with ``rms_distortion >= rms`` is returned unchanged.
    """
    d = rms_distortion(x_adv, x)
    grown = magnify_to_rms(x_adv, x, rms)
    keep = (d < rms).view((-1,) + (1,) * (x.ndim - 1))
    return torch.where(keep, grown, x_adv.to(grown.dtype))


VARIANTS = ("as made", "magnified to 0.1", "magnified below 0.1")
"""The example sets of :func:`transfer_cells`."""


@torch.no_grad()
def transfer_cells(models: Mapping[str, nn.Module], attacks: Mapping[str, Mapping[str, np.ndarray]],
                   clean: torch.Tensor, rms: float = 0.1) -> pd.DataFrame:
    """Every source's examples on every model: one row per (source, variant, model).

    ``attacks[source]`` is the attack record of model ``source`` on the images ``clean`` (arrays
    ``correct``, ``success``, ``adversarial``, ``label`` of :func:`~.attacks.attack_record` plus
    the labels), every source attacked on the same images. Only :func:`adversarial_rows` count.
    Columns: source, variant (:data:`VARIANTS`), model, n, errors (examples the model does not
    classify as their true label), error, and the mean RMS distortion of the set.
    """
    out = []
    for source, ex in attacks.items():
        ok = torch.from_numpy(adversarial_rows(ex))
        adv = torch.from_numpy(np.asarray(ex["adversarial"])).to(clean.device, clean.dtype)[ok]
        x = clean[ok]
        y = torch.from_numpy(np.asarray(ex["label"])).to(clean.device)[ok]
        sets = {"as made": adv, "magnified to 0.1": magnify_to_rms(adv, x, rms), "magnified below 0.1":
                magnify_below(adv, x, rms)}
        for variant, images in sets.items():
            distortion = float(rms_distortion(images, x).mean()) if len(y) else float("nan")
            for name, model in models.items():
                model.eval()
                wrong = int((model(images).argmax(1) != y).sum()) if len(y) else 0
                out.append({"source": source, "variant": variant, "model": name, "n": int(len(y)), "errors": wrong,
                            "error": wrong / len(y) if len(y) else float("nan"), "distortion": distortion})
    return pd.DataFrame(out)


def pair_summary(cells: pd.DataFrame, network_of: Mapping[str, str]) -> pd.DataFrame:
    """Cells of networks (not models) as mean and spread over the model pairs that make them.

    ``cells`` is :func:`transfer_cells`' table over models named e.g. ``"fc100_p1/r1"``;
    ``network_of`` maps a model to its network (``"FC100-100-10 (P1)"``). For each (source
    network, variant, target network) the rows over every pair of a source model and a target
    model, *other than a model with itself* (whose as-made cell is 100% by construction; it is
    reported apart as ``own``), give: ``pairs``, ``mean`` and ``sd`` (over pairs, ddof 1; NaN for
    one pair), ``min``, ``max``, and ``pooled`` (all errors over all examples). For a network
    against itself, the pairs are different seeds of the same network; ``own`` is the model on
    its own examples.
    """
    frame = cells.assign(source_net=cells["source"].map(network_of), model_net=cells["model"].map(network_of))
    if frame[["source_net", "model_net"]].isna().any().any():
        missing = sorted(set(cells["source"]).union(cells["model"]) - set(network_of))
        raise ValueError(f"network_of has no network for {missing}")
    rows = []
    for (src, variant, dst), group in frame.groupby(["source_net", "variant", "model_net"], sort=False):
        own = group[group["source"] == group["model"]]
        pairs = group[group["source"] != group["model"]]
        row = {"source": src, "variant": variant, "model": dst, "pairs": len(pairs)}
        if len(pairs):
            e = 100 * pairs["error"].to_numpy()
            row.update({"mean": e.mean(), "sd": e.std(ddof=1) if len(e) > 1 else float("nan"), "min": e.min(),
                        "max": e.max(), "pooled": 100 * pairs["errors"].sum() / pairs["n"].sum()})
        if len(own):
            row["own"] = 100 * own["errors"].sum() / own["n"].sum()
            row["own_min"], row["own_max"] = 100 * own["error"].min(), 100 * own["error"].max()
        rows.append(row)
    return pd.DataFrame(rows)
