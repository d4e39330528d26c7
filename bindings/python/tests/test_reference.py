"""The same samples as the C API for the same seed, bit for bit: the scenarios of
tests/c/reference.c through the package, and the `lgd mixture` tool's samples.csv."""
from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest

import lgd
from conftest import bits


def pattern(n: int) -> np.ndarray:
    """reference.c's pattern(i) = ((i * 37 + 11) % 101) / 50.5f - 1 in float32."""
    i = np.arange(n)
    return (((i * 37 + 11) % 101).astype(np.float32) / np.float32(50.5)) - np.float32(1)


def full_mixture(ctx):
    cov = np.empty((3, 3, 3), np.float32)
    for k in range(3):
        cov[k] = np.float32(0.05) * np.float32(k + 1)
        np.fill_diagonal(cov[k], np.float32(0.3) + np.float32(0.1) * np.float32(k))
    mu = [[-1, 0, 1], [1, 1, -0.5], [0, -1.5, 0.5]]
    return lgd.Model.gmm(ctx, [0.2, 0.5, 0.3], mu, cov)


def linear_loss(ctx):
    return lgd.Loss.linear(ctx, [[1, 0.5, 0], [0, -1, 2]], [0.7, -0.3], 0.3)


def test_trajectory_path(c_reference):
    with lgd.Context() as ctx:
        prior = lgd.Model.trajectory_prior(ctx, frames=16, headings=4, turns=3)
        t = np.arange(16, dtype=np.float32)
        path = np.stack([np.float32(0.5) * (t + 1), np.float32(0.25) * t], axis=1)
        loss = lgd.Loss.path(ctx, 32, lgd.TrajectoryLayout(frames=16), path)
        g = lgd.Guidance(prior, loss, "mc", n_samples=8, scale=0.02)
        s = lgd.Sampler(g, "heun", steps=10, s_churn=0.5, sigma_max=20)
        x = s.run(batch=6, seed=3)
    assert np.isfinite(x).all()
    np.testing.assert_array_equal(bits(x), c_reference["trajectory_path"])


def test_trajectory_obstacle(c_reference):
    with lgd.Context() as ctx:
        prior = lgd.Model.trajectory_prior(ctx, frames=12)
        loss = lgd.Loss.obstacle(ctx, 24, lgd.TrajectoryLayout(frames=12), goal=[6, 3],
                                 obstacles=[[3, 1, 1], [5, 4, 0.5]], sharpness=10)
        g = lgd.Guidance.dps(prior, loss, step_rule="x0", scale=0.05)
        s = lgd.Sampler(g, "dpmpp_2m", steps=8, sigma_max=10)
        x = s.run(batch=5, seed=5)
    np.testing.assert_array_equal(bits(x), c_reference["trajectory_obstacle"])


def test_mixture_linear(c_reference):
    with lgd.Context() as ctx:
        g = lgd.Guidance(full_mixture(ctx), linear_loss(ctx), "mc", n_samples=20,
                         chunk_size=7, step_rule="normalized", scale=0.5, sigma_data=0.8)
        s = lgd.Sampler(g, "ddim", eta=0.7, steps=12)
        x = s.run(batch=16, seed=7, first_row=3)
    np.testing.assert_array_equal(bits(x), c_reference["mixture_linear"])


def test_mixture_sum_exact_and_posterior(c_reference):
    with lgd.Context() as ctx:
        m = lgd.Model.gmm(ctx, [1, 3], [[-1, 2], [1.5, -0.5]], [[0.2, 0.5], [0.3, 0.1]])
        sq = lgd.Loss.squared_error(ctx, [0.5, 0.5], weights=[1, 0.25])
        lg = lgd.Loss.logistic(ctx, [2, -1], 0.5)
        total = lgd.Loss.sum([sq, lg], weights=[0.8, 1.5])
        g = lgd.Guidance.exact(m, total, n_samples=16)
        s = lgd.Sampler(g, "euler", schedule="vp_linear", steps=10)
        x = s.run(batch=8, seed=11)
        draws = m.sample_posterior(np.float32(2) * pattern(10).reshape(5, 2), 0.7, n=3,
                                   seed=2, first_row=4)
    np.testing.assert_array_equal(bits(x), c_reference["mixture_sum_exact"])
    assert draws.shape == (5, 3, 2)
    np.testing.assert_array_equal(bits(draws), c_reference["posterior"])


