"""Losses: every built-in against its formula (float64 numpy), losses written in Python."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import lgd

RNG = np.random.default_rng(42)
X = RNG.standard_normal((5, 4)).astype(np.float32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def fd_grad(f, x, h=1e-6):
    """Gradient of a per-row float64 loss f(x) -> [batch] by central differences."""
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for j in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, j] = h
        g[:, j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def test_squared_error(ctx):
    y = RNG.standard_normal(4)
    w = np.array([1.0, 0.0, 2.0, 0.5])
    loss = lgd.Loss.squared_error(ctx, y, w)
    assert loss.dim == 4
    lv, gv = loss.eval(X)
    close(lv, (w * (X - y) ** 2).sum(1))
    close(gv, 2 * w * (X - y))
    close(loss(X), lv)
    # per-row targets
    ys = RNG.standard_normal((5, 4))
    lv = lgd.Loss.squared_error(ctx, ys).eval(X, grad=False)
    close(lv, ((X - ys) ** 2).sum(1))
    with pytest.raises(lgd.ShapeMismatchError):
        lgd.Loss.squared_error(ctx, ys).eval(X[:3])
    with pytest.raises(ValueError, match="weights"):
        lgd.Loss.squared_error(ctx, y, [1.0, 2.0])
    with pytest.raises(lgd.InvalidArgumentError, match="weight"):
        lgd.Loss.squared_error(ctx, y, [1.0, -1.0, 1.0, 1.0])


def test_linear(ctx):
    H = RNG.standard_normal((3, 4))
    y = RNG.standard_normal(3)
    s = 0.5
    loss = lgd.Loss.linear(ctx, H, y, s)
    r = y - X.astype(np.float64) @ H.T
    lv, gv = loss.eval(X)
    close(lv, (r ** 2).sum(1) / (2 * s * s), 1e-4)
    close(gv, -(r @ H) / (s * s), 1e-4)
    with pytest.raises(ValueError, match="last dimension"):
        lgd.Loss.linear(ctx, H, [1.0, 2.0], s)
    with pytest.raises(lgd.InvalidArgumentError, match="noise_sigma"):
        lgd.Loss.linear(ctx, H, y, 0.0)


def test_logistic(ctx):
    a = np.array([1.0, -2.0, 0.5, 0.0])
    b = 0.3
    z = X.astype(np.float64) @ a + b
    lv, gv = lgd.Loss.logistic(ctx, a, b).eval(X)
    close(lv, np.logaddexp(0, -z))
    close(gv, -(1 / (1 + np.exp(z)))[:, None] * a)


def test_logistic_bitwise_in_numpy(ctx, monkeypatch):
    """examples/mixture.py's numpy loss repeats the built-in's float32 arithmetic (the
    polynomial softplus and sigmoid of src/core/hd_math.h): the same bits over both tails,
    the clamp at |t| = 104 and +-0, and the same samples in guided sampling."""
    path = Path(__file__).resolve().parents[1] / "examples" / "mixture.py"
    spec = importlib.util.spec_from_file_location("lgd_mixture_example", path)
    mix = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mix)  # its dataclasses look it up there
    spec.loader.exec_module(mix)
    x = np.concatenate([np.linspace(-130.0, 130.0, 20001),
                        [0.0, -0.0, 1e-30, -1e-30, 103.99, 104.0, 104.01, -104.0, 1e30,
                         -1e30]]).astype(np.float32)
    for a, b in ((-1.0, 0.0), (-50.0, 0.0), (3.7, -0.4)):
        a, b = float(np.float32(a)), float(np.float32(b))
        want_v, want_g = lgd.Loss.logistic(ctx, [a], b).eval(x[:, None])
        value = np.empty((x.size, 1), np.float32)
        grad = np.empty((x.size, 1, 1), np.float32)
        mix.logistic_loss(a, b)(x[:, None, None], value, grad)
        np.testing.assert_array_equal(value[:, 0].view(np.uint32), want_v.view(np.uint32))
        np.testing.assert_array_equal(grad[:, 0].view(np.uint32), want_g.view(np.uint32))
    prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [0.04, 0.04])
    builtin = lgd.Loss.logistic(ctx, [-50.0], 0.0)
    numpy_loss = lgd.Loss.from_callable(ctx, 1, mix.logistic_loss(-50.0, 0.0), inplace=True)
    for make in (lambda l: lgd.Guidance.mc(prior, l, 10), lambda l: lgd.Guidance.dps(prior, l),
                 lambda l: lgd.Guidance.exact(prior, l, n_samples=20)):
        runs = [lgd.Sampler(make(l), "ddim", steps=10).run(batch=300, seed=3)
                for l in (builtin, numpy_loss)]
        np.testing.assert_array_equal(runs[1].view(np.uint32), runs[0].view(np.uint32))


def test_sum(ctx):
    sq = lgd.Loss.squared_error(ctx, np.zeros(4))
    lg = lgd.Loss.logistic(ctx, np.ones(4), 0.0)
    total = lgd.Loss.sum([sq, lg], [2.0, -0.5])
    sq.close()  # the sum keeps its terms
    l1, g1 = lgd.Loss.squared_error(ctx, np.zeros(4)).eval(X)
    l2, g2 = lg.eval(X)
    lv, gv = total.eval(X)
    close(lv, 2 * l1 - 0.5 * l2)
    close(gv, 2 * g1 - 0.5 * g2)
    with pytest.raises(ValueError, match="at least one"):
        lgd.Loss.sum([])
    with pytest.raises(lgd.ShapeMismatchError):
        lgd.Loss.sum([lg, lgd.Loss.squared_error(ctx, np.zeros(3))])
    with pytest.raises(TypeError):
        lgd.Loss.sum([lg, "x"])


def positions(x, frames, stride=2, offset=0, velocities=True, scale=1.0):
    r = np.stack([x[:, offset + t * stride:offset + t * stride + 2] for t in range(frames)], 1)
    return scale * np.cumsum(r, 1) if velocities else r


def test_path_loss(ctx):
    frames = 3
    x = RNG.standard_normal((4, 8)).astype(np.float64)
    lay = lgd.TrajectoryLayout(frames=frames, frame_stride=2, root_offset=1, velocity_scale=0.5)
    path = RNG.standard_normal((frames, 2))

    def f(v):
        return ((path - positions(v, frames, 2, 1, True, 0.5)) ** 2).sum((1, 2))

    loss = lgd.Loss.path(ctx, 8, lay, path)
    lv, gv = loss.eval(x)
    close(lv, f(x), 1e-4)
    close(gv, fd_grad(f, x), 1e-4)
    # per-row paths, positions instead of velocities
    paths = RNG.standard_normal((4, frames, 2))
    lay2 = lgd.TrajectoryLayout(frames=frames, velocities=False)
    lv = lgd.Loss.path(ctx, 6, lay2, paths).eval(x[:, :6], grad=False)
    close(lv, ((paths - positions(x[:, :6], frames, velocities=False)) ** 2).sum((1, 2)), 1e-4)
    with pytest.raises(lgd.ShapeMismatchError):
        lgd.Loss.path(ctx, 4, lgd.TrajectoryLayout(frames=3), path)  # frames do not fit


def test_obstacle_loss(ctx):
    frames = 4
    x = (0.5 * RNG.standard_normal((3, 8))).astype(np.float64)
    goal = np.array([1.0, 0.5])
    obs = np.array([[0.5, 0.2, 0.6], [1.0, 1.0, 0.4]])
    sharp, ow, gw = 5.0, 3.0, 2.0

    def f(v):
        p = positions(v, frames)
        l = gw * ((goal - p[:, -1]) ** 2).sum(1)
        for cx, cy, r in obs:
            d2 = (p[..., 0] - cx) ** 2 + (p[..., 1] - cy) ** 2
            l = l + ow * (1 / (1 + np.exp((d2 - r * r) * sharp))).sum(1)
        return l

    loss = lgd.Loss.obstacle(ctx, 8, lgd.TrajectoryLayout(frames=frames), goal=goal,
                             obstacles=obs, sharpness=sharp, obstacle_weight=ow, goal_weight=gw)
    lv, gv = loss.eval(x)
    close(lv, f(x), 1e-4)
    close(gv, fd_grad(f, x), 1e-3)
    # obstacles only, the paper's constants; a single obstacle as a flat triple
    only = lgd.Loss.obstacle(ctx, 8, lgd.TrajectoryLayout(frames=frames), obstacles=[0, 0, 1])
    assert only.eval(x, grad=False).shape == (3,)
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Loss.obstacle(ctx, 8, lgd.TrajectoryLayout(frames=frames))  # neither
    with pytest.raises(ValueError, match="obstacles"):
        lgd.Loss.obstacle(ctx, 8, lgd.TrajectoryLayout(frames=frames), obstacles=[[1, 2]])


def test_eval_shapes(ctx):
    loss = lgd.Loss.squared_error(ctx, np.zeros(4))
    x3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    lv, gv = loss.eval(x3)
    assert lv.shape == (2, 3) and gv.shape == (2, 3, 4)
    close(lv, (x3 ** 2).sum(-1))
    with pytest.raises(lgd.ShapeMismatchError):
        loss.eval(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="2 or 3-D"):
        loss.eval(np.zeros(4))


# ---- losses written in Python ----

def sq_loss(x):
    return (x.astype(np.float64) ** 2).sum(-1), 2 * x


def test_callable_loss_forms(ctx):
    builtin = lgd.Loss.squared_error(ctx, np.zeros(4))
    ref_l, ref_g = builtin.eval(X)
    returned = lgd.Loss.from_callable(ctx, 4, sq_loss)

    def inplace(x, loss, grad):
        loss[...] = (x ** 2).sum(-1)
        if grad is not None:
            grad[...] = 2 * x

    seen = []

    def draws(x, first, total, loss, grad):
        seen.append((first, total, x.shape[1]))
        inplace(x, loss, grad)

    for loss in (returned, lgd.Loss.from_callable(ctx, 4, inplace, inplace=True),
                 lgd.Loss.from_callable(ctx, 4, draws, inplace=True, draws=True)):
        lv, gv = loss.eval(X)
        close(lv, ref_l)
        close(gv, ref_g)
    assert seen == [(0, 1, 1)]  # lgd_loss_eval: first_draw 0, total_draws n


def test_callable_loss_sees_draws_in_order(ctx):
    m = lgd.Model.gmm(ctx, [1.0], [[0.0, 0.0, 0.0, 0.0]], [1.0])
    seen = []

    def draws(x, first, total):
        seen.append((first, total, x.shape[1]))
        return sq_loss(x)

    g = lgd.Guidance.mc(m, lgd.Loss.from_callable(ctx, 4, draws, draws=True), 10,
                        chunk_size=4)
    g.term(X, 1.0)
    assert seen == [(0, 10, 4), (4, 10, 4), (8, 10, 2)]


def test_draw_dependent_loss_does_not_depend_on_chunks(ctx):
    m = lgd.Model.gmm(ctx, [1.0], [[0.0, 0.0, 0.0, 0.0]], [1.0])
    wk = np.linspace(0.5, 2.0, 12)

    def weighted(x, first, total):
        w = wk[first:first + x.shape[1]][None, :, None]
        return (w * x.astype(np.float64) ** 2).sum(-1), 2 * w * x

    loss = lgd.Loss.from_callable(ctx, 4, weighted, draws=True)
    terms = [lgd.Guidance.mc(m, loss, 12, chunk_size=c).term(X, 0.8) for c in (1, 5, 12)]
    close(terms[0], terms[1])
    close(terms[0], terms[2])


def test_callable_loss_without_gradient(ctx):
    """Exact guidance needs no gradient: grad is None (inplace) and a returned loss alone
    is enough."""
    m = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0, 0, 0, 0], [1.0, 0, 0, 0]], [0.1, 0.1])
    grads = []

    def f(x, loss, grad):
        grads.append(grad)
        loss[...] = (x ** 2).sum(-1)

    lgd.Guidance.exact(m, lgd.Loss.from_callable(ctx, 4, f, inplace=True), 8).term(X, 1.0)
    assert grads and all(g is None for g in grads)
    only = lgd.Loss.from_callable(ctx, 4, lambda x: (x ** 2).sum(-1))
    lgd.Guidance.exact(m, only, 8).term(X, 1.0)
    with pytest.raises(ValueError, match="no gradient"):
        only.eval(X)


def test_callable_loss_bad_results(ctx):
    bad_shape = lgd.Loss.from_callable(ctx, 4, lambda x: (np.zeros(3), 2 * x))
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(5, 1\)"):
        bad_shape.eval(X)
    three = lgd.Loss.from_callable(ctx, 4, lambda x: (1, 2, 3))
    with pytest.raises(ValueError, match="tuple of 3"):
        three.eval(X)
    nan = lgd.Loss.from_callable(ctx, 4, lambda x: (np.full(x.shape[:2], np.nan), 2 * x))
    with pytest.raises(lgd.NonFiniteError, match="loss"):
        nan.eval(X)
    forgot = lgd.Loss.from_callable(ctx, 4, lambda x, l, g: None, inplace=True)
    with pytest.raises(lgd.CallbackError, match="unwritten"):
        forgot.eval(X)
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Loss.from_callable(ctx, -1, sq_loss)
