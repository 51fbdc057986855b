"""BadNets backdoors (Gu, Dolan-Gavitt & Garg 2017): a trigger patch and a poisoned training set.

A small white square in the bottom-right corner on a fraction of the training images,
relabelled to a target class; :func:`trigger_success` measures the attack on test images of
the other classes. Images are uint8 or [0, 1] float ``(N, C, H, W)`` tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from ...engines.evaluation import accuracy

__all__ = ["trigger_region", "add_trigger", "badnets_poison", "trigger_success"]


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
