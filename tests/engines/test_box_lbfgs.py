"""The batched box-constrained L-BFGS in torch (nnprobe.engines.box_lbfgs).

Quadratics whose box minimisers are known by construction (KKT conditions), row independence,
feasibility and budgets, and agreement with scipy's L-BFGS-B on the minimal-adversarial problems
of Szegedy et al. (2013) on a small network trained on scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.optimize import Bounds, minimize
from torch import nn

from nnprobe.engines.box_lbfgs import STATUS, box_lbfgs
from nnprobe.engines.classifier import ClassifierTask
from nnprobe.engines.lbfgs import (
    _attack_loss,
    minimal_adversarial_lbfgs,
    rms_distortion,
)
from nnprobe.engines.training import OptimizerSpec, TrainOptions, fit
from nnprobe.models.szegedy import fc_sigmoid

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- quadratics


def box_quadratics(n: int, m: int, lo: torch.Tensor, hi: torch.Tensor, seed: int = 0):
    """n strictly convex quadratics ``x'H_i x / 2 - b_i'x`` with known minimisers on ``[lo, hi]``.

    Rows alternate dense (random eigenvectors, eigenvalues 1 to 100) and diagonal Hessians.
    The minimiser x* has some coordinates at a finite lower bound, some at a finite upper
    bound, the rest strictly inside; the gradient ``g* = H x* - b`` is chosen 0 on the inside
    coordinates, > 0 at lower bounds and < 0 at upper bounds, so x* satisfies the KKT
    conditions of a strictly convex problem and is its unique minimiser: ``b = H x* - g*``.
    """
    g = torch.Generator().manual_seed(seed)
    eig = torch.logspace(0, 2, m, dtype=F64)[torch.argsort(torch.rand(n, m, generator=g), dim=1)]
    q = torch.linalg.qr(torch.randn(n, m, m, generator=g, dtype=F64)).Q
    q[1::2] = torch.eye(m, dtype=F64)
    h = q @ torch.diag_embed(eig) @ q.transpose(1, 2)
    h = (h + h.transpose(1, 2)) / 2
    kind = torch.randint(0, 3, (n, m), generator=g)  # 0: at lower, 1: inside, 2: at upper
    kind = torch.where((kind == 0) & ~torch.isfinite(lo), 1, kind)
    kind = torch.where((kind == 2) & ~torch.isfinite(hi), 1, kind)
    width = torch.where(torch.isfinite(hi - lo), hi - lo, torch.full_like(lo, 4.0))
    base = torch.where(torch.isfinite(lo), lo, torch.where(torch.isfinite(hi), hi - width, -2.0))
    inside = base + width * (0.1 + 0.8 * torch.rand(n, m, generator=g, dtype=F64))
    x_star = torch.where(kind == 0, lo, torch.where(kind == 2, hi, inside))
    push = 0.1 + torch.rand(n, m, generator=g, dtype=F64)
    g_star = torch.where(kind == 0, push, torch.where(kind == 2, -push, 0.0))
    b = (h @ x_star[..., None]).squeeze(-1) - g_star
    return h, b, x_star, kind


def quadratic(h: torch.Tensor, b: torch.Tensor, calls: list | None = None):
    """The objective ``(x, rows) -> x'H x / 2 - b'x`` per row (recording its calls if asked)."""

    def f(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append((rows.clone(), x.detach().clone()))
        hx = (h[rows].to(x.dtype) @ x[..., None]).squeeze(-1)
        return 0.5 * (x * hx).sum(1) - (b[rows].to(x.dtype) * x).sum(1)

    return f


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_quadratics_reach_their_box_minimisers(dtype):
    n, m = 8, 24
    lo, hi = torch.zeros(n, m, dtype=F64), torch.ones(n, m, dtype=F64)
    h, b, x_star, kind = box_quadratics(n, m, lo, hi)
    assert (kind == 0).any(dim=1).all() and (kind == 2).any(dim=1).all() and (kind == 1).any(dim=1).all()
    x0 = torch.full((n, m), 0.5, dtype=dtype)
    # tolerances tight enough to pin x* down (at scipy's defaults both stop 1e-4 away)
    tols = {"ftol": 1e-15, "gtol": 1e-9} if dtype == torch.float64 else {"ftol": 1e-7, "gtol": 1e-4}
    res = box_lbfgs(quadratic(h, b), x0, 0.0, 1.0, max_iter=500, **tols)
    assert res.x.dtype == dtype and res.x.shape == x0.shape
    assert res.converged.all(), res.reasons
    # float32: f* ~ -150, so f resolves 2e-5 and x only to sqrt(2 * 2e-5 / lambda_min = 1) ~ 6e-3
    tol = 1e-6 if dtype == torch.float64 else 1e-2
    torch.testing.assert_close(res.x.double(), x_star, atol=tol, rtol=0)
    # the projection puts the active variables exactly on their bounds
    assert (res.x[kind == 0] == 0).all() and (res.x[kind == 2] == 1).all()
    f_star = quadratic(h, b)(x_star, torch.arange(n))
    assert (res.value.double() - f_star).abs().max() < (1e-10 if dtype == torch.float64 else 1e-4)
    assert (res.iterations < 200).all()  # L-BFGS speed, not projected-gradient speed


def test_general_bounds_per_variable_and_infinite():
    n, m = 6, 10
    g = torch.Generator().manual_seed(1)
    lo = -torch.rand(n, m, generator=g, dtype=F64)
    hi = lo + 0.2 + torch.rand(n, m, generator=g, dtype=F64)
    lo[:, :2] = -math.inf  # unbounded below
    hi[:, -2:] = math.inf  # unbounded above
    h, b, x_star, _ = box_quadratics(n, m, lo, hi, seed=2)
    x0 = torch.where(torch.isfinite(lo), lo, torch.where(torch.isfinite(hi), hi, 0.0))
    res = box_lbfgs(quadratic(h, b), x0, lo, hi, max_iter=500, ftol=1e-15, gtol=1e-10)
    assert res.converged.all(), res.reasons
    torch.testing.assert_close(res.x, x_star, atol=1e-6, rtol=0)
    # one bound vector per variable, shared by the rows, broadcasts
    lo1, hi1 = torch.zeros(m, dtype=F64), torch.linspace(0.5, 1.0, m, dtype=F64)
    h, b, x_star, _ = box_quadratics(n, m, lo1.expand(n, m), hi1.expand(n, m), seed=3)
    res = box_lbfgs(quadratic(h, b), torch.zeros(n, m, dtype=F64), lo1, hi1, max_iter=500, ftol=1e-15, gtol=1e-10)
    torch.testing.assert_close(res.x, x_star, atol=1e-6, rtol=0)


def test_rows_are_independent():
    """A row's answer, iteration and evaluation counts do not depend on the other rows."""
    n, m = 7, 16
    h, b, _, _ = box_quadratics(n, m, torch.zeros(n, m, dtype=F64), torch.ones(n, m, dtype=F64), seed=4)
    x0 = torch.rand(n, m, generator=torch.Generator().manual_seed(5), dtype=F64)
    whole = box_lbfgs(quadratic(h, b), x0, max_iter=300, gtol=1e-10, check_every=3)
    assert len(set(whole.iterations.tolist())) > 2  # rows need different numbers of iterations
    for i in range(n):
        alone = box_lbfgs(quadratic(h[i : i + 1], b[i : i + 1]), x0[i : i + 1], max_iter=300, gtol=1e-10)
        torch.testing.assert_close(alone.x[0], whole.x[i], atol=1e-12, rtol=0)
        assert int(alone.iterations[0]) == int(whole.iterations[i])
        assert int(alone.evaluations[0]) == int(whole.evaluations[i])
    # other companions (in another order) give the same rows
    perm = torch.tensor([3, 0, 6, 1])
    part = box_lbfgs(quadratic(h[perm], b[perm]), x0[perm], max_iter=300, gtol=1e-10)
    torch.testing.assert_close(part.x, whole.x[perm], atol=1e-12, rtol=0)


