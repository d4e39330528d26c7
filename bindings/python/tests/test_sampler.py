"""Samplers: every kind, schedules, step-by-step iteration against whole runs, starts,
progress, errors."""
from __future__ import annotations

import io

import numpy as np
import pytest

import lgd
from conftest import bits

KINDS = ["euler", "ddim", "heun", "dpmpp_2m"]


@pytest.fixture
def guidance(ctx):
    prior = lgd.Model.gmm(ctx, [0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [0.05, 0.1])
    loss = lgd.Loss.squared_error(ctx, [0.8, -0.2])
    return lgd.Guidance.mc(prior, loss, 6, scale=0.2)


@pytest.mark.parametrize("kind", KINDS)
def test_iteration_equals_run(guidance, kind):
    s = lgd.Sampler(guidance, kind, steps=7, eta=0.5 if kind == "ddim" else 0.0,
                    s_churn=1.0 if kind == "heun" else 0.0)
    assert s.kind == lgd.SamplerKind[kind.upper()]
    full = s.run(batch=12, seed=4)
    assert s.done and s.step_index == 7 and s.sigma == 0
    assert full.shape == (12, 2) and np.isfinite(full).all()
    x = np.zeros((12, 2), np.float32)
    seen = []
    for st in s.steps(x, seed=4):
        seen.append((st.step, st.num_steps, st.sigma))
        assert st.x is x
    assert [k for k, _, _ in seen] == list(range(1, 8))
    np.testing.assert_array_equal([sg for _, _, sg in seen], s.sigmas[1:])
    np.testing.assert_array_equal(bits(x), bits(full))
    # init + step loop
    y = s.init(batch=12, seed=4)
    while not s.done:
        s.step(y)
    np.testing.assert_array_equal(bits(y), bits(full))


def test_determinism_and_batch_split(guidance):
    s = lgd.Sampler(guidance, "ddim", steps=6, eta=1.0)
    a = s.run(batch=10, seed=9)
    np.testing.assert_array_equal(bits(a), bits(s.run(batch=10, seed=9)))
    np.testing.assert_array_equal(bits(a[4:]), bits(s.run(batch=6, seed=9, first_row=4)))
    assert not np.array_equal(a, s.run(batch=10, seed=10))


def test_start_continues_a_run(guidance):
    s = lgd.Sampler(guidance, "euler", steps=8)
    full = s.run(batch=5, seed=2)
    x = s.init(batch=5, seed=2)
    for _ in range(3):
        s.step(x)
    assert s.step_index == 3 and s.sigma == pytest.approx(float(s.sigmas[3]))
    # a new run started at step 3 from this x gives the rest of the full run's bytes
    s.start(x, 3, seed=2)
    while not s.done:
        s.step(x)
    np.testing.assert_array_equal(bits(x), bits(full))
    # run_from with SDEdit noise, and steps() from a start
    x0 = np.full((5, 2), 0.25, np.float32)
    y = s.run(x0.copy(), start_step=5, add_noise=True, seed=1)
    z = x0.copy()
    for _ in s.steps(z, start_step=5, add_noise=True, seed=1):
        pass
    np.testing.assert_array_equal(bits(y), bits(z))


def test_progress_and_stop(guidance):
    s = lgd.Sampler(guidance, steps=6)
    calls = []
    s.run(batch=3, progress=lambda k, n, sg, rep: calls.append((k, n, sg, rep)))
    assert [c[0] for c in calls] == list(range(1, 7)) and all(c[1] == 6 for c in calls)
    assert all(isinstance(c[3], lgd.Report) and c[3].active for c in calls)
    full = s.run(batch=3, seed=1)
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(lgd.AbortedError):
        s.run(x, seed=1, progress=lambda k, n, sg, rep: k == 2)
    assert s.step_index == 2  # x holds the last completed step; the run goes on
    while not s.done:
        s.step(x)
    np.testing.assert_array_equal(bits(x), bits(full))


def test_text_progress(guidance, capsys):
    out = io.StringIO()
    bar = lgd.TextProgress("test", stream=out, use_tqdm=False)
    s = lgd.Sampler(guidance, steps=4)
    s.run(batch=2, progress=bar)
    bar.close()
    text = out.getvalue()
    assert "test [" in text and "4/4" in text and text.endswith("\n")
    s.run(batch=2, progress=True)  # tqdm or the built-in bar, on stderr
    assert "4/4" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress"):
        s.run(batch=2, progress="yes")


def test_reports_per_step(guidance):
    s = lgd.Sampler(guidance, steps=3)
    reps = [st.report for st in s.steps(batch=4, report=True, rows=True)]
    assert len(reps) == 3 and all(r.row_ess.shape == (4,) for r in reps)
    assert all(1 <= r.min_ess <= 6 for r in reps)
    x = s.init(batch=4)
    assert s.step(x) is None


def test_schedules(guidance):
    k = lgd.schedule.karras(5, 0.01, 10.0, 7.0)
    i = np.arange(5)
    ref = (10.0 ** (1 / 7) + i / 4 * (0.01 ** (1 / 7) - 10.0 ** (1 / 7))) ** 7
    np.testing.assert_allclose(k[:5], ref, rtol=1e-5)
    assert k[5] == 0
    s = lgd.Sampler(guidance, steps=5, sigma_min=0.01, sigma_max=10.0, rho=7.0)
    np.testing.assert_array_equal(s.sigmas, k)
    ac = lgd.schedule.vp_alphas_cumprod("vp_linear", 1000, 1e-4, 0.02)
    np.testing.assert_allclose(ac, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-5)
    vp = lgd.schedule.vp(10, "vp_linear")
    assert vp.shape == (11,) and vp[-1] == 0 and (np.diff(vp) < 0).all()
    sv = lgd.Sampler(guidance, steps=10, schedule="vp_linear")
    np.testing.assert_array_equal(sv.sigmas, vp)
    cos = lgd.schedule.vp_alphas_cumprod("vp_cosine", 50)
    assert (np.diff(cos) < 0).all() and 0 < cos[-1] < cos[0] < 1
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.schedule.karras(5, 10.0, 1.0)
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.schedule.vp_alphas_cumprod("karras", 10)


def test_sampler_errors(guidance, ctx):
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Sampler(guidance, steps=0)
    with pytest.raises(ValueError, match="kind"):
        lgd.Sampler(guidance, "rk4")
    with pytest.raises(lgd.InvalidArgumentError, match="sigmas"):
        lgd.Sampler(guidance, sigmas=[1.0, 2.0])
    s = lgd.Sampler(guidance, steps=3)
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(lgd.StateError):
        s.step(x)  # not started
    s.init(x)
    with pytest.raises(lgd.ShapeMismatchError):
        s.step(np.zeros((5, 2), np.float32))
    s.run(x)
    with pytest.raises(lgd.StateError):
        s.step(x)  # finished
    with pytest.raises(TypeError, match="float32"):
        s.run(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="contiguous"):
        s.run(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="or batch"):
        s.run()
    with pytest.raises(ValueError, match="not both"):
        s.run(x, batch=4)
    with pytest.raises(lgd.ShapeMismatchError):
        s.run(np.zeros((4, 3), np.float32))
    with pytest.raises(lgd.InvalidArgumentError):
        s.start(x, 7)
    t = lgd.Tensor.zeros(ctx, (4, 2))
    assert s.run(t, seed=3) is t
    np.testing.assert_array_equal(t.download(), s.run(batch=4, seed=3))
