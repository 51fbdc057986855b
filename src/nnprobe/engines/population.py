"""The population engine: train K small networks at once on one device.

A population is data, not a list of modules: every parameter of the K members is stacked
into one tensor of shape ``(K, ...)`` (:func:`torch.func.stack_module_state`), and one
forward/backward per step evaluates all members with :func:`torch.func.vmap` over
:func:`torch.func.functional_call` of a template module that lives on the meta device.
Each member has its own initialisation seed, its own shuffled order of the training data
and its own label vector. The loss is the *sum* of the members' mean losses, so each member
receives exactly its own gradient, and Adam/SGD are element-wise, so one optimizer over the
stacked tensors is K independent optimizers: a population of K gives the same weights as
K separate runs with the same seeds (up to floating-point reassociation; tested).

The training images stay on the device as uint8 and are normalised on the fly; an epoch's
index permutations are drawn on the device from each member's own seed and the epoch
(:func:`epoch_permutations`), so nothing synchronises with the host inside an epoch and a
resumed job draws what an uninterrupted one draws. :class:`PopulationTask` is how the
training engine (:mod:`nnprobe.engines.training`) trains a population.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..core.weights import Weights, WeightsError, read_weights, save_weights
from ..models import build_model
from .training import OptimizerSpec, Step, TrainingTask, make_optimizer

__all__ = [
    "Member",
    "Population",
    "init_population",
    "epoch_permutations",
    "mix64",
    "batch_indices",
    "normalize",
    "LAYOUTS",
    "resolve_layout",
    "population_logits",
    "population_loss",
    "PopulationTask",
    "compact_labels",
    "predict_population",
    "class_metrics",
    "evaluate_population",
    "save_population",
    "load_population",
    "member_network",
]


@dataclass(frozen=True)
class Member:
    """One network of a population: its name, seeds and training labels."""

    name: str
    init_seed: int
    order_seed: int
    labels: np.ndarray  # int64 (N,), the (possibly mislabelled) training labels


@dataclass
class Population:
    """Stacked parameters of K members of one architecture.

    ``template`` holds the architecture on the meta device (no storage); ``params`` maps
    each parameter name of the template to a tensor of shape ``(K, *shape)``.
    """

    template: nn.Module
    params: dict[str, torch.Tensor]
    layout: str = "vmap"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"population layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout not in ("vmap", "loop") and not hasattr(self.template, f"{self.layout}_forward"):
            raise ValueError(
                f"layout {self.layout!r} needs an architecture with a {self.layout}_forward method; "
                f"{type(self.template).__name__} has none: use layout 'vmap'"
            )

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """The state dict of member ``k`` (views into the stacked tensors)."""
        return {name: p[k] for name, p in self.params.items()}


def init_population(
    make_model: Callable[[torch.Generator], nn.Module],
    init_seeds: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    layout: str = "vmap",
) -> Population:
    """Build each member with ``make_model(generator)`` on the CPU and stack them.

    Initialising on the CPU from a per-member ``torch.Generator`` makes a member's initial
    weights independent of K, of the device and of every other member.
    """
    members = []
    for seed in init_seeds:
        generator = torch.Generator().manual_seed(int(seed))
        members.append(make_model(generator).to(dtype))
    params, buffers = stack_module_state(members)
    if buffers:
        raise ValueError(
            f"the population engine trains stateless architectures only; got buffers "
            f"{sorted(buffers)} (BatchNorm running statistics need one model per process)"
        )
    template = copy.deepcopy(members[0]).to("meta")
    params = {name: p.detach().to(device).requires_grad_(True) for name, p in params.items()}
    return Population(template, params, layout)


def _to_int64(value: int) -> int:
    """A 64-bit unsigned constant as the signed int64 with the same bits."""
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN, _MIX1, _MIX2 = (_to_int64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) on int64 tensors, wrapping arithmetic.

    A bijection of 64-bit words whose outputs pass BigCrush when fed a counter; the same bits
    on every device, so permutations derived from it do not depend on where they are drawn.
    """
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