def test_iterates_stay_in_the_box_budgets_hold_and_stopped_rows_stay():
    m, n = 12, 5
    h, b, x_star, _ = box_quadratics(n, m, torch.zeros(n, m, dtype=F64), torch.ones(n, m, dtype=F64), seed=6)
    h[1] = torch.eye(m, dtype=F64)  # identity: the first step (d = -g, |g| < 1, step 1) lands on x*
    b[1] = torch.full((m,), 0.3, dtype=F64)  # unconstrained minimiser 0.3: inside
    x_star[1] = 0.3
    x0 = torch.full((n, m), 0.5, dtype=F64)
    x0[0] = x_star[0]  # starts at its minimiser
    calls: list = []
    # 4 of 5 rows running keeps the batch whole at the first check; row 1 stops after one step
    res = box_lbfgs(quadratic(h, b, calls), x0, max_iter=4, gtol=1e-9, check_every=2)
    assert res.reasons == ["gtol", "gtol", "max_iter", "max_iter", "max_iter"]
    assert res.iterations.tolist() == [0, 1, 4, 4, 4]
    points = {i: torch.stack([x[rows == i][0] for rows, x in calls if (rows == i).any()]) for i in range(n)}
    for i in range(n):
        assert points[i].min() >= 0 and points[i].max() <= 1  # every evaluated point is feasible
        # after its last counted evaluation, a stopped row is only ever evaluated where it stays
        assert (points[i][int(res.evaluations[i]) :] == res.x[i]).all()
    assert len(points[0]) > int(res.evaluations[0]) and len(points[1]) > int(res.evaluations[1])
    assert torch.equal(res.x[0], x_star[0])
    torch.testing.assert_close(res.x[1], x_star[1], atol=1e-12, rtol=0)
    assert (res.evaluations[2:] >= 5).all()  # x0 and at least one trial per iteration
    # the evaluation budget, on its own
    res = box_lbfgs(quadratic(h, b), x0, max_iter=100, max_fun=3)
    assert res.reasons[2:] == ["max_fun"] * 3 and res.evaluations[2:].tolist() == [3, 3, 3]
    assert (res.evaluations <= 3).all()


