"""Exact answers for the softmax models FC10(lambda) of Szegedy et al. (2013), Table 1 (issue 26, item 3).

For a linear softmax model both halves of Table 1 have exact answers that the workflow's
mini-batch training and L-BFGS attack only approximate:

* the trained model is the unique minimiser of a strictly convex objective,
  ``mean_i CE(W x_i + b, y_i) + lambda_eff * ||W||^2`` (:func:`fit_softmax_full_batch`, full-batch
  L-BFGS in float64), whose ``lambda_eff`` is the paper's lambda times a factor that depends on
  a convention the paper leaves open (:data:`DECAY_CONVENTIONS`, :func:`effective_decay`);
* the minimal distortion that makes it predict a target label l is a convex quadratic program,
  ``min ||r||^2  s.t.  z_l(x + r) >= z_k(x + r) for all k != l,  0 <= x + r <= 1``
  (:func:`minimal_target_distortion`, solved through its 9-dimensional dual, with a certified
  lower bound).

Nothing here is a code input of the workflow's rules: these are measurements of its protocol.

Reference: C. Szegedy, W. Zaremba, I. Sutskever, J. Bruna, D. Erhan, I. Goodfellow,
R. Fergus. Intriguing properties of neural networks. arXiv:1312.6199 (ICLR 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog, minimize
from scipy.special import logsumexp

__all__ = [
    "DECAY_CONVENTIONS",
    "SoftmaxFit",
    "TargetQP",
    "effective_decay",
    "fit_softmax_full_batch",
    "minimal_target_distortion",
    "softmax_objective",
]

DECAY_CONVENTIONS: dict[str, str] = {
    "mean_half": "(lambda/2) ||W||^2 on the mean cross-entropy (the workflow's 'classic')",
    "mean_full": "lambda ||W||^2 on the mean cross-entropy (the workflow's 'none')",
    "mean_units": "(lambda/k) ||W||^2 on the mean cross-entropy, k = 10 output units (the workflow's 'units')",
    "batch_sum_half": "(lambda/2) ||W||^2 on the cross-entropy summed over a mini-batch of m images",
    "batch_sum_full": "lambda ||W||^2 on the cross-entropy summed over a mini-batch of m images",
    "data_sum_half": "(lambda/2) ||W||^2 on the cross-entropy summed over all N training images",
    "data_sum_full": "lambda ||W||^2 on the cross-entropy summed over all N training images",
}
"""Where the paper's lambda can sit in the objective, by name (each a rescaling of lambda)."""


def effective_decay(lam: float, convention: str, batch_size: int = 128, n: int = 60_000,
                    num_classes: int = 10) -> float:
    """``lambda_eff`` such that ``convention`` is ``mean CE + lambda_eff ||W||^2`` (same minimiser).

    A penalty on a loss *summed* over m images is, per image, ``1/m`` of it: summed over a
    mini-batch of ``batch_size`` (SGD on sum CE_batch + penalty, every step), the expected
    objective per epoch is ``m * mean CE + penalty``, the same minimiser as ``mean CE +
    penalty / m``; summed over all ``n`` images, ``penalty / n``. ``"mean_units"`` divides by
    the number of output units ``num_classes``. See :data:`DECAY_CONVENTIONS`.
    """
    if convention not in DECAY_CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(DECAY_CONVENTIONS)}, got {convention!r}")
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lambda must be finite and >= 0, got {lam!r}")
    if batch_size < 1 or n < 1 or num_classes < 1:
        raise ValueError(f"batch_size, n and num_classes must be >= 1, got {batch_size}, {n}, {num_classes}")
    half = 0.5 if convention.endswith("_half") else 1.0
    per = {"mean": 1.0, "batch": 1.0 / batch_size, "data": 1.0 / n}[convention.split("_")[0]]
    if convention == "mean_units":
        return float(lam) / num_classes
    return float(lam) * half * per


