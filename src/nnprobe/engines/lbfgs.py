"""Minimal adversarial examples by box-constrained L-BFGS (Szegedy et al. 2013, Sec. 4.1).

Conventions: images are raw pixels in ``[0, 1]`` of any shape ``(N, ...)``; the box
``[0, 1]^m`` and the distortion are in the paper's pixel units. Distortion is the per-example
RMS ``sqrt(sum((x' - x)^2) / n)``, ``n`` the number of pixels (:func:`rms_distortion`), the
paper's measure in its Tables 1-3. A model is evaluated in eval mode (its mode is restored
after) and never changed.

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).
Uses ``scipy.optimize`` (a pinned dependency) for L-BFGS-B, or, with ``solver="torch"``, the
batched projected L-BFGS of :mod:`nnprobe.engines.box_lbfgs` (one problem per example).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn
from torch.nn import functional as F

from .box_lbfgs import box_lbfgs

__all__ = [
    "AdversarialResult",
    "DEFAULT_C_GRID",
    "halving_c_grid",
    "rms_distortion",
    "minimal_adversarial_lbfgs",
    "minimal_adversarial_any_target",
    "check_images",
    "check_labels",
    "check_attack_inputs",
    "predicted",
]


def rms_distortion(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example RMS distortion ``sqrt(sum_i (x'_i - x_i)^2 / n)``, ``n`` pixels per example.

    Szegedy et al. (2013), Table 1: pixels in [0, 1], so Gaussian noise of stddev s has
    distortion about s. Inputs ``(N, ...)``; returns ``(N,)`` in x's floating dtype.
    """
    x_adv, x = torch.as_tensor(x_adv), torch.as_tensor(x)
    if x_adv.shape != x.shape or x.ndim < 1:
        raise ValueError(
            f"x_adv and x must have the same shape (N, ...), got {tuple(x_adv.shape)} and {tuple(x.shape)}"
        )
    dtype = x.dtype if x.is_floating_point() else torch.float64
    diff = (x_adv.to(dtype) - x.to(dtype)).reshape(x.shape[0], -1)
    return diff.pow(2).mean(dim=1).sqrt()


@dataclass(frozen=True)
class AdversarialResult:
    """Targeted adversarial examples for a batch ``x`` of N images.

    ``adversarial`` has x's shape, dtype and device. ``success[i]`` is True iff the model
    classifies ``adversarial[i]`` as ``target[i]`` (checked on the returned tensor).
    ``distortion[i]`` is its RMS distortion (:func:`rms_distortion`), NaN where ``success``
    is False (there ``adversarial[i]`` is the last attempt, not an adversarial example).
    ``c[i]`` is the c of the kept L-BFGS solution (inf if ``x[i]`` was already classified as
    its target, NaN for failures and for the gradient baseline).
    """

    adversarial: torch.Tensor
    target: torch.Tensor
    success: torch.Tensor
    distortion: torch.Tensor
    c: torch.Tensor

    @property
    def failed(self) -> torch.Tensor:
        """Indices of the examples that never reached their target."""
        return torch.nonzero(~self.success).flatten()


DEFAULT_C_GRID: tuple[float, ...] = tuple(2.0**k for k in range(6, -13, -1))
"""c = 64, 32, ..., 2^-12 (19 values): the coarse search of :func:`minimal_adversarial_lbfgs`."""


def halving_c_grid(c_max: float, c_min: float) -> tuple[float, ...]:
    """``c_max, c_max/2, c_max/4, ...`` down to the last value >= ``c_min`` (a coarse c search)."""
    if not (math.isfinite(c_max) and math.isfinite(c_min) and 0 < c_min <= c_max):
        raise ValueError(f"need 0 < c_min <= c_max (finite), got c_min={c_min}, c_max={c_max}")
    steps = int(math.floor(math.log2(c_max / c_min) + 1e-9))
    return tuple(c_max / 2.0**k for k in range(steps + 1))


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Raise unless ``x`` is a non-empty float tensor ``(N, ...)`` of pixels in [0, 1], naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of pixels in [0, 1], got {_describe(x)}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1 or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must hold pixels in [0, 1] (divide uint8 images by 255), got values in [{lo}, {hi}]")