# --------------------------------------------------------------------------- attack problems


@pytest.fixture(scope="module")
def digits_mlp(digit_vector_split):
    """A 64-32-10 sigmoid network trained on the digits (Adam, 25 epochs), its correctly classified test digits."""
    split = digit_vector_split
    x_train, y_train, x_test, y_test = split["x_train"], split["y_train"], split["x_test"], split["y_test"]
    torch.manual_seed(0)
    model = fc_sigmoid((32,), num_inputs=64, generator=torch.Generator().manual_seed(1))
    task = ClassifierTask(model, x_train, y_train, batch_size=64, order_seed=2, optimizer=OptimizerSpec("adam", lr=1e-2))
    fit(task, TrainOptions(epochs=25, device="cpu", progress=False))
    model.eval()
    with torch.no_grad():
        right = torch.nonzero(model(x_test).argmax(1) == y_test).flatten()
    assert right.numel() > 0.9 * len(y_test)
    return model, x_test[right], y_test[right]


@pytest.fixture(scope="module")
def attack_problems(digits_mlp):
    """24 (image, random wrong target) pairs at c = 1, 0.1, 0.01 (72 problems), solved by scipy.

    Each problem ``min c |x' - x|^2 + T * CE(z(x') / T, t)`` over ``[0, 1]^64`` (T = 0.03, the
    attack's default) is solved alone by scipy's L-BFGS-B in float64, to tolerances tight
    enough that it stops at a stationary point (at scipy's default ftol it stopped on one
    of these problems at a point with projected gradient 9e-3 and 8% above the minimum).
    """
    model, x, y = digits_mlp
    n, cs, temperature = 24, (1.0, 0.1, 0.01), 0.03
    target = (y[:n] + torch.randint(1, 10, (n,), generator=torch.Generator().manual_seed(0))) % 10
    x0, t = x[:n].double().repeat(len(cs), 1), target.repeat(len(cs))
    c = torch.tensor(cs, dtype=F64).repeat_interleave(n)
    model64 = copy.deepcopy(model).double().requires_grad_(False)  # the same weights in float64
    solutions, values = [], []
    for i in range(x0.shape[0]):

        def fun(z: np.ndarray, i=i) -> tuple[float, np.ndarray]:
            xp = torch.from_numpy(z)[None].requires_grad_(True)
            value = c[i] * (xp - x0[i]).pow(2).sum() + _attack_loss(model64(xp), t[i : i + 1], temperature).sum()
            (grad,) = torch.autograd.grad(value, xp)
            return float(value.detach()), grad[0].numpy()

        res = minimize(fun, x0[i].numpy(), jac=True, method="L-BFGS-B", bounds=Bounds(np.zeros(64), np.ones(64)),
                       options={"maxiter": 1000, "maxcor": 10, "ftol": 1e-15, "gtol": 1e-10})
        solutions.append(res.x)
        values.append(res.fun)
    return {"model": model64, "x0": x0, "target": t, "c": c, "temperature": temperature,
            "x": torch.tensor(np.array(solutions)), "value": torch.tensor(values)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_scipy_on_attack_problems(attack_problems, dtype):
    """One problem per row, all 72 at once: the same minima as scipy solving each alone (2% bound)."""
    p = attack_problems
    model = copy.deepcopy(p["model"]).to(dtype)
    x0, c = p["x0"].to(dtype), p["c"].to(dtype)

    def objective(xp: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        sq = (xp - x0[rows]).pow(2).sum(1)
        return c[rows] * sq + _attack_loss(model(xp), p["target"][rows], p["temperature"])

    res = box_lbfgs(objective, x0.clone(), 0.0, 1.0, max_iter=1000)
    assert res.converged.all(), res.reasons
    d_torch, d_scipy = rms_distortion(res.x.double(), p["x0"]), rms_distortion(p["x"], p["x0"])
    assert (d_scipy > 0.01).all()  # real perturbations, not the starting points
    rel_d = (d_torch - d_scipy).abs() / d_scipy
    rel_f = (res.value.double() - p["value"]).abs() / p["value"].abs()
    assert rel_d.max() <= 0.02, f"distortions differ by up to {rel_d.max():.3g}: {rel_d.tolist()}"
    assert rel_f.max() <= 0.02, f"objective values differ by up to {rel_f.max():.3g}: {rel_f.tolist()}"
    # measured: distortions within 2e-5 (float64) and 6e-5 (float32), values within 2e-5 and 4e-5
    if dtype == torch.float64:
        assert rel_d.max() <= 1e-3 and rel_f.max() <= 1e-4


def test_minimal_adversarial_lbfgs_torch_solver_matches_scipy(digits_mlp):
    model, x, y = digits_mlp
    x, y = x[:24], y[:24]
    target = (y + torch.randint(1, 10, (24,), generator=torch.Generator().manual_seed(1))) % 10
    kwargs = {"max_iter": 60, "bisection_steps": 6}
    scipy_res = minimal_adversarial_lbfgs(model, x, target, **kwargs)
    torch_res = minimal_adversarial_lbfgs(model, x, target, solver="torch", **kwargs)
    assert torch_res.adversarial.shape == x.shape and torch_res.adversarial.dtype == x.dtype
    assert torch_res.adversarial.min() >= 0 and torch_res.adversarial.max() <= 1
    with torch.no_grad():
        assert torch.equal(model(torch_res.adversarial).argmax(1) == target, torch_res.success)
    assert torch.equal(torch_res.success, scipy_res.success) and torch_res.success.sum() >= 20
    ok = torch_res.success
    mean_t, mean_s = torch_res.distortion[ok].mean(), scipy_res.distortion[ok].mean()
    assert abs(float(mean_t / mean_s) - 1) <= 0.02, f"mean RMS distortion {mean_t:.5f} (torch) vs {mean_s:.5f} (scipy)"
    # per example, the torch solver gives what scipy gives solving one example at a time (its
    # batched run shares iterations and line search: 7e-5 apart here, 4% on one of 200 MNIST-sized)
    alone = minimal_adversarial_lbfgs(model, x[:8], target[:8], batch_size=1, **kwargs)
    rel = (torch_res.distortion[:8] - alone.distortion).abs() / alone.distortion
    assert rel.max() <= 1e-3, f"torch vs scipy one at a time: {rel.tolist()}"  # measured 2e-7


# --------------------------------------------------------------------------- errors


def test_errors_say_what_was_wrong_and_how_to_fix_it():
    f = quadratic(torch.eye(3, dtype=F64)[None].repeat(2, 1, 1), torch.zeros(2, 3, dtype=F64))
    x0 = torch.full((2, 3), 0.5, dtype=F64)
    with pytest.raises(ValueError, match=r"x0 must have shape \(N, \.\.\.\).*x0\[:, None\]"):
        box_lbfgs(f, x0[0])
    with pytest.raises(ValueError, match="x0 must be a floating-point"):
        box_lbfgs(f, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"lower must be a number or a tensor broadcastable to x0's shape \(2, 3\)"):
        box_lbfgs(f, x0, torch.zeros(4))
    with pytest.raises(ValueError, match=r"lower must be <= upper.*row 1, variable 2: 0.7 > 0.6"):
        box_lbfgs(f, x0, torch.tensor([0.0, 0.0, 0.7]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.6]]))
    with pytest.raises(ValueError, match=r"x0 must lie in the box \[lower, upper\], got 1 entries outside.*clamp"):
        box_lbfgs(f, torch.tensor([[0.5, 0.5, 1.5], [0.5, 0.5, 0.5]], dtype=F64))
    with pytest.raises(ValueError, match=r"objective\(x, rows\) must return one floating-point value per row"):
        box_lbfgs(lambda x, rows: x.sum(), x0)
    for key, value in (("max_iter", 0), ("memory", 0), ("max_fun", 0), ("ftol", -1.0), ("gtol", math.nan)):
        with pytest.raises(ValueError, match=key):
            box_lbfgs(f, x0, **{key: value})
    with pytest.raises(ValueError, match=r"solver must be one of \['scipy', 'torch'\], got 'cuda'"):
        minimal_adversarial_lbfgs(nn.Linear(4, 2), torch.rand(2, 4), torch.tensor([0, 1]), solver="cuda")
    assert STATUS[0] == "running"
