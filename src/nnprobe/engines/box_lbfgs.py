"""Batched box-constrained L-BFGS in torch: N independent problems, one per row, stepped together.

For every row i of a batch, :func:`box_lbfgs` solves ``min f_i(x_i) subject to l <= x_i <= u``
with its own L-BFGS memory, step, counters and stopping state; every operation is a batched
tensor operation over the rows (no loop over rows), on the device and in the dtype of ``x0``.

Method: a projected quasi-Newton method with an epsilon-active set, the two-metric projection
of Bertsekas (1982), with the Newton block replaced by L-BFGS on the free variables as in the
projected quasi-Newton methods of Kim, Sra & Dhillon (2010):

* epsilon-active set (Bertsekas 1982): with ``w = |x - P(x - g)|_2`` and
  ``eps = min(EPS_ACTIVE, w)``, variable j is *active* if ``x_j <= l_j + eps`` and ``g_j > 0``
  or ``x_j >= u_j - eps`` and ``g_j < 0`` (it sits at, or next to, a bound its gradient
  pushes it through); the others are *free*.
* direction ``d = -(H_F g_F) - gamma g_A``: on the free variables the L-BFGS two-loop recursion
  (Nocedal & Wright 2006, Alg. 7.4) on the stored pairs ``(s, y)`` restricted to the free
  variables (a pair whose restricted curvature ``s_F.y_F`` is not positive is skipped), which
  is the secant model of the *reduced* Hessian whenever the active variables did not move; on
  the active ones a diagonal step (Bertsekas's D is diagonal there). ``gamma = s.y / y.y`` of
  the newest usable pair (the usual initial scaling, Nocedal & Wright 2006, Sec. 7.2).
* step: backtracking along the projected arc ``x(a) = P(x + a d)`` with the Armijo condition
  ``f(x(a)) <= f(x) + sigma g.(x(a) - x)`` (Bertsekas's Armijo rule on the arc), from ``a = 1`` (and
  ``a = min(1, 1/|d|)`` when no pair is stored yet, the first step of L-BFGS-B), shrinking by a
  safeguarded quadratic interpolation (factor in [0.1, 0.5]). With the epsilon-active set
  and a positive definite free block the projected arc is a descent path for small ``a``
  (a free variable that the projection clips near its bound moves against its gradient,
  so clipping it only helps), the iterates are feasible by construction (``P`` clamps them
  into the box), and Bertsekas shows that such a method identifies the active set of a
  nondegenerate minimiser after finitely many iterations.

Why not L-BFGS-B's generalized Cauchy point (Byrd, Lu, Nocedal & Zhu 1995): finding it is a
sequential scan over the sorted breakpoints of each row, which does not batch into a few
tensor operations; the projected arc above does. The stopping rules are L-BFGS-B's (as in
``scipy.optimize.minimize(method="L-BFGS-B")``): per row, ``max_iter`` accepted iterations,
``max_fun`` objective evaluations, ``(f_old - f) / max(|f_old|, |f|, 1) <= ftol`` and
``max_j |P(x - g) - x|_j <= gtol``.

Batching: one loop step evaluates the objective once for every running row, whatever its
phase (a row that backtracks evaluates its next trial while another row takes a new
step), so the loop needs no host synchronisation; every ``check_every`` steps it looks
(one synchronisation) whether rows are still running and drops finished rows from the batch.
The objective therefore receives the *indices* of its rows: ``objective(x, rows)`` with
``x`` of shape ``(n, ...)`` (``n <= N``) and ``rows`` the rows of ``x0`` they are, and
returns the ``n`` values; gradients come from ``torch.autograd``. Row i's result depends only
on ``f_i`` and ``x0[i]`` (up to floating-point reassociation in the objective). A step costs
one forward and backward pass of the running rows plus O(memory * m) work per row.

Precision: the Armijo and ftol tests compare objective values, so in float32 a row stops
(ftol) once its decrease falls below float32's resolution of ``|f|``; near a minimum that
leaves ``x`` about ``sqrt(2 eps |f| / lambda_min)`` away (6e-3 on a quadratic with
``f* = -150`` and smallest curvature 1). Use float64 where the minimiser itself matters.

References: D. P. Bertsekas. Projected Newton methods for optimization problems with simple
constraints. SIAM J. Control Optim. 20(2):221-246, 1982. D. Kim, S. Sra, I. S. Dhillon.
Tackling box-constrained optimization via a new projected quasi-Newton approach. SIAM J. Sci.
Comput. 32(6):3548-3563, 2010. R. H. Byrd, P. Lu, J. Nocedal, C. Zhu. A limited memory
algorithm for bound constrained optimization. SIAM J. Sci. Comput. 16(5):1190-1208, 1995.
J. Nocedal, S. J. Wright. Numerical Optimization, 2nd ed., Springer 2006, Sec. 7.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["STATUS", "BoxLBFGSResult", "box_lbfgs", "projected_gradient"]

#: Stop reasons, by code: ``BoxLBFGSResult.status[i]`` indexes this tuple.
STATUS = ("running", "gtol", "ftol", "max_iter", "max_fun", "line_search")
_RUNNING, _GTOL, _FTOL, _MAX_ITER, _MAX_FUN, _LINE_SEARCH = range(len(STATUS))

SIGMA = 1e-4
"""Armijo constant of the line search (sigma in (0, 1/2) in Bertsekas 1982; 1e-4 as in L-BFGS-B)."""
EPS_ACTIVE = 1e-3
"""Largest width of the epsilon-active band next to a bound (Bertsekas's epsilon)."""
MAX_BACKTRACKS = 20
"""Trials of one line search before its row restarts from steepest descent (or stops)."""

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BoxLBFGSResult:
    """Per-row results of :func:`box_lbfgs` for a batch of N problems.

    ``x`` (x0's shape) is the last accepted iterate of each row, inside the box; ``value``
    ``(N,)`` and ``grad`` (x0's shape) are the objective and its gradient there.
    ``iterations`` and ``evaluations`` ``(N,)`` count accepted steps and objective
    evaluations (the one at x0 included); ``status`` ``(N,)`` indexes :data:`STATUS`.
    """

    x: torch.Tensor
    value: torch.Tensor
    grad: torch.Tensor
    iterations: torch.Tensor
    evaluations: torch.Tensor
    status: torch.Tensor

    @property
    def converged(self) -> torch.Tensor:
        """True where a tolerance (gtol or ftol), not a budget or the line search, stopped the row."""
        return (self.status == _GTOL) | (self.status == _FTOL)

    @property
    def reasons(self) -> list[str]:
        """The stop reason of every row, as names from :data:`STATUS`."""
        return [STATUS[int(s)] for s in self.status]


def _project(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection onto the box ``[lo, hi]``: clamp each coordinate."""
    return torch.maximum(torch.minimum(x, hi), lo)


def projected_gradient(x: torch.Tensor, g: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``P(x - g) - x``: zero exactly at the stationary points of f on the box (L-BFGS-B's test)."""
    return _project(x - g, lo, hi) - x


def _bounds(x0: torch.Tensor, bound: float | torch.Tensor, name: str) -> torch.Tensor:
    """``bound`` broadcast to x0's shape, dtype and device, flattened to ``(N, m)``."""
    b = torch.as_tensor(bound, dtype=x0.dtype, device=x0.device)
    try:
        b = torch.broadcast_to(b, x0.shape)
    except RuntimeError:
        raise ValueError(
            f"{name} must be a number or a tensor broadcastable to x0's shape {tuple(x0.shape)}, "
            f"got shape {tuple(b.shape)}; give one bound per variable of a row, e.g. shape {tuple(x0.shape[1:])}"
        ) from None
    if torch.isnan(b).any():
        raise ValueError(f"{name} must not contain NaN (use -inf or inf for an unbounded variable)")
    return b.reshape(x0.shape[0], -1)


def _check(x0: torch.Tensor, lower, upper, max_iter: int, max_fun: int | None, memory: int, ftol: float,
           gtol: float, check_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise a ValueError naming what is wrong with the arguments; return the flat bounds."""
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating-point torch.Tensor of shape (N, ...), got {type(x0).__name__}"
                         + (f" of dtype {x0.dtype}" if isinstance(x0, torch.Tensor) else ""))
    if x0.ndim < 2 or x0.shape[0] == 0 or x0[0].numel() == 0:
        raise ValueError(f"x0 must have shape (N, ...) with one problem per row, N >= 1 and at least one "
                         f"variable per row, got {tuple(x0.shape)} (for N scalar problems pass x0[:, None])")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 must be finite, got NaN or infinite entries")
    for name, value, least in (("max_iter", max_iter, 1), ("memory", memory, 1), ("check_every", check_every, 1)):
        if int(value) != value or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value}")
    if max_fun is not None and (int(max_fun) != max_fun or max_fun < 1):
        raise ValueError(f"max_fun must be an integer >= 1 or None (no budget), got {max_fun}")
    for name, value in (("ftol", ftol), ("gtol", gtol)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 (0 disables the test), got {value}")
    lo, hi = _bounds(x0, lower, "lower"), _bounds(x0, upper, "upper")
    crossed = lo > hi
    if crossed.any():
        row, col = (int(i) for i in torch.nonzero(crossed)[0])
        raise ValueError(f"lower must be <= upper for every variable, got lower > upper at {int(crossed.sum())} "
                         f"variable(s) (first: row {row}, variable {col}: {float(lo[row, col]):.6g} > "
                         f"{float(hi[row, col]):.6g}); swap or fix the bounds")
    flat = x0.reshape(x0.shape[0], -1)
    outside = (flat < lo) | (flat > hi)
    if outside.any():
        worst = float(torch.maximum(lo - flat, flat - hi).max())
        raise ValueError(f"x0 must lie in the box [lower, upper], got {int(outside.sum())} entries outside "
                         f"(by up to {worst:.3g}); project it first, e.g. "
                         f"torch.maximum(torch.minimum(x0, upper), lower) or x0.clamp(lower, upper)")
    return lo, hi


def _evaluate(objective: Objective, x: torch.Tensor, shape: tuple[int, ...], rows: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Values ``(n,)`` and gradients ``(n, m)`` of the objective at the flat points ``x``, by autograd."""
    with torch.enable_grad():
        xp = x.detach().view(x.shape[0], *shape).requires_grad_(True)
        values = objective(xp, rows)
        if not isinstance(values, torch.Tensor) or values.shape != (x.shape[0],) or not values.is_floating_point():
            got = f"shape {tuple(values.shape)}" if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"objective(x, rows) must return one floating-point value per row, shape "
                             f"({x.shape[0]},), got {got}; reduce over every dimension but the first")
        (grad,) = torch.autograd.grad(values.sum(), xp, allow_unused=True)
    grad = torch.zeros_like(xp) if grad is None else grad
    return values.detach().to(x.dtype), grad.detach().reshape(x.shape).to(x.dtype)


def _direction(x, g, lo, hi, S, Y, gamma_full) -> tuple[torch.Tensor, torch.Tensor]:
    """The projected quasi-Newton direction ``d`` ``(n, m)`` and its first trial step ``(n,)``.

    Free variables: the L-BFGS two-loop recursion on the pairs restricted to them (pairs
    without positive restricted curvature are skipped); epsilon-active variables: ``-gamma g``.
    """
    tiny = torch.finfo(x.dtype).eps
    eps = projected_gradient(x, g, lo, hi).norm(dim=1, keepdim=True).clamp(max=EPS_ACTIVE)
    free = ~(((x <= lo + eps) & (g > 0)) | ((x >= hi - eps) & (g < 0)))
    free = free.to(x.dtype)
    Sf, Yf = S * free[:, None], Y * free[:, None]  # the pairs restricted to the free variables
    sy, yy = torch.linalg.vecdot(Sf, Yf), torch.linalg.vecdot(Yf, Yf)  # (n, memory)
    usable = (sy > tiny * yy) & (yy > 0)
    rho = torch.where(usable, sy.reciprocal(), 0.0)
    order = torch.arange(1, S.shape[1] + 1, device=x.device)
    newest = (usable * order).argmax(dim=1, keepdim=True)  # the newest usable pair sets gamma
    gamma = (sy / yy).gather(1, newest).squeeze(1)
    gamma = torch.where(usable.any(dim=1), gamma, gamma_full)
    fresh = torch.isnan(gamma)  # no pair at all: steepest descent, unit first step (L-BFGS-B)
    gamma = torch.where(fresh, 1.0, gamma)
    rhos, ss, ys = rho.unbind(1), Sf.unbind(1), Yf.unbind(1)
    q, alphas = g * free, [None] * len(rhos)
    for k in reversed(range(len(rhos))):
        alphas[k] = rhos[k] * torch.linalg.vecdot(ss[k], q)
        q = torch.addcmul(q, alphas[k][:, None], ys[k], value=-1)
    r = gamma[:, None] * q
    for k in range(len(rhos)):
        beta = rhos[k] * torch.linalg.vecdot(ys[k], r)
        r = torch.addcmul(r, (alphas[k] - beta)[:, None], ss[k])
    d = torch.addcmul(r, gamma[:, None] * g, 1 - free).neg_()
    norm = d.norm(dim=1)
    step = torch.where(fresh & (norm > 1), 1.0 / norm.clamp(min=tiny), 1.0)
    return d, step


@dataclass
class _State:
    """The working set: the running rows' iterates, memories and counters (all leading dim n)."""

    rows: torch.Tensor
    x: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    d: torch.Tensor
    step: torch.Tensor
    S: torch.Tensor
    Y: torch.Tensor
    gamma_full: torch.Tensor
    iterations: torch.Tensor
    evaluations: torch.Tensor
    backtracks: torch.Tensor
    status: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def select(self, keep: torch.Tensor) -> _State:
        return _State(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def _step(state: _State, objective: Objective, shape, max_iter: int, max_fun: int | None, ftol: float,
          gtol: float) -> None:
    """One batched loop step: one trial evaluation per row, then accept or backtrack, in place."""
    st = state
    running = st.status == _RUNNING
    xt = _project(st.x + st.step[:, None] * st.d, st.lo, st.hi)
    ft, gt = _evaluate(objective, xt, shape, st.rows)
    st.evaluations += running.long()
    dx = xt - st.x
    slope = (st.g * dx).sum(1)  # g.(x(a) - x): the decrease the Armijo test asks a share of
    ok = running & torch.isfinite(ft) & (ft <= st.f + SIGMA * slope.clamp(max=0))
    ok &= torch.isfinite(gt).all(dim=1)

    # accepted rows: store the pair (if curved), move, test convergence
    dg = gt - st.g
    sy, yy = (dx * dg).sum(1), (dg * dg).sum(1)
    keep_pair = ok & (sy > torch.finfo(st.x.dtype).eps * yy) & (yy > 0)
    shifted = keep_pair[:, None, None]
    st.S = torch.where(shifted, torch.cat([st.S[:, 1:], dx[:, None]], 1), st.S)
    st.Y = torch.where(shifted, torch.cat([st.Y[:, 1:], dg[:, None]], 1), st.Y)
    st.gamma_full = torch.where(keep_pair, sy / torch.where(keep_pair, yy, 1.0), st.gamma_full)
    f_old = st.f
    st.x = torch.where(ok[:, None], xt, st.x)
    st.f = torch.where(ok, ft, st.f)
    st.g = torch.where(ok[:, None], gt, st.g)
    st.iterations += ok.long()
    scale = torch.maximum(torch.maximum(f_old.abs(), st.f.abs()), torch.ones_like(st.f))
    pg = projected_gradient(st.x, st.g, st.lo, st.hi).abs().amax(dim=1)
    status = st.status
    status = torch.where(ok & (f_old - st.f <= ftol * scale), _FTOL, status)
    status = torch.where(ok & (pg <= gtol), _GTOL, status)

    # rejected rows: shrink the step by safeguarded quadratic interpolation on the arc
    bad = running & ~ok
    curv = ft - st.f - slope
    t = torch.where(curv > 0, -slope / (2 * torch.where(curv > 0, curv, 1.0)), 0.5).clamp(0.1, 0.5)
    t = torch.where(torch.isfinite(ft) & torch.isfinite(t), t, 0.1)
    st.backtracks = torch.where(bad, st.backtracks + 1, 0)
    failed = bad & (st.backtracks >= MAX_BACKTRACKS)
    restart = failed & ~torch.isnan(st.gamma_full)  # had curvature pairs: drop them, try steepest descent
    status = torch.where(failed & ~restart, _LINE_SEARCH, status)
    st.S = torch.where(restart[:, None, None], 0.0, st.S)
    st.Y = torch.where(restart[:, None, None], 0.0, st.Y)
    st.gamma_full = torch.where(restart, math.nan, st.gamma_full)
    st.backtracks = torch.where(restart, 0, st.backtracks)

    # budgets, then a new direction where a step was taken or the memory dropped
    status = torch.where((status == _RUNNING) & (st.iterations >= max_iter), _MAX_ITER, status)
    if max_fun is not None:
        status = torch.where((status == _RUNNING) & (st.evaluations >= max_fun), _MAX_FUN, status)
    st.status = status
    renew = (ok | restart) & (status == _RUNNING)
    d, step = _direction(st.x, st.g, st.lo, st.hi, st.S, st.Y, st.gamma_full)
    st.d = torch.where(renew[:, None], d, st.d)
    step = torch.where(renew, step, torch.where(bad, st.step * t, st.step))
    st.step = torch.where(status == _RUNNING, step, 0.0)  # a stopped row is evaluated where it stays


@torch.no_grad()
def box_lbfgs(
    objective: Objective,
    x0: torch.Tensor,
    lower: float | torch.Tensor = 0.0,
    upper: float | torch.Tensor = 1.0,
    *,
    max_iter: int = 100,
    max_fun: int | None = None,
    memory: int = 10,
    ftol: float = 2.220446049250313e-09,
    gtol: float = 1e-5,
    check_every: int = 8,
) -> BoxLBFGSResult:
    """Minimise ``f_i(x_i)`` subject to ``lower <= x_i <= upper`` for every row i of ``x0``, independently.

    Projected L-BFGS with an epsilon-active set and an Armijo search along the projected arc
    (Bertsekas 1982; Kim, Sra & Dhillon 2010): see the module docstring for the method.

    ``objective(x, rows)`` gets points ``x`` of shape ``(n, *x0.shape[1:])`` (``n <= N``: the
    rows still running, in increasing order) and ``rows`` ``(n,)``, the indices of those rows
    in ``x0``, and returns the values ``(n,)`` of ``f_rows[k](x[k])``; it must be
    differentiable by torch.autograd and must not mix rows. Index per-row data with ``rows``
    (``c[rows]``). ``lower`` and ``upper`` are numbers or tensors broadcastable to x0's shape
    (``-inf``/``inf`` for unbounded variables); ``x0`` must lie in the box.

    Stopping, per row (L-BFGS-B's rules, scipy's defaults for ``ftol`` and ``gtol``):
    ``max_iter`` accepted iterations, ``max_fun`` objective evaluations (None: no budget; the
    first evaluation counts), ``(f_old - f) / max(|f_old|, |f|, 1) <= ftol`` after a step,
    ``max_j |P(x - g) - x|_j <= gtol``, or a line search that fails twice in a row (the
    second time from steepest descent). A stopped row no longer changes. Runs on x0's device
    in x0's dtype; iterates stay inside the box exactly.
    """
    lo, hi = _check(x0, lower, upper, max_iter, max_fun, memory, ftol, gtol, check_every)
    n, shape, device = x0.shape[0], tuple(x0.shape[1:]), x0.device
    x = x0.detach().reshape(n, -1).clone()
    rows = torch.arange(n, device=device)
    f, g = _evaluate(objective, x, shape, rows)
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    status = torch.where(projected_gradient(x, g, lo, hi).abs().amax(dim=1) <= gtol, _GTOL, zeros)
    if max_fun is not None and max_fun <= 1:
        status = torch.where(status == _RUNNING, _MAX_FUN, status)
    m = x.shape[1]
    S = torch.zeros(n, memory, m, dtype=x.dtype, device=device)
    gamma_full = torch.full((n,), math.nan, dtype=x.dtype, device=device)
    d, step = _direction(x, g, lo, hi, S, S, gamma_full)
    step = torch.where(status == _RUNNING, step, 0.0)
    st = _State(rows, x, f, g, d, step, S, S.clone(), gamma_full, zeros.clone(), zeros + 1, zeros.clone(),
                status, lo, hi)
    out = {name: getattr(st, name).clone() for name in ("x", "f", "g", "iterations", "evaluations", "status")}

    def write_back(part: _State) -> None:
        for name, value in out.items():
            value[part.rows] = getattr(part, name)

    steps = 0
    while True:
        if steps % check_every == 0:  # the only host synchronisation of the loop
            running = st.status == _RUNNING
            alive = int(running.sum())
            if alive == 0:
                break
            if alive <= 0.75 * st.rows.numel():  # drop finished rows from the batch
                write_back(st.select(~running))
                st = st.select(running)
        _step(st, objective, shape, max_iter, max_fun, ftol, gtol)
        steps += 1
    write_back(st)
    return BoxLBFGSResult(out["x"].view(x0.shape), out["f"], out["g"].view(x0.shape), out["iterations"],
                          out["evaluations"], out["status"])