def epoch_permutations(
    order_seeds: Sequence[int], epoch: int, n: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Each member's shuffled order of ``n`` training images for ``epoch``, shape ``(K, n)``.

    Member k's order is the stable argsort of 64-bit keys ``mix64(mix64(seed_k + mix64(epoch)) + i)``:
    a uniformly random permutation that depends only on ``(order_seeds[k], epoch)``, drawn for
    all members at once on ``device`` with no host synchronisation.
    """
    seeds = torch.tensor([int(s) for s in order_seeds], dtype=torch.int64, device=device)
    epoch_key = mix64(torch.tensor(int(epoch), dtype=torch.int64, device=device))
    member_key = mix64(seeds + epoch_key).unsqueeze(1)
    keys = mix64(member_key + torch.arange(n, dtype=torch.int64, device=device))
    return torch.sort(keys, dim=1, stable=True).indices


def batch_indices(perms: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Slices ``(K, batch_size)`` of the permutations; the last one may be shorter (as Keras)."""
    n = perms.shape[1]
    for start in range(0, n, batch_size):
        yield perms[:, start : start + batch_size]


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel; ``images_u8`` is ``(..., C, H, W)`` uint8."""
    x = images_u8.to(dtype) / 255.0
    return (x - mean.to(dtype).view(-1, 1, 1)) / std.to(dtype).view(-1, 1, 1)


LAYOUTS = ("loop", "vmap", "grouped", "gemm")


def resolve_layout(layout: str, device: torch.device | str) -> str:
    """The layout a population trains in: ``"auto"`` is ``"loop"`` on the CPU and ``"vmap"`` on a GPU.

    On the CPU the member loop makes a member's arithmetic exactly that of the same network
    trained alone (same shapes, same kernels), so its weights are bitwise the same in every
    packing and blocking; stacking members (vmap, grouped, gemm) changes the shapes the kernels
    see, and with them, on some CPUs, the rounding (measured: vmap of one member differs from vmap
    of two). On a GPU the stacked layouts are what makes a population fast.
    """
    if layout == "auto":
        return "loop" if torch.device(device).type == "cpu" else "vmap"
    if layout not in LAYOUTS:
        raise ValueError(f"population layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    return layout


def population_logits(population: Population, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(K, B, classes)`` of every member on its own batch ``x`` of shape ``(K, B, C, H, W)``.

    ``population.layout`` chooses how: ``"loop"`` runs the template's ``forward`` member by
    member (each member computes exactly what it would alone); ``"vmap"`` maps it over the
    members (any stateless architecture); ``"grouped"`` and ``"gemm"`` call the template's
    ``grouped_forward``/``gemm_forward`` (members packed as grouped convolutions or batched matrix
    products), which is what ``torch.compile`` turns into the fastest kernels.
    """
    if population.layout == "loop":
        # unbind, not p[k]: the backward of K selections adds K full-size zero-padded gradients
        # (K^2 work); unbind's is one stack. The same gradients bit for bit, 1.6x faster at K = 44.
        members = {name: p.unbind(0) for name, p in population.params.items()}
        return torch.stack([functional_call(population.template, {name: m[k] for name, m in members.items()}, (x[k],))
                            for k in range(x.shape[0])])
    if population.layout != "vmap":
        return getattr(population.template, f"{population.layout}_forward")(population.params, x)

    def member_forward(params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(population.template, params, (xb,))

    return vmap(member_forward)(population.params, x)


def population_loss(
    population: Population,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    idx: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over members of each member's mean cross-entropy on its batch ``idx`` ``(K, B)``,
    and the number of correct predictions over all members.

    ``labels`` is ``(K, N)``: member k's label for every training image (any integer dtype;
    uint8 keeps K x N labels small on the device).
    """
    dtype = next(iter(population.params.values())).dtype
    x = normalize(images_u8[idx], mean, std, dtype)
    y = labels.gather(1, idx).long()
    logits = population_logits(population, x)
    losses = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return losses.view_as(y).mean(dim=1).sum(), (logits.argmax(-1) == y).sum()


def compact_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Labels as uint8 when they fit (K x N labels of a large population stay small on the GPU)."""
    labels = torch.as_tensor(labels)
    if labels.numel() and 0 <= int(labels.min()) and int(labels.max()) < 256:
        return labels.to(torch.uint8)
    return labels.to(torch.int64)


class PopulationTask(TrainingTask):
    """A population as a training task: its stacked parameters, its members' data orders and labels.

    The training images ``(N, C, H, W)`` uint8 and the members' labels ``(K, N)`` are buffers
    (moved to the device with the task, not checkpointed). A step takes every member's own
    batch of its own permutation of the epoch and returns the sum of the members' mean losses
    (:func:`population_loss`); the engine reports the mean member loss and the members' training
    accuracy. ``compile_mode`` (``"default"``, ``"reduce-overhead"``, ...) compiles the loss with
    ``torch.compile``. The template module stays outside the module tree (meta device).
    """

    def __init__(
        self,
        population: Population,
        images_u8: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        order_seeds: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        optimizer: OptimizerSpec = OptimizerSpec(),
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.__dict__["template"] = population.template  # not a submodule: never moved nor optimised
        self.layout = population.layout
        self.names = list(population.params)
        self.stacked = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in population.params.values())
        labels = compact_labels(labels)
        if labels.ndim != 2 or labels.shape[0] != len(self.stacked[0]):
            raise ValueError(f"labels must be (members, images) = ({len(self.stacked[0])}, N), got {tuple(labels.shape)}")
        self.register_buffer("images", torch.as_tensor(images_u8), persistent=False)
        self.register_buffer("labels", labels, persistent=False)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64), persistent=False)
        self.order_seeds = [int(s) for s in order_seeds]
        self.batch_size = int(batch_size)
        self.optimizer = optimizer
        self.loss_fn = population_loss if compile_mode is None else torch.compile(population_loss, mode=compile_mode)

    def population(self) -> Population:
        """The current members as a Population (views of this task's parameters)."""
        return Population(self.template, dict(zip(self.names, self.stacked)), self.layout)

    def configure_optimizers(self, fused: bool, epochs: int) -> torch.optim.Optimizer:
        return make_optimizer(list(self.stacked), self.optimizer, fused=fused)

    def steps_per_epoch(self) -> int:
        return -(-self.images.shape[0] // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        perms = epoch_permutations(self.order_seeds, epoch, self.images.shape[0], self.images.device)
        return batch_indices(perms, self.batch_size)

    def training_step(self, idx: torch.Tensor) -> Step:
        loss, correct = self.loss_fn(self.population(), self.images, self.labels, idx, self.mean, self.std)
        k = len(self.order_seeds)
        return Step(loss, examples=idx.numel(), reported=loss.detach() / k, correct=correct)

    def trained(self) -> Population:
        """The trained members as detached CPU tensors."""
        return Population(self.template, {n: p.detach().to("cpu") for n, p in zip(self.names, self.stacked)}, self.layout)


@torch.no_grad()
def predict_population(
    population: Population,
    images_u8: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 1000,
) -> torch.Tensor:
    """Log-softmax outputs ``(K, N, classes)`` of every member on the same images ``(N, C, H, W)``."""
    dtype = next(iter(population.params.values())).dtype
    k = population.size
    out = []
    for start in range(0, images_u8.shape[0], batch_size):
        x = normalize(images_u8[start : start + batch_size], mean, std, dtype)
        x = x.unsqueeze(0).expand(k, *x.shape)
        out.append(torch.log_softmax(population_logits(population, x).float(), dim=-1))
    return torch.cat(out, dim=1)


def class_metrics(log_probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, np.ndarray]:
    """Per member and true class: accuracy, mean log2-loss, prediction counts, mean softmax.

    ``log_probs`` is ``(K, N, num_classes)`` (natural log), ``labels`` the true labels ``(N,)``.
    Returns arrays ``accuracy (K, C)``, ``logloss_bits (K, C)`` (mean of -log2 p(true class)),
    ``confusion (K, C, C)`` (rows true class, columns predicted class), ``mean_probs (K, C, C)``
    (rows true class: mean softmax over that class's images) and ``n_images (C,)``.
    """
    log_probs = log_probs.float().cpu()
    labels = labels.cpu().long()
    onehot = nn.functional.one_hot(labels, num_classes).float()  # (N, C)
    n_images = onehot.sum(0)  # (C,)
    if (n_images == 0).any():
        missing = torch.flatnonzero(n_images == 0).tolist()
        raise ValueError(f"classes {missing} have no test images; every class needs at least one")
    # Member by member: a member's sums are then the same whatever else is in the population (a
    # matrix product over all members would sum in blocks that depend on their number).
    confusion, logloss_bits, mean_probs = [], [], []
    for member in log_probs:  # (N, C)
        pred_onehot = nn.functional.one_hot(member.argmax(-1), num_classes).float()
        confusion.append(onehot.T @ pred_onehot)
        true_logp = member.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
        logloss_bits.append(-(true_logp @ onehot) / n_images / np.log(2.0))
        mean_probs.append(onehot.T @ member.exp() / n_images.view(-1, 1))
    confusion, logloss_bits, mean_probs = torch.stack(confusion), torch.stack(logloss_bits), torch.stack(mean_probs)
    accuracy = torch.diagonal(confusion, dim1=1, dim2=2) / n_images
    return {
        "accuracy": accuracy.numpy().astype(np.float64),
        "logloss_bits": logloss_bits.numpy().astype(np.float64),
        "confusion": confusion.round().numpy().astype(np.int64),
        "mean_probs": mean_probs.numpy().astype(np.float64),
        "n_images": n_images.numpy().astype(np.int64),
    }


def evaluate_population(
    population: Population,
    images_u8: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Per-member, per-class test metrics (:func:`class_metrics`) computed on ``device``."""
    on_device = Population(population.template, {n: p.to(device) for n, p in population.params.items()},
                           population.layout)
    log_probs = predict_population(
        on_device,
        torch.as_tensor(images_u8).to(device),
        torch.as_tensor(mean, dtype=torch.float64, device=device),
        torch.as_tensor(std, dtype=torch.float64, device=device),
        batch_size,
    )
    return class_metrics(log_probs, torch.as_tensor(labels), num_classes)


def save_population(path, population: Population, members: Sequence[Member], architecture: dict, *,
                    config: dict | None = None, extra: dict | None = None):
    """Write a population's stacked weights and its members (names and seeds) in the one weights format."""
    seeds = {"members": [{"name": m.name, "init_seed": m.init_seed, "order_seed": m.order_seed} for m in members]}
    return save_weights(path, population.params, architecture=architecture, config=config, seeds=seeds,
                        extra={"members": [m.name for m in members], "layout": population.layout, **(extra or {})})


def load_population(path) -> tuple[Population, Weights]:
    """The population of a file written by :func:`save_population` (CPU tensors) and the file's content."""
    weights = read_weights(path)
    if "members" not in weights.extra:
        raise WeightsError(f"{path} holds one network, not a population; load it with nnprobe.models.load_model")
    template = build_model(weights.architecture).to("meta")
    return Population(template, dict(weights.tensors), weights.extra.get("layout", "vmap")), weights


def member_network(population: Population, architecture: dict, k: int) -> nn.Module:
    """Member ``k`` of a population as an ordinary network (eval mode, on the population's device)."""
    model = build_model(architecture)
    model.load_state_dict(population.member_state(k))
    return model.to(next(iter(population.params.values())).device).eval()
