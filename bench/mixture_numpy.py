#!/usr/bin/env python3
"""mixture_numpy.py - the LGD paper's 1-D mixture experiment with LGD-MC in plain
vectorised numpy (float64, one process), the reference beside bench-mixture (issue 16).

The same run as bench/bench_mixture.c and the LGD-MC row of `lgd mixture`, written from
the library's definitions (include/lgd/guidance.h, src/sampling/, src/models/model_gmm.c,
src/losses/loss_kernels_cpu.c) without using the library:

  prior     p0 = sum_k w_k N(mu_k, s^2), w = (0.5, 0.5), mu = (-1, 1), s = 0.2. At noise
            level sigma, with V = s^2 + sigma^2:
              r_k(x) = softmax_k(log w_k - (x - mu_k)^2 / (2 V))   (responsibilities)
              m_k(x) = mu_k + s^2 / V (x - mu_k)                   (component posterior mean)
              D(x)   = sum_k r_k m_k                               (the denoiser)
              D'(x)  = s^2 / V + sigma^2 / V^2 Var_r(mu)           (its Jacobian, 1-D)
            (Var_r(mu) = sum_k r_k mu_k^2 - (sum_k r_k mu_k)^2; this is the 1-D case of
            model_gmm.c's J^T v.)
  loss      l(x0) = softplus(t), t = -(a x0 + b), a = (mu_0 - mu_1) / s^2 = -50,
            b = (mu_1^2 - mu_0^2) / (2 s^2) + log(w_0 / w_1) = 0; dl/dx0 = -a sigmoid(t),
            computed in the stable form noted in guidance_mc().
  LGD-MC    x0_i = D(x) + r(sigma) eps_i, i = 1..n, r(sigma) = sigma / sqrt(1 + sigma^2)
            (the default radius, sigma_data = 1); w = softmax(-l(x0_i));
            g = -D'(x) sum_i w_i dl/dx0(x0_i).
  step rule score, scale 1: the guided denoiser is D(x) + sigma^2 g.
  sampler   DDIM with eta 0 (= Euler): x <- x + (sigma_next - sigma) (x - D_g(x)) / sigma,
            from x = sigma_max z, on the Karras grid sigma_i = (smax^(1/rho) + i / (N - 1)
            (smin^(1/rho) - smax^(1/rho)))^rho, i < N, then 0 (sigma_max 80, sigma_min
            0.002, rho 7), each level rounded to float32 as the library stores it.

The random numbers are numpy's (PCG64), not the library's Philox streams, so the samples
agree with the C run statistically, not bit for bit: with 10,000 samples and 20 steps the
seed-to-seed standard deviation is about 0.003 for the mean and 0.005 for the std (five
seeds of `lgd mixture`: mean -0.9511 +- 0.0027, std 0.2718 +- 0.0054; five seeds here:
-0.9506 +- 0.0026, 0.2719 +- 0.0044).

It runs --warmup untimed runs and --reps timed ones, each from the same seed, and prints
"rep K: T s" per rep (read by bench/run_mixture_bench.sh), the median, min and max, and
the mean and std (n - 1) of the samples with their Gaussian KL to the target N(-1, 0.2^2).

    python3 bench/mixture_numpy.py --reps 5
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

WEIGHTS = np.array([0.5, 0.5])
MEANS = np.array([-1.0, 1.0])
STD = 0.2
SIGMA_MAX, SIGMA_MIN, RHO = 80.0, 0.002, 7.0


def karras_sigmas(steps: int) -> np.ndarray:
    """The library's Karras grid (src/sampling/schedule.c): computed in float64, each
    level rounded to float32, the endpoints exact, a final 0."""
    ramp = np.arange(steps) / (steps - 1) if steps > 1 else np.zeros(1)
    a, b = SIGMA_MAX ** (1.0 / RHO), SIGMA_MIN ** (1.0 / RHO)
    s = (a + ramp * (b - a)) ** RHO
    s[0] = SIGMA_MAX
    if steps > 1:
        s[-1] = SIGMA_MIN
    grid = np.zeros(steps + 1)
    grid[:steps] = s.astype(np.float32)
    return grid


def logistic_ab() -> tuple[float, float]:
    """a and b of the loss from the mixture's log-odds (examples/lgd/mixture_problem.c),
    rounded to float32 as the library keeps them."""
    s2 = float(np.float32(STD)) ** 2
    a = (MEANS[0] - MEANS[1]) / s2
    b = (MEANS[1] ** 2 - MEANS[0] ** 2) / (2.0 * s2) + math.log(WEIGHTS[0] / WEIGHTS[1])
    return float(np.float32(a)), float(np.float32(b))


def denoise(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """D(x) and D'(x) of the mixture at noise level sigma, for x of shape [batch]."""
    s2, v = STD * STD, STD * STD + sigma * sigma
    d = x[:, None] - MEANS                               # [batch][K]
    logits = np.log(WEIGHTS) - d * d / (2.0 * v)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    rmu = r @ MEANS                                      # sum_k r_k mu_k
    xhat = rmu + (s2 / v) * (x - rmu)                    # sum_k r_k m_k
    var_mu = r @ (MEANS * MEANS) - rmu * rmu
    jac = s2 / v + (sigma * sigma) / (v * v) * var_mu
    return xhat, jac


