"""Class-wise predictive patterns, BadNets backdoors and PGD: the input-space engine of the
visualize study.

* :func:`class_patterns` (Zhao, Ma, Wang, Bailey, Li & Jiang 2021, "What Do Deep Nets Learn?
  Class-wise Patterns Revealed in the Input Space", arXiv:2101.06898): for every class ``c`` a
  mask ``m_c`` over a canvas image ``x_c`` of that class is optimised so that the canvas
  pixels under the mask, pasted on images of the *other* classes,
  ``x' = (1 - m_c) * x + m_c * x_c``, are classified as ``c``; the loss is the cross-entropy
  towards ``c`` plus ``l1 * mean(m_c)``. The top-k mask pixels (about 5% of the image) form
  the pattern, and its predictive power (:func:`predictive_power`) is the rate at which it
  turns *held-out* images of the other classes into ``c``.
* :func:`badnets_poison` (Gu, Dolan-Gavitt & Garg 2017, "BadNets"): a small white patch in the
  bottom-right corner on a fraction of the training images, relabelled to a target class;
  :func:`trigger_success` measures the attack on test images of the other classes.
* :func:`pgd_attack` (Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards Deep Learning
  Models Resistant to Adversarial Attacks"): L-infinity projected gradient ascent on the
  cross-entropy from a random start in the epsilon ball, projected onto the ball and the box
  ``[0, 1]`` after every step; :func:`train_classifier` with ``adversarial`` set trains on PGD
  examples (PGD adversarial training).

Conventions: models take images in ``[0, 1]`` (see :class:`nnprobe.topdown.Normalized`); data
live on the model's device as ``uint8`` ``(N, C, H, W)`` tensors and are scaled per batch; every
random choice comes from an explicit ``torch.Generator`` seed. Apart from
:func:`train_classifier`, functions never change the model.

This module imports no other ``nnprobe`` module.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = [
    "PGD",
    "to_unit",
    "pgd_attack",
    "accuracy",
    "robust_accuracy",
    "train_classifier",
    "trigger_region",
    "add_trigger",
    "badnets_poison",
    "trigger_success",
    "paste",
    "class_patterns",
    "top_k_mask",
    "predictive_power",
    "choose_canvases",
    "region_overlap",
]


@dataclass(frozen=True)
class PGD:
    """An L-infinity PGD attack: radius ``epsilon`` in pixel units (images in [0, 1]), ``steps``
    signed-gradient steps of ``step_size``, from a uniform random start in the ball."""

    epsilon: float
    steps: int
    step_size: float

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"PGD epsilon must be in [0, 1] (pixel units), got {self.epsilon}")
        if self.steps < 1 or self.step_size <= 0:
            raise ValueError(f"PGD needs steps >= 1 and step_size > 0, got {self.steps} and {self.step_size}")

    @classmethod
    def madry(cls, epsilon: float, steps: int) -> "PGD":
        """Madry et al.'s step size for evaluation, ``2.5 * epsilon / steps``."""
        return cls(epsilon, steps, 2.5 * epsilon / steps if epsilon > 0 else 1.0)


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to float32 in ``[0, 1]``."""
    return images_u8.float() / 255.0


def _forward_eval(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(x)
    finally:
        model.train(was_training)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: PGD, generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial examples ``x'`` with ``|x' - x|_inf <= epsilon`` and ``x'`` in ``[0, 1]`` (Madry et al. 2018).

    ``x' = clip(x + U(-eps, eps))``, then ``steps`` times ``x' <- proj(x' + step_size *
    sign(grad CE(model(x'), y)))``, where ``proj`` clips to the epsilon ball around ``x`` and
    to the box. The model's parameters receive no gradient. ``epsilon = 0`` returns ``x``.
    """
    if attack.epsilon == 0:
        return x.detach().clone()
    eps = attack.epsilon
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) if generator is not None \
        else torch.rand_like(x)
    low, high = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    adv = torch.min(torch.max(x + (2 * noise - 1) * eps, low), high).detach()
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(attack.steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(model(adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            adv = torch.min(torch.max(adv.detach() + attack.step_size * grad.sign(), low), high).detach()
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    return adv


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024,
             transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Fraction of ``images`` classified as ``labels`` (optionally after ``transform`` of the [0, 1] batch)."""
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = to_unit(images_u8[start : start + batch_size])
        if transform is not None:
            x = transform(x)
        correct += (_forward_eval(model, x).argmax(1) == labels[start : start + batch_size]).sum().item()
    return correct / max(len(labels), 1)


def robust_accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, attack: PGD, seed: int,
                    batch_size: int = 512) -> float:
    """Accuracy under :func:`pgd_attack` (each image attacked once, random start from ``seed``)."""
    generator = torch.Generator(images_u8.device).manual_seed(seed)
    correct = 0
    for start in range(0, len(labels), batch_size):
        x, y = to_unit(images_u8[start : start + batch_size]), labels[start : start + batch_size]
        adv = pgd_attack(model, x, y, attack, generator)
        with torch.no_grad():
            correct += (_forward_eval(model, adv).argmax(1) == y).sum().item()
    return correct / max(len(labels), 1)


def train_classifier(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    flip: bool = False,
    adversarial: PGD | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place with Adam on cross-entropy; returns one history row per epoch.

    Data order (a permutation per epoch), horizontal flips (``flip``: each image with
    probability 1/2) and PGD random starts come from generators seeded by ``seed``. With
    ``adversarial`` every batch is replaced by its PGD examples against the current model
    (Madry et al. 2018, min-max training). The learning rate follows a cosine schedule to 0.
    """
    device = images_u8.device
    generator = torch.Generator(device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(labels)
    steps_per_epoch = math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history = []
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        total_loss, correct = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x, y = to_unit(images_u8[idx]), labels[idx]
            if flip:
                flips = torch.rand(len(idx), generator=generator, device=device) < 0.5
                x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
            if adversarial is not None:
                x = pgd_attack(model, x, y, adversarial, generator)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        row = {"epoch": epoch, "loss": total_loss / n, "train_accuracy": correct / n,
               "seconds": time.perf_counter() - started}
        history.append(row)
        if log is not None:
            log(f"epoch {epoch}: loss {row['loss']:.4f}, train accuracy {row['train_accuracy']:.4f}, {row['seconds']:.1f} s")
    model.eval()
    return history


# --------------------------------------------------------------------------- BadNets


def trigger_region(height: int, width: int, size: int, margin: int) -> tuple[slice, slice]:
    """Rows and columns of the square trigger: ``size`` pixels, ``margin`` pixels from the bottom-right corner."""
    if size < 1 or margin < 0 or size + margin > min(height, width):
        raise ValueError(
            f"trigger of {size} pixels at margin {margin} does not fit a {height}x{width} image; "
            f"choose visualize.trigger_size >= 1 and trigger_size + trigger_margin <= {min(height, width)}"
        )
    return slice(height - margin - size, height - margin), slice(width - margin - size, width - margin)


def add_trigger(images: torch.Tensor, size: int, margin: int) -> torch.Tensor:
    """A copy of ``images`` (uint8 or [0, 1] float, ``(N, C, H, W)``) with the BadNets trigger:
    a white square of ``size`` pixels ``margin`` pixels from the bottom-right corner."""
    rows, cols = trigger_region(images.shape[-2], images.shape[-1], size, margin)
    out = images.clone()
    out[..., rows, cols] = 255 if images.dtype == torch.uint8 else 1.0
    return out


def badnets_poison(images_u8: torch.Tensor, labels: torch.Tensor, *, fraction: float, target: int, size: int,
                   margin: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadNets poisoning (Gu et al. 2017): ``round(fraction * N)`` training images of classes other
    than ``target``, drawn without replacement, get the trigger and the label ``target``.

    Returns the poisoned images, the poisoned labels and the boolean mask of poisoned images.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"visualize.poison_fraction must be in (0, 1), got {fraction}")
    candidates = torch.nonzero(labels != target).flatten()
    count = min(round(fraction * len(labels)), len(candidates))
    generator = torch.Generator(labels.device).manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=generator, device=labels.device)[:count]]
    poisoned = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    poisoned[chosen] = True
    images, new_labels = images_u8.clone(), labels.clone()
    images[chosen] = add_trigger(images_u8[chosen], size, margin)
    new_labels[chosen] = target
    return images, new_labels, poisoned


def trigger_success(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, target: int, size: int,
                    margin: int) -> float:
    """Attack success rate: fraction of test images of the other classes classified as ``target``
    once the trigger is added."""
    keep = labels != target
    triggered = add_trigger(images_u8[keep], size, margin)
    return accuracy(model, triggered, torch.full_like(labels[keep], target))


# --------------------------------------------------------------------------- class-wise patterns


def paste(images: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(1 - mask) * images + mask * canvas``; ``mask`` ``(..., 1, H, W)`` broadcasts over channels."""
    return (1 - mask) * images + mask * canvas


def choose_canvases(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Index of one canvas image per class: the image labelled ``c`` with the largest logit
    margin ``z_c - max_{k != c} z_k`` (the model's most confident example of the class)."""
    with torch.no_grad():
        logits = torch.cat([_forward_eval(model, to_unit(images_u8[s : s + 1024])) for s in range(0, len(labels), 1024)])
    picks = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) == 0:
            raise ValueError(f"no image of class {c} to serve as its canvas; every class needs at least one image")
        z = logits[idx]
        others = z.clone()
        others[:, c] = -torch.inf
        picks.append(idx[(z[:, c] - others.max(1).values).argmax()])
    return torch.stack(picks)


def top_k_mask(mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Binary masks keeping the ``ceil(fraction * H * W)`` largest pixels of each ``(..., 1, H, W)`` mask."""
    flat = mask.flatten(-2)
    k = max(1, math.ceil(fraction * flat.shape[-1]))
    idx = flat.topk(k, dim=-1).indices
    return torch.zeros_like(flat).scatter_(-1, idx, 1.0).view_as(mask)


def class_patterns(
    model: nn.Module,
    canvases: torch.Tensor,
    search_images: torch.Tensor,
    search_labels: torch.Tensor,
    *,
    steps: int,
    lr: float,
    l1: float,
    batch_size: int,
    seed: int,
    progress: bool = False,
) -> tuple[torch.Tensor, list[dict]]:
    """Masks of every class's predictive pattern (Zhao et al. 2021), all classes in one optimisation.

    ``canvases`` ``(K, C, H, W)`` in [0, 1], one per class; ``search_images`` ``(N, C, H, W)`` uint8
    with ``search_labels``. The mask of class ``c`` is ``sigmoid(theta_c)`` ``(1, H, W)``, started at
    0.5 (``theta = 0``), and minimises over batches of images ``x`` *of the other classes*

        ``CE(model((1 - m_c) * x + m_c * x_c), c) + l1 * mean(m_c)``

    with Adam; each step draws ``batch_size`` images per class. Returns the masks ``(K, 1, H, W)``
    and a history of the mean loss terms every tenth of the steps.
    """
    k, _, height, width = canvases.shape
    device = canvases.device
    generator = torch.Generator(device).manual_seed(seed)
    theta = torch.zeros(k, 1, height, width, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=lr)
    pools = [torch.nonzero(search_labels != c).flatten() for c in range(k)]
    target = torch.arange(k, device=device).repeat_interleave(batch_size)
    history = []
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        for step in tqdm(range(steps), desc="pattern masks", disable=not progress):
            picks = torch.stack([pool[torch.randint(len(pool), (batch_size,), generator=generator, device=device)]
                                 for pool in pools])  # (K, B)
            x = to_unit(search_images[picks])  # (K, B, C, H, W)
            mask = torch.sigmoid(theta)
            pasted = paste(x, canvases.unsqueeze(1), mask.unsqueeze(1)).flatten(0, 1)
            ce = F.cross_entropy(model(pasted), target)
            sparsity = mask.mean()
            loss = ce + l1 * sparsity
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % max(1, steps // 10) == 0 or step == steps - 1:
                history.append({"step": step, "cross_entropy": ce.item(), "mask_mean": sparsity.item()})
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
    return torch.sigmoid(theta).detach(), history


@torch.no_grad()
def predictive_power(model: nn.Module, canvases: torch.Tensor, binary_masks: torch.Tensor, images_u8: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """Per class ``c``: the fraction of ``images`` of the other classes classified as ``c`` once the
    pattern (canvas ``c`` under its binary mask) is pasted on them (Zhao et al. 2021)."""
    rates = []
    for c in range(len(canvases)):
        others = images_u8[labels != c]
        hits = 0
        for start in range(0, len(others), 1024):
            x = paste(to_unit(others[start : start + 1024]), canvases[c], binary_masks[c])
            hits += (_forward_eval(model, x).argmax(1) == c).sum().item()
        rates.append(hits / max(len(others), 1))
    return torch.tensor(rates)


def region_overlap(binary_masks: torch.Tensor, rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Per mask: the fraction of its pixels inside the region (precision) and the fraction of the
    region's pixels it covers (recall)."""
    region = torch.zeros(binary_masks.shape[-2:], device=binary_masks.device)
    region[rows, cols] = 1.0
    inside = (binary_masks * region).flatten(1).sum(1)
    return inside / binary_masks.flatten(1).sum(1).clamp_min(1), inside / region.sum()
