"""Guidance: the estimators against their definitions and exact answers, step rules,
windows, reports with ESS, radius functions."""
from __future__ import annotations

import math

import numpy as np
import pytest

import lgd

VAR = np.float32(0.04)


@pytest.fixture
def problem(ctx):
    prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [VAR, VAR])
    target = lgd.Model.gmm(ctx, [1.0], [[-1.0]], [VAR])
    loss = lgd.Loss.logistic(ctx, [-50.0], 0.0)
    return prior, target, loss


X = np.linspace(-2, 2, 9, dtype=np.float32).reshape(9, 1)


def test_dps_is_minus_jt_grad_at_xhat(problem):
    prior, _, loss = problem
    g, xhat = lgd.Guidance.dps(prior, loss).term(X, 0.7, xhat=True)
    _, grad = loss.eval(prior.denoise(X, 0.7))
    np.testing.assert_array_equal(xhat, prior.denoise(X, 0.7))
    np.testing.assert_allclose(g, -prior.vjp(X, 0.7, grad), rtol=1e-6, atol=1e-7)


def test_mc_with_one_draw_and_zero_radius_is_dps(problem):
    prior, _, loss = problem
    dps = lgd.Guidance.dps(prior, loss).term(X, 0.7)
    mc = lgd.Guidance.mc(prior, loss, 1, radius=lambda s: 0.0).term(X, 0.7)
    np.testing.assert_allclose(mc, dps, rtol=1e-6, atol=1e-7)


def test_exact_estimator_converges_to_the_exact_term(problem):
    """For this loss p_sigma(y=0 | x) is component 0's responsibility, so the exact
    g = score of N0_sigma - score of p_sigma (lgd mixture's reference)."""
    prior, target, loss = problem
    sigma = 1.0
    exact = target.score(X, sigma) - prior.score(X, sigma)
    est = lgd.Guidance.exact(prior, loss, n_samples=20000, seed=1).term(X, sigma)
    assert np.abs(est - exact).max() < 0.05 * np.abs(exact).max()
    # LGD-MC (biased, but far better) and DPS (far off), as in Fig. 4 and lgd mixture's
    # table (relative L2 errors 0.74 and 12.7 at n = 100)
    mc = lgd.Guidance.mc(prior, loss, 2000, seed=1).term(X, sigma)
    dps = lgd.Guidance.dps(prior, loss).term(X, sigma)
    err = lambda g: np.linalg.norm(g - exact) / np.linalg.norm(exact)  # noqa: E731
    assert err(mc) < 1.0 and err(dps) > 5.0


@pytest.mark.parametrize("rule,lam", [("score", lambda s, l: np.full_like(l, 0.5 * s * s)),
                                      ("x0", lambda s, l: np.full_like(l, 0.5)),
                                      ("normalized", lambda s, l: 0.5 / np.sqrt(l))])
def test_step_rules(problem, rule, lam):
    prior, _, loss = problem
    g = lgd.Guidance.dps(prior, loss, step_rule=rule, scale=0.5)
    sigma = 0.9
    x = X[4:]  # losses well above 0 (the normalized rule bounds 1 / sqrt(l) for tiny l)
    term, xhat = g.term(x, sigma, xhat=True)
    guided, rep = g.denoise(x, sigma, report=True, rows=True)
    lval = loss(xhat)
    assert lval.min() > 1e-6
    np.testing.assert_allclose(guided, xhat + lam(sigma, lval)[:, None] * term, rtol=1e-5,
                               atol=1e-5)
    assert rep.active
    np.testing.assert_allclose(rep.row_lambda, lam(sigma, lval), rtol=1e-5)


def test_window_and_none(problem):
    prior, _, loss = problem
    g = lgd.Guidance.dps(prior, loss, sigma_min_active=1.0, sigma_max_active=2.0)
    out, rep = g.denoise(X, 0.5, report=True)
    np.testing.assert_array_equal(out, prior.denoise(X, 0.5))
    assert not rep.active and rep.mean_loss == 0 and rep.mean_lambda == 0
    assert g.denoise(X, 1.5, report=True)[1].active
    assert np.abs(g.term(X, 0.5)).max() > 0  # the term ignores the window
    none = lgd.Guidance.none(prior)
    np.testing.assert_array_equal(none.denoise(X, 0.5), prior.denoise(X, 0.5))
    np.testing.assert_array_equal(none.term(X, 0.5), np.zeros_like(X))


