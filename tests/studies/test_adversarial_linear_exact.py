"""The exact softmax fits and minimal-distortion QP of nnprobe.studies.adversarial.linear_exact."""

import numpy as np
import pytest
from scipy.optimize import check_grad, minimize

from nnprobe.studies.adversarial.linear_exact import (
    effective_decay,
    fit_softmax_full_batch,
    minimal_target_distortion,
    softmax_objective,
)


def test_effective_decay_conventions():
    assert effective_decay(1.0, "mean_half") == 0.5
    assert effective_decay(1.0, "mean_full") == 1.0
    assert effective_decay(1.0, "mean_units") == 0.1
    assert effective_decay(1.0, "batch_sum_half", batch_size=100) == pytest.approx(0.005)
    assert effective_decay(2.0, "data_sum_full", n=1000) == pytest.approx(0.002)
    with pytest.raises(ValueError, match="convention"):
        effective_decay(1.0, "median")
    with pytest.raises(ValueError, match="lambda"):
        effective_decay(-1.0, "mean_half")


@pytest.mark.parametrize("decay_bias", [False, True])
def test_softmax_objective_gradient(decay_bias):
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 5)), rng.integers(0, 3, 30)
    p = rng.normal(size=5 * 3 + 3)
    err = check_grad(lambda q: softmax_objective(q, x, y, 0.3, 3, decay_bias)[0],
                     lambda q: softmax_objective(q, x, y, 0.3, 3, decay_bias)[1], p)
    assert err < 1e-5


def test_fit_is_the_minimiser_and_centring_is_absorbed_by_an_undecayed_bias():
    rng = np.random.default_rng(1)
    x = rng.random((200, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0.5).astype(int) + (x[:, 1] > 0.7)
    fit = fit_softmax_full_batch(x, y, 0.05, num_classes=3)
    assert fit.grad_max < 1e-6
    centred = fit_softmax_full_batch(x - x.mean(0), y, 0.05, num_classes=3)
    np.testing.assert_allclose(centred.w, fit.w, atol=1e-6)
    assert centred.objective == pytest.approx(fit.objective, abs=1e-10)
    # With the bias decayed, centring changes the problem.
    decayed = fit_softmax_full_batch(x, y, 0.05, num_classes=3, decay_bias=True)
    assert decayed.objective > fit.objective


def _primal(w, b, x, target):
    """The same QP by SLSQP on the primal (small problems only)."""
    others = [j for j in range(w.shape[1]) if j != target]
    cons = [{"type": "ineq", "fun": lambda r, k=k: (w[:, target] - w[:, k]) @ (x + r) + b[target] - b[k]}
            for k in others]
    res = minimize(lambda r: 0.5 * r @ r, np.zeros_like(x), jac=lambda r: r, constraints=cons,
                   bounds=list(zip(-x, 1 - x)), method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    return res.x


@pytest.mark.parametrize("seed", range(6))
def test_minimal_target_distortion_matches_the_primal(seed):
    rng = np.random.default_rng(seed)
    d, k = 12, 4
    w, b, x = rng.normal(size=(d, k)), rng.normal(size=k), rng.random(d)
    target = int(np.argsort(x @ w + b)[0])  # the least likely class: the box may bind
    qp = minimal_target_distortion(w, b, x, target)
    if not qp.feasible:  # the box holds no point of the target's region: SLSQP finds none either
        assert qp.rms == np.inf
        return
    primal = _primal(w, b, x, target)
    assert np.all(x + qp.r >= -1e-12) and np.all(x + qp.r <= 1 + 1e-12)
    if np.max(np.abs(primal)) > 0 and ((w[:, target] - w.T) @ (x + primal) + b[target] - b).min() > -1e-7:
        assert qp.rms == pytest.approx(np.sqrt(primal @ primal / d), rel=1e-5)
    assert qp.lower_rms <= qp.rms + 1e-9
    assert qp.violation < 1e-7


def test_minimal_target_distortion_infeasible_in_the_box():
    # Class 1 needs pixel 0 above 1.5: out of the box.
    w = np.array([[0.0, 2.0], [0.0, 0.0]])
    qp = minimal_target_distortion(w, np.array([3.0, 0.0]), np.array([0.2, 0.2]), 1)
    assert not qp.feasible and qp.rms == np.inf


def test_minimal_target_distortion_of_an_image_already_in_the_target():
    w = np.eye(3)
    qp = minimal_target_distortion(w, np.zeros(3), np.array([0.9, 0.1, 0.2]), 0)
    assert qp.rms == 0 and qp.lower_rms == 0 and qp.violation == 0


def test_minimal_target_distortion_without_the_box_is_the_projection():
    # One constraint, box far away: r = beta a / |a|^2.
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([0.5, 0.3])
    qp = minimal_target_distortion(w, np.zeros(2), x, 1, lower=-10, upper=10)
    np.testing.assert_allclose(qp.r, [-0.1, 0.1], atol=1e-9)