def _describe(x: object) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of dtype {x.dtype} and shape {tuple(x.shape)}"
    return type(x).__name__


def check_labels(y: torch.Tensor, n: int, name: str, num_classes: int | None = None) -> torch.Tensor:
    """``y`` as int64 if it is ``n`` integer labels (in ``[0, num_classes)`` when given), else raise naming ``name``."""
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype == torch.bool or y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be {n} integer class labels of shape ({n},), got {_describe(y)}")
    if num_classes is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()


@torch.no_grad()
def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The argmax class of ``model(x)``, without gradients (the model's mode as it is)."""
    return model(x).argmax(dim=1)


@torch.no_grad()
def _margin(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logit[target] - max over the other classes; > 0 iff the prediction is ``target`` (no tie)."""
    logits = model(x)
    t = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.scatter(1, target[:, None], float("-inf")).amax(dim=1)
    return t - others


@torch.no_grad()
def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of logits of ``model`` on ``x[:1]``, evaluated in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return int(model(x[:1]).shape[1])
    finally:
        model.train(was_training)


def check_attack_inputs(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Check a model, images and target labels of an attack; return the targets on x's device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, "x")
    return check_labels(target, x.shape[0], "target", _num_classes(model, x)).to(x.device)


def _attack_loss(logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-example ``loss_f = T * CE(z / T, l)``: the cross-entropy of the logits at temperature T."""
    return temperature * F.cross_entropy(logits / temperature, target, reduction="none")


def _lbfgsb_solve(
    model64: nn.Module,
    x0: torch.Tensor,
    start: torch.Tensor,
    target: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    memory: int,
    temperature: float,
) -> torch.Tensor:
    """One L-BFGS-B problem: min over x' in [0,1]^(N*m) of sum_i c_i |x'_i - x0_i|^2 + loss_f(x'_i, t_i).

    The N per-example problems are independent, so their sum is minimised by minimising each;
    one L-BFGS-B run over the concatenated variables solves them together, with every
    objective and gradient evaluation one torch forward/backward of the whole batch.
    """
    shape, device, dtype = x0.shape, x0.device, next(model64.parameters()).dtype
    x0 = x0.to(dtype)
    c = c.to(device, dtype)

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        xp = torch.from_numpy(z).to(device, dtype).view(shape).requires_grad_(True)
        sq = (xp - x0).pow(2).flatten(1).sum(dim=1)
        value = _attack_loss(model64(xp), target, temperature).sum() + (c * sq).sum()
        (grad,) = torch.autograd.grad(value, xp)
        return float(value.detach()), grad.detach().to("cpu", torch.float64).numpy().ravel()

    z0 = start.detach().to("cpu", torch.float64).numpy().ravel().clip(0.0, 1.0)
    n = z0.size
    res = minimize(
        objective,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(np.zeros(n), np.ones(n)),
        # The iteration budget, not the tolerances, ends a solve: the tolerances are for the
        # *sum* over the batch, so loose ones would stop easy examples' partners early.
        options={
            "maxiter": int(max_iter),
            "maxfun": 2 * int(max_iter) + 20,
            "maxcor": int(memory),
            "ftol": 1e-15,
            "gtol": 1e-12,
        },
    )
    return torch.from_numpy(res.x).view(shape).to(start.device, start.dtype).clamp_(0, 1)


def _box_lbfgs_solve(
    model64: nn.Module,
    x0: torch.Tensor,
    start: torch.Tensor,
    target: torch.Tensor,
    c: torch.Tensor,
    max_iter: int,
    memory: int,
    temperature: float,
) -> torch.Tensor:
    """The N problems of :func:`_lbfgsb_solve`, each its own row of :func:`box_lbfgs` (own memory,
    line search and stopping), on the model's device and in its dtype, with the same budgets and
    tolerances as the scipy call, now per example."""
    dtype = next(model64.parameters()).dtype
    x0, c = x0.to(dtype), c.to(x0.device, dtype)

    def objective(xp: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        sq = (xp - x0[rows]).pow(2).flatten(1).sum(dim=1)
        return _attack_loss(model64(xp), target[rows], temperature) + c[rows] * sq

    res = box_lbfgs(objective, start.detach().to(dtype).clamp(0, 1), 0.0, 1.0, max_iter=max_iter,
                    max_fun=2 * max_iter + 20, memory=memory, ftol=1e-15, gtol=1e-12)
    return res.x.to(start.dtype).clamp_(0, 1)


_SOLVERS = {"scipy": _lbfgsb_solve, "torch": _box_lbfgs_solve}


def minimal_adversarial_lbfgs(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    max_iter: int = 100,
    bisection_steps: int = 8,
    refine_steps: int = 20,
    batch_size: int = 512,
    memory: int = 10,
    dtype: torch.dtype = torch.float64,
    boundary_margin: float = 1e-4,
    temperature: float = 0.03,
    solver: str = "scipy",
) -> AdversarialResult:
    """Minimal targeted adversarial examples by box-constrained L-BFGS (Szegedy et al. 2013, Sec. 4.1).

    For an image x (pixels in [0, 1]^m) and a target label l, the paper minimises
    ``c |r| + loss_f(x + r, l)`` subject to ``x + r in [0, 1]^m``, with a line search over c
    for the smallest distortion whose minimiser is classified as l; ``loss_f`` is only
    required to be "a continuous loss function associated with the classifier". We minimise

        c * |r|_2^2 + loss_f(x + r, l)    subject to  0 <= x + r <= 1,

    the *squared* L2 norm, as later implementations of the method do: it is smooth at r = 0,
    so L-BFGS-B needs no special care there, and it changes only the parametrisation of the
    trade-off, not its points (a stationary point of ``c |r| + loss_f`` with r != 0 is one of
    ``c' |r|^2 + loss_f`` with ``c' = c / (2 |r|)``), so the search over c reaches the same
    examples. The box is exact: scipy's L-BFGS-B (Byrd et al. 1995) with bounds [0, 1] on
    every pixel.

    ``loss_f`` is the cross-entropy of the model's logits z at a temperature T
    (``temperature``): ``loss_f(x', l) = T * CE(z(x') / T, l)``. T = 1 is the classifier's
    own loss. CE equals ``softplus(logsumexp_{j != l} z_j - z_l)``, a *soft* maximum over all
    other classes, so at T = 1 the minimiser also pushes down every class that has some
    probability and is not the point of the target region closest to x; as T -> 0 the loss
    tends to the hinge ``max(0, max_{j != l} z_j - z_l)``, whose penalised minimiser *is*
    that closest point for small enough c. The default T = 0.03 keeps the objective smooth
    (what L-BFGS needs) and the answer minimal in practice. Measured on 60 examples of
    softmax regression over 8x8 digits, where the exact minimum is a quadratic program, the
    mean (max) excess over the exact minimum was 2.7% (8.7%) at T = 1, 0.5% (2.1%) at
    T = 0.3, 0.16% (0.7%) at T = 0.1 and 0.05% (0.2%) at T = 0.03; at T = 1 the result was
    above a fine-step iterative gradient attack on 39 of the 60 examples, at T <= 0.3 on
    none. The hinge itself (tried) is not smooth: L-BFGS stalls at its kinks, and on
    FC100-100-10 over MNIST 1 to 2 of 100 examples came out far (up to 0.02 RMS) above the
    gradient attack; at T = 0.1, 0.03 and 0.01 none did (mean RMS 0.047, the gradient
    attack's 0.051).

    Batching: the per-example problems are independent, so the problem of a batch is one
    L-BFGS-B run over the concatenation of all its examples' pixels whose objective is the
    sum of the per-example objectives (each with its own c). Its minimiser is the tuple of
    per-example minimisers; the gradient of the whole batch is one torch forward/backward (on
    the model's device, in ``dtype``: float64 by default, on a copy of the model, so that the
    line searches are not limited by float32 rounding). The price of batching is that the
    L-BFGS curvature memory and line search are shared by the batch (on the digits the
    batched and one-example-at-a-time answers agreed to 1e-7 in RMS distortion).

    ``solver``: ``"scipy"`` (default) runs scipy's L-BFGS-B on the CPU as above; ``"torch"``
    runs :func:`~nnprobe.engines.box_lbfgs.box_lbfgs` on the model's device, every example its
    own problem (own c, L-BFGS memory, line search and stopping; projected L-BFGS with an
    epsilon-active set, Bertsekas 1982) with the same ``max_iter``, ``2 * max_iter + 20``
    evaluations and tolerances, per example. It follows the same search over c. Measured on 200
    MNIST-sized (28x28 digits) examples of a 784-100-100-10 sigmoid MLP (bench/lbfgs.py, CPU):
    same successes, mean distortion 0.1% below scipy's, per example up to 4% below the batched
    scipy run; on the 8 examples farthest apart, scipy run one example at a time gave the torch
    solver's distortions (to 5 digits): the gap is the batched run's shared iterations.

    Search over c, per example (larger c = smaller perturbation):

    1. coarse: c runs down ``c_grid`` (default 64, 32, ..., 2^-12: halving); each example
       stops at its first c whose solution the model classifies as l. Every solve is
       warm-started from the example's previous solution.
    2. bisection: ``bisection_steps`` geometric bisections of c between the last failing
       and the first succeeding c (doubling c when the first grid value already succeeded),
       warm-started from the best success.
    3. refinement: ``refine_steps`` bisections of t in [0, 1] on the segment x + t r* of the
       best solution r*, keeping the smallest t still classified as l with a logit margin of
       at least ``boundary_margin`` (the segment stays in the box, which is convex). This
       moves the example onto the decision boundary along its own direction (the minimiser
       lies a little beyond it, where the loss still pulls); ``refine_steps=0`` skips it.

    Among all successful solutions the one with the smallest RMS distortion is kept. The
    model (in its own dtype) decides success on the returned tensor. Examples already
    classified as l are returned unchanged (distortion 0, c = inf).

    Iteration budget: each solve runs at most ``max_iter`` L-BFGS-B iterations (and
    ``2 * max_iter + 20`` objective evaluations), with tolerances too small to stop it
    earlier unless the batch has converged; an example takes part in at most
    ``len(c_grid) + bisection_steps`` solves (defaults: 19 + 8 = 27 solves, at most 2,700
    iterations), plus ``refine_steps`` forward passes. Examples are processed in chunks of
    ``batch_size``. Examples whose target no c of the grid reached are reported in
    ``result.failed`` (``success`` False, distortion NaN).
    """
    target = check_attack_inputs(model, x, target)
    c_grid = [float(c) for c in c_grid]
    if not c_grid or any(not (math.isfinite(c) and c > 0) for c in c_grid):
        raise ValueError(f"c_grid must be a non-empty sequence of positive finite values, got {c_grid}")
    if any(a <= b for a, b in zip(c_grid[:-1], c_grid[1:])):
        raise ValueError(f"c_grid must be strictly decreasing (from large c, small perturbations), got {c_grid}")
    for name, value in (("max_iter", max_iter), ("batch_size", batch_size), ("memory", memory)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (1 = the model's cross-entropy), got {temperature}")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {sorted(_SOLVERS)}, got {solver!r}")
    if bisection_steps < 0 or refine_steps < 0:
        raise ValueError(f"bisection_steps and refine_steps must be >= 0, got {bisection_steps}, {refine_steps}")
    was_training = model.training
    model.eval()
    try:
        model64 = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
        parts = [
            _lbfgs_chunk(
                model,
                model64,
                x[s : s + batch_size],
                target[s : s + batch_size],
                c_grid,
                max_iter,
                bisection_steps,
                refine_steps,
                memory,
                boundary_margin,
                temperature,
                _SOLVERS[solver],
            )
            for s in range(0, x.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return AdversarialResult(*(torch.cat(items) for items in zip(*parts)))


def _lbfgs_chunk(
    model: nn.Module,
    model64: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    c_grid: list[float],
    max_iter: int,
    bisection_steps: int,
    refine_steps: int,
    memory: int,
    boundary_margin: float,
    temperature: float,
    solve: Callable[..., torch.Tensor] = _lbfgsb_solve,
) -> tuple[torch.Tensor, ...]:
    n, device = x.shape[0], x.device
    best = x.clone()
    best_d = torch.full((n,), math.inf, dtype=torch.float64, device=device)
    c_best = torch.full((n,), math.nan, dtype=torch.float64, device=device)
    already = predicted(model, x) == target
    best_d[already] = 0.0
    c_best[already] = math.inf

    def attempt(idx: torch.Tensor, start: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve for examples ``idx`` at per-example ``c``; keep improvements; return (solution, ok)."""
        sol = solve(model64, x[idx], start, target[idx], c, max_iter, memory, temperature)
        ok = predicted(model, sol) == target[idx]
        d = rms_distortion(sol, x[idx]).double()
        better = ok & (d < best_d[idx])
        best[idx[better]] = sol[better]
        best_d[idx[better]] = d[better]
        c_best[idx[better]] = c.to(c_best)[better]
        return sol, ok

    # 1. coarse search down the grid, warm-started from each example's previous solution
    current = x.clone()
    c_lo = torch.full((n,), math.nan, dtype=torch.float64, device=device)  # largest c that succeeded
    c_hi = torch.full((n,), math.inf, dtype=torch.float64, device=device)  # smallest c that failed above it
    active = ~already
    for c in c_grid:
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        sol, ok = attempt(idx, current[idx], torch.full((idx.numel(),), c, dtype=torch.float64))
        current[idx] = sol
        c_lo[idx[ok]] = c
        c_hi[idx[~ok]] = c
        active[idx[ok]] = False

    # 2. geometric bisection of c between the last failure and the first success
    found = ~already & torch.isfinite(best_d)
    idx = torch.nonzero(found).flatten()
    for _ in range(bisection_steps if idx.numel() else 0):
        lo, hi = c_lo[idx], c_hi[idx]
        mid = torch.where(torch.isfinite(hi), (lo * hi).sqrt(), lo * 2)
        _, ok = attempt(idx, best[idx], mid.cpu())
        c_lo[idx] = torch.where(ok, mid, lo)
        c_hi[idx] = torch.where(ok, hi, mid)

    # 3. move along the best perturbation to the decision boundary
    if refine_steps and idx.numel():
        x0, delta = x[idx], best[idx] - x[idx]
        shape = (-1,) + (1,) * (x.ndim - 1)
        t_lo = torch.zeros(idx.numel(), dtype=x.dtype, device=device)
        t_hi = torch.ones(idx.numel(), dtype=x.dtype, device=device)
        for _ in range(refine_steps):
            t = (t_lo + t_hi) / 2
            ok = _margin(model, (x0 + t.view(shape) * delta).clamp(0, 1), target[idx]) >= boundary_margin
            t_hi = torch.where(ok, t, t_hi)
            t_lo = torch.where(ok, t_lo, t)
        best[idx] = (x0 + t_hi.view(shape) * delta).clamp(0, 1)

    # Failures: return the last attempt (closest to the target) for inspection.
    failed = ~already & ~found
    best[failed] = current[failed]
    success = predicted(model, best) == target
    distortion = rms_distortion(best, x).double()
    distortion[~success] = math.nan
    c_best[~success] = math.nan
    return best, target, success, distortion, c_best


def minimal_adversarial_any_target(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, **kwargs
) -> AdversarialResult:
    """The smallest-distortion L-BFGS adversarial example over all targets ``l != label``.

    Runs :func:`minimal_adversarial_lbfgs` (with ``kwargs``) for every wrong label of every
    example, in one batched call, and keeps per example the successful target with the
    smallest distortion: the "minimum distortion to reach 0% accuracy" of Table 1 is the
    mean of this over the attacked set. ``result.target`` holds the chosen targets.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, "x")
    num_classes = _num_classes(model, x)
    labels = check_labels(labels, x.shape[0], "labels", num_classes).to(x.device)
    n, k = x.shape[0], num_classes - 1
    offsets = torch.arange(1, num_classes, device=x.device)
    targets = (labels[:, None] + offsets[None, :]) % num_classes  # (N, K): every wrong label
    res = minimal_adversarial_lbfgs(model, x.repeat_interleave(k, dim=0), targets.flatten(), **kwargs)
    d = torch.where(res.success, res.distortion, torch.full_like(res.distortion, math.inf)).view(n, k)
    pick = d.argmin(dim=1) + torch.arange(n, device=x.device) * k
    return AdversarialResult(
        res.adversarial[pick], res.target[pick], res.success[pick], res.distortion[pick], res.c[pick]
    )