def test_report_and_ess(problem):
    prior, _, loss = problem
    n = 16
    g = lgd.Guidance.mc(prior, loss, n, seed=3)
    term, rep = g.term(X, 0.3, report=True, rows=True)
    assert rep.sigma == pytest.approx(0.3)
    assert (rep.row_ess >= 1 - 1e-4).all() and (rep.row_ess <= n + 1e-3).all()
    assert rep.min_ess == pytest.approx(rep.row_ess.min())
    assert rep.mean_ess == pytest.approx(float(np.mean(rep.row_ess.astype(np.float64))), rel=1e-6)
    assert rep.mean_loss == pytest.approx(float(np.mean(rep.row_loss.astype(np.float64))),
                                          rel=1e-6)
    np.testing.assert_allclose(rep.row_grad_norm, np.abs(term[:, 0]), rtol=1e-5, atol=1e-9)
    assert (rep.row_lambda == 0).all()  # the term applies no step weight
    # without rows: the batch values only
    rep2 = g.term(X, 0.3, report=True)[1]
    assert rep2.row_ess is None and rep2.mean_ess == rep.mean_ess


def test_radius(problem):
    prior, _, loss = problem
    g = lgd.Guidance.mc(prior, loss, 4)
    for s in (0.1, 1.0, 10.0):
        assert g.radius(s) == pytest.approx(s / math.sqrt(1 + s * s), rel=1e-6)
    g2 = lgd.Guidance.mc(prior, loss, 4, sigma_data=0.5)
    assert g2.radius(1.0) == pytest.approx(0.5 / math.sqrt(1.25), rel=1e-6)
    g3 = lgd.Guidance.mc(prior, loss, 4, radius=lambda s: 0.25 * s)
    assert g3.radius(2.0) == pytest.approx(0.5)
    bad = lgd.Guidance.mc(prior, loss, 4, radius=lambda s: -1.0)
    with pytest.raises(lgd.InvalidArgumentError, match="radius"):
        bad.term(X, 1.0)


def test_seeds(problem):
    prior, _, loss = problem
    g = lgd.Guidance.mc(prior, loss, 8, seed=5)
    a = g.term(X, 0.5)
    np.testing.assert_array_equal(a, g.term(X, 0.5))
    g.set_seed(6)
    assert not np.array_equal(a, g.term(X, 0.5))
    g.set_seed(5)
    np.testing.assert_array_equal(a, g.term(X, 0.5))
    # rows keyed by first_row, draws by step_index
    np.testing.assert_array_equal(a[3:], g.term(X[3:], 0.5, first_row=3))
    assert not np.array_equal(a, g.term(X, 0.5, step_index=1))


def test_invalid_guidance(ctx, problem):
    prior, _, loss = problem
    with pytest.raises(lgd.InvalidArgumentError, match="n_samples"):
        lgd.Guidance.mc(prior, loss, 0)
    with pytest.raises(lgd.InvalidArgumentError, match="loss"):
        lgd.Guidance(prior, None, "mc")
    with pytest.raises(ValueError, match="kind"):
        lgd.Guidance(prior, loss, "magic")
    with pytest.raises(TypeError):
        lgd.Guidance("model", loss)
    with pytest.raises(lgd.ShapeMismatchError):
        lgd.Guidance.dps(prior, lgd.Loss.squared_error(ctx, [0.0, 0.0]))
    m = lgd.Model.from_callables(ctx, 1, lambda x, s, c: x)  # no VJP, no exact posterior
    with pytest.raises(lgd.UnsupportedError):
        lgd.Guidance.exact(m, loss, 4)
    with pytest.raises(lgd.UnsupportedError):
        lgd.Guidance.dps(m, loss).term(X, 1.0)
    with lgd.Context() as other:
        foreign = lgd.Loss.logistic(other, [1.0], 0.0)
        with pytest.raises(lgd.InvalidArgumentError, match="context"):
            lgd.Guidance.dps(prior, foreign)