def guidance_mc(x: np.ndarray, sigma: float, n: int, a: float, b: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """D(x) and the LGD-MC estimate of g = grad_x log p_sigma(y | x) with n draws."""
    xhat, jac = denoise(x, sigma)
    r = sigma / math.sqrt(sigma * sigma + 1.0)
    x0 = rng.standard_normal((x.shape[0], n))
    x0 *= r
    x0 += xhat[:, None]                                  # x0_i = xhat + r eps_i
    t = x0
    t *= -a
    t -= b                                               # t = -(a x0 + b), in place
    # softplus(t) = max(t, 0) + log1p(e) and sigmoid(t) = (t >= 0 ? 1 : e) / (1 + e) with
    # e = exp(-|t|): one exp for both, stable for any t (15% faster than np.logaddexp and
    # a second exp for the sigmoid, measured)
    e = np.exp(-np.abs(t))
    loss = np.log1p(e)
    loss += np.maximum(t, 0.0)
    sig = np.where(t >= 0.0, 1.0, e)
    sig /= 1.0 + e
    w = np.exp(loss.min(axis=1, keepdims=True) - loss)   # exp(-l - max(-l))
    v = -a * np.einsum("ij,ij->i", w, sig) / w.sum(axis=1)  # sum_i w_i dl/dx0 / sum_i w_i
    return xhat, -jac * v


def run(samples: int, steps: int, n: int, seed: int) -> np.ndarray:
    """One sampling run: DDIM (eta 0) with LGD-MC guidance, score step rule, scale 1."""
    rng = np.random.default_rng(seed)
    a, b = logistic_ab()
    sig = karras_sigmas(steps)
    x = sig[0] * rng.standard_normal(samples)
    for i in range(steps):
        sigma, nxt = sig[i], sig[i + 1]
        xhat, g = guidance_mc(x, sigma, n, a, b, rng)
        den = xhat + (sigma * sigma) * g
        x = x + (nxt - sigma) * (x - den) / sigma
    return x


def kl_gauss(m1: float, s1: float, m2: float, s2: float) -> float:
    """KL(N(m1, s1^2) || N(m2, s2^2))."""
    return math.log(s2 / s1) + (s1 * s1 + (m1 - m2) ** 2) / (2.0 * s2 * s2) - 0.5


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5, help="timed runs (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    p.add_argument("--samples", type=int, default=10000, help="samples per run (default 10000)")
    p.add_argument("--n", type=int, default=100, help="LGD-MC draws (default 100)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of numpy's generator (default 0)")
    o = p.parse_args(argv)
    if o.reps < 1 or o.warmup < 0 or o.samples < 2 or o.n < 1 or o.steps < 1 or o.seed < 0:
        p.error("--reps, --n, --steps >= 1, --warmup, --seed >= 0, --samples >= 2")

    print(f"mixture_numpy: LGD-MC n={o.n}, {o.samples} samples x {o.steps} steps, seed {o.seed}")
    print(f"numpy {np.__version__}, float64, one process")
    print(f"{o.warmup} warm-up run(s), {o.reps} timed rep(s)", flush=True)
    for _ in range(o.warmup):
        run(o.samples, o.steps, o.n, o.seed)
    times, first, identical = [], None, True
    for k in range(o.reps):
        t0 = time.perf_counter()
        x = run(o.samples, o.steps, o.n, o.seed)
        times.append(time.perf_counter() - t0)
        if first is None:
            first = x
        elif not np.array_equal(first, x):
            identical = False
        print(f"rep {k + 1}: {times[-1]:.4f} s", flush=True)
    mean, std = float(first.mean()), float(first.std(ddof=1))
    print(f"time: median {statistics.median(times):.4f} s, min {min(times):.4f} s, "
          f"max {max(times):.4f} s ({o.reps} reps)")
    print(f"samples: mean {mean:.6f}, std {std:.6f}, KL(N(-1, 0.2^2) || N(mean, std^2)) "
          f"{kl_gauss(MEANS[0], STD, mean, std):.5f}")
    print(f"samples identical in every rep: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