def softmax_objective(params: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float, num_classes: int,
                      decay_bias: bool = False) -> tuple[float, np.ndarray]:
    """``mean_i CE(W x_i + b, y_i) + lam * (||W||^2 [+ ||b||^2 if decay_bias])`` and its gradient.

    ``params`` is ``W`` (d x K, row-major) followed by ``b`` (K); ``x`` (N x d) float64, ``y`` (N,)
    integer labels. Float64 throughout.
    """
    n, d = x.shape
    w = params[: d * num_classes].reshape(d, num_classes)
    b = params[d * num_classes:]
    z = x @ w + b
    lse = logsumexp(z, axis=1)
    loss = float(np.mean(lse - z[np.arange(n), y]))
    p = np.exp(z - lse[:, None])
    p[np.arange(n), y] -= 1.0
    p /= n
    gw, gb = x.T @ p + 2.0 * lam * w, p.sum(0)
    loss += lam * float(np.sum(w * w))
    if decay_bias:
        loss += lam * float(np.sum(b * b))
        gb = gb + 2.0 * lam * b
    return loss, np.concatenate([gw.ravel(), gb])


@dataclass(frozen=True)
class SoftmaxFit:
    """A full-batch fit: weights ``w`` (d x K), bias ``b`` (K), the objective at the end, the
    sup-norm of its gradient, the iterations and scipy's stopping message (a stop in the line
    search at a gradient of 1e-9 is float64's limit, not a failure: judge by ``grad_max``)."""

    w: np.ndarray
    b: np.ndarray
    objective: float
    grad_max: float
    iterations: int
    message: str

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b

    def error(self, x: np.ndarray, y: np.ndarray) -> float:
        """The fraction of ``x`` whose arg-max logit is not ``y``."""
        return float(np.mean(self.logits(x).argmax(1) != y))


