"""Class-wise predictive patterns (Zhao, Ma, Wang, Bailey, Li & Jiang 2021, "What Do Deep Nets
Learn? Class-wise Patterns Revealed in the Input Space", arXiv:2101.06898).

For every class ``c`` a mask ``m_c`` over a canvas image ``x_c`` of that class is optimised so
that the canvas pixels under the mask, pasted on images of the *other* classes,
``x' = (1 - m_c) * x + m_c * x_c``, are classified as ``c``; the loss is the cross-entropy
towards ``c`` plus ``l1 * mean(m_c)``. The top-k mask pixels (about 5% of the image) form the
pattern, and its predictive power (:func:`predictive_power`) is the rate at which it turns
*held-out* images of the other classes into ``c``. The network is never changed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ...engines.evaluation import network_logits, predict, to_unit

__all__ = ["paste", "choose_canvases", "top_k_mask", "class_patterns", "predictive_power", "region_overlap"]


def paste(images: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(1 - mask) * images + mask * canvas``; ``mask`` ``(..., 1, H, W)`` broadcasts over channels."""
    return (1 - mask) * images + mask * canvas


def choose_canvases(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Index of one canvas image per class: the image labelled ``c`` with the largest logit
    margin ``z_c - max_{k != c} z_k`` (the model's most confident example of the class)."""
    with torch.no_grad():
        logits = network_logits(model, images_u8)
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
    empty = [c for c, pool in enumerate(pools) if len(pool) == 0]
    if empty:
        raise ValueError(f"the search images hold no image of a class other than {empty} to paste the pattern on; "
                         "search on more images (config key visualize.patterns.search_images)")
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
            hits += (predict(model, x) == c).sum().item()
        rates.append(hits / max(len(others), 1))
    return torch.tensor(rates)


def region_overlap(binary_masks: torch.Tensor, rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Per mask: the fraction of its pixels inside the region (precision) and the fraction of the
    region's pixels it covers (recall)."""
    region = torch.zeros(binary_masks.shape[-2:], device=binary_masks.device)
    region[rows, cols] = 1.0
    inside = (binary_masks * region).flatten(1).sum(1)
    return inside / binary_masks.flatten(1).sum(1).clamp_min(1), inside / region.sum()