def test_sdedit_and_term_report(c_reference):
    with lgd.Context() as ctx:
        g = lgd.Guidance.mc(full_mixture(ctx), linear_loss(ctx), 12)
        s = lgd.Sampler(g, steps=9)
        x = pattern(12).reshape(4, 3).copy()
        s.run(x, start_step=3, add_noise=True, seed=9)
        np.testing.assert_array_equal(bits(x), c_reference["sdedit"])
        g.set_seed(21)
        gt, xh, rep = g.term(pattern(12).reshape(4, 3), 1.3, step_index=2, first_row=5,
                             xhat=True, report=True, rows=True)
    np.testing.assert_array_equal(bits(gt), c_reference["term_g"])
    np.testing.assert_array_equal(bits(xh), c_reference["term_xhat"])
    means = [rep.sigma, rep.mean_loss, rep.mean_ess, rep.min_ess, rep.mean_grad_norm,
             rep.mean_lambda]
    np.testing.assert_array_equal(bits(means), c_reference["term_report"])
    np.testing.assert_array_equal(bits(rep.row_loss), c_reference["term_row_loss"])
    np.testing.assert_array_equal(bits(rep.row_ess), c_reference["term_row_ess"])
    np.testing.assert_array_equal(bits(rep.row_grad_norm), c_reference["term_row_grad_norm"])
    assert rep.active


def test_user_grid(c_reference):
    with lgd.Context() as ctx:
        m = lgd.Model.gmm(ctx, [1], [[0.5, -0.5]], [0.25])
        s = lgd.Sampler(lgd.Guidance.none(m), "heun", sigmas=[10, 3, 1, 0.3, 0.05])
        assert s.num_steps == 5
        np.testing.assert_array_equal(s.sigmas, np.float32([10, 3, 1, 0.3, 0.05, 0]))
        x = s.run(batch=7, seed=13, first_row=100)
    np.testing.assert_array_equal(bits(x), c_reference["user_grid"])


# ---- the lgd tool: `lgd mixture` samples for every method ----

MIX_STD = np.float32(0.2)
MIX_VAR = MIX_STD * MIX_STD  # the tool's mix_std * mix_std in float


def mixture_problem(ctx):
    prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [MIX_VAR, MIX_VAR])
    target = lgd.Model.gmm(ctx, [1.0], [[-1.0]], [MIX_VAR])
    s2 = float(MIX_STD) * float(MIX_STD)
    a = np.float32((-1.0 - 1.0) / s2)
    b = np.float32((1.0 - 1.0) / (2 * s2) + np.log(0.5 / 0.5))
    return prior, target, lgd.Loss.logistic(ctx, [a], b)


@pytest.mark.parametrize("sampler", ["ddim", "heun"])
def test_lgd_mixture_tool_samples(lgd_tool, tmp_path, sampler):
    samples, seeds = 300, 2
    subprocess.run([str(lgd_tool), "mixture", "--samples", str(samples), "--seeds",
                    str(seeds), "--n", "3,20", "--points", "2", "--quiet", "--sampler",
                    sampler, "--seed", "4", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    ref = {}
    with open(tmp_path / "samples.csv") as f:
        for r in csv.DictReader(f):
            ref.setdefault((r["method"], int(r["seed"])), []).append(float(r["value"]))
    with lgd.Context() as ctx:
        prior, target, loss = mixture_problem(ctx)
        methods = {
            "unguided": lgd.Guidance.none(prior),
            "exact": lgd.Guidance.none(target),
            "exact_is_n100": lgd.Guidance.exact(prior, loss, n_samples=100),
            "dps": lgd.Guidance.dps(prior, loss),
            "mc_n3": lgd.Guidance(prior, loss, "mc", n_samples=3, seed=4),
            "mc_n20": lgd.Guidance(prior, loss, "mc", n_samples=20, seed=4),
        }
        for key, g in methods.items():
            s = lgd.Sampler(g, sampler, steps=20, sigma_max=80, sigma_min=0.002, rho=7)
            for seed in range(4, 4 + seeds):
                x = s.run(batch=samples, seed=seed)
                # %.9g round-trips float32 exactly
                want = np.array(ref[(key, seed)], dtype=np.float32)
                np.testing.assert_array_equal(bits(x), bits(want), err_msg=f"{key} seed {seed}")