def fit_softmax_full_batch(x: np.ndarray, y: np.ndarray, lam: float, *, num_classes: int = 10,
                           decay_bias: bool = False, start: SoftmaxFit | None = None, gtol: float = 1e-9,
                           max_iter: int = 20_000) -> SoftmaxFit:
    """The minimiser of :func:`softmax_objective` by full-batch L-BFGS-B (scipy), float64.

    The objective is strictly convex in W for ``lam > 0`` (and in b when it is decayed), so the
    answer does not depend on the start, the order of the data or an optimiser's settings: only
    on the data, ``lam`` and ``decay_bias``. ``start`` warm-starts (a fit at a nearby lambda).
    Stops when every gradient component is below ``gtol`` (or after ``max_iter`` iterations).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    d = x.shape[1]
    p0 = (np.zeros(d * num_classes + num_classes) if start is None
          else np.concatenate([start.w.ravel(), start.b]))
    res = minimize(softmax_objective, p0, args=(x, y, float(lam), num_classes, decay_bias), jac=True,
                   method="L-BFGS-B", options={"maxiter": max_iter, "maxfun": 2 * max_iter, "gtol": gtol,
                                               "ftol": 1e-16, "maxcor": 20})
    _, g = softmax_objective(res.x, x, y, float(lam), num_classes, decay_bias)
    return SoftmaxFit(res.x[: d * num_classes].reshape(d, num_classes).copy(), res.x[d * num_classes:].copy(),
                      float(res.fun), float(np.abs(g).max()), int(res.nit), str(res.message))


@dataclass(frozen=True)
class TargetQP:
    """The exact minimal perturbation of one image toward one target label (:func:`minimal_target_distortion`).

    ``r``: the primal solution recovered from the dual (box-feasible by construction);
    ``rms``: its RMS ``||r|| / sqrt(d)``; ``lower_rms``: a certified lower bound on the RMS of
    *every* perturbation that reaches the target (weak duality: ``sqrt(2 g(mu) / d)`` for the
    dual value g at the multipliers found); ``violation``: the largest amount by which ``r``
    misses a margin constraint (0 when it reaches the target's closure); ``mu`` the multipliers;
    ``feasible``: whether any point of the box reaches the target (a linear program; when not,
    ``rms`` and ``lower_rms`` are inf).
    """

    r: np.ndarray
    rms: float
    lower_rms: float
    violation: float
    mu: np.ndarray
    feasible: bool = True


def minimal_target_distortion(w: np.ndarray, b: np.ndarray, x: np.ndarray, target: int,
                              lower: float = 0.0, upper: float = 1.0, tol: float = 1e-13) -> TargetQP:
    """Exact minimal-distortion perturbation of a linear classifier toward ``target``, in a box.

    Solves ``min_r 1/2 ||r||^2  s.t.  a_k . r >= beta_k (k != l),  lower - x <= r <= upper - x``
    with ``a_k = w[:, l] - w[:, k]`` and ``beta_k = -(a_k . x + b_l - b_k)``: the smallest
    Euclidean change of ``x`` (inside the box) after which the logit of ``l`` is at least every
    other logit (the closure of the target's region; the paper's "f(x + r) = l" with ties).
    For a linear softmax model this *is* Szegedy et al.'s box-constrained problem, without the
    penalty's trade-off. Through its dual: for multipliers mu >= 0 the Lagrangian's minimiser
    over the box is ``r(mu) = clip(A^T mu, lower - x, upper - x)`` (separable per pixel) and the
    dual ``g(mu) = 1/2 ||r(mu)||^2 - mu . (A r(mu) - beta)`` is concave and differentiable with
    gradient ``beta - A r(mu)``. L-BFGS-B maximises g over mu >= 0 (K - 1 dimensions). Any mu
    gives a lower bound ``g(mu)`` on the optimum (weak duality); at the dual optimum ``r(mu)``
    is the primal optimum (strong duality: a convex QP with a feasible point). Whether the box
    holds a point of the target's region at all is a linear program (HiGHS), checked first.
    """
    w, b, x = (np.asarray(v, dtype=np.float64) for v in (w, b, x))
    x = x.ravel()
    d, k = w.shape
    if x.size != d or b.shape != (k,):
        raise ValueError(f"w must be (d, K), b (K,) and x d pixels; got {w.shape}, {b.shape}, {x.size}")
    if not 0 <= int(target) < k:
        raise ValueError(f"target must be a class in [0, {k}), got {target!r}")
    others = np.array([j for j in range(k) if j != int(target)])
    a = (w[:, [int(target)]] - w[:, others]).T  # (K-1, d)
    beta = -(a @ x + b[int(target)] - b[others])
    lo, hi = lower - x, upper - x

    def r_of(mu: np.ndarray) -> np.ndarray:
        return np.clip(a.T @ mu, lo, hi)

    def neg_dual(mu: np.ndarray) -> tuple[float, np.ndarray]:
        r = r_of(mu)
        g = 0.5 * float(r @ r) - float(mu @ (a @ r - beta))
        return -g, -(beta - a @ r)

    if np.all(beta <= 0):  # already (weakly) the target: nothing to move
        mu = np.zeros(k - 1)
    elif linprog(np.zeros(d), A_ub=-a, b_ub=-beta, bounds=list(zip(lo, hi)), method="highs").status == 2:
        return TargetQP(np.zeros(d), float("inf"), float("inf"), float(np.max(beta)), np.full(k - 1, np.inf), False)
    else:
        res = minimize(neg_dual, np.zeros(k - 1), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (k - 1),
                       options={"maxiter": 10_000, "maxfun": 20_000, "gtol": tol, "ftol": 1e-16})
        mu = res.x
    r = r_of(mu)
    g = -neg_dual(mu)[0]
    violation = float(max(0.0, np.max(beta - a @ r)))
    return TargetQP(r, float(np.sqrt(r @ r / d)), float(np.sqrt(max(2.0 * g, 0.0) / d)), violation, mu)
