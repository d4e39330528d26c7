#!/usr/bin/env python3
"""The KL tables of `lgd mixture` (the LGD paper's 1-D Gaussian-mixture experiment,
Sec. 6.1 and App. B.1) from Python, with the loss written in numpy.

Prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2) (an exact mixture model), loss
l(x0) = -log p(y = 0 | x0) = softplus(-(a x0 + b)) with a = -50, b = 0 (the mixture's own
log-odds), whose target p0 exp(-l) / Z is N(-1, 0.2^2). Every method samples with the same
sampler (DDIM, 20 steps, Karras sigmas 80 -> 0.002, rho 7), the score step rule at scale 1
and the same seeds: unguided, exact (the one-component target model), exact importance
sampling with 100 draws, DPS and LGD-MC for each n of --n. For each method: mean, std and
KL(N(-1, 0.2^2) || N(mean, std^2)) of each run, summarised over the seeds, and the paper's
protocol (runs of --paper-samples samples: the consecutive blocks of each run).

The numbers equal those of `lgd mixture` with the same options (its tables' digits; the
s/run column and the speed line are this program's own timings). The loss is numpy code
that repeats the C built-in's float32 arithmetic (src/losses/loss_kernels_cpu.c and the
polynomial softplus and sigmoid of src/core/hd_math.h; see softplus_sigmoid()), so its
values and gradients, and the samples, are the built-in's bit for bit. --builtin-loss
uses the library's logistic loss itself.

    LGD_BUILD_DIR=build python3 bindings/python/examples/mixture.py --samples 2000 --seeds 2
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

import lgd

MEANS = (-1.0, 1.0)
WEIGHTS = (0.5, 0.5)
STD = np.float32(0.2)
EXACT_IS_DRAWS = 100


# ---- the loss, in numpy ----
#
# liblgd's logistic loss computes softplus and sigmoid with the branch-free polynomials of
# src/core/hd_math.h (lgd_exp_neg, lgd_log_pos, lgd_softplus_sigmoid), not with libm.
# These are ports of them to numpy: the same float32 operations in the same order (each
# numpy ufunc rounds once, as C's float arithmetic without contraction), the same
# constants (each decimal rounds to the same float32 through float64 as C's `f` literal),
# bit casts as views on uint32, and C's truncating integer division, so the loss is the
# built-in's to the bit (bindings/python/tests/test_loss.py checks it).

F32, U32 = np.float32, np.uint32


def _exp_neg(a: np.ndarray) -> np.ndarray:
    """exp(-a) for float32 a in [0, 104], as lgd_exp_neg: -a = n ln2 + r (Cody-Waite),
    exp(r) by its Taylor polynomial of degree 7, 2^n from exponent bits in two factors."""
    x = -a
    t = x * F32(1.44269504088896341)
    n = (t + F32(12582912.0)) - F32(12582912.0)  # round to nearest (|t| < 2^22)
    r = (x - n * F32(0.693359375)) + n * F32(2.12194440e-4)
    p = F32(1.0) + r * (F32(1.0) + r * (F32(0.5) + r * (F32(1.66666672e-1) + r * (
        F32(4.16666679e-2) + r * (F32(8.33333377e-3) + r * (F32(1.38888892e-3) +
                                                            r * F32(1.98412701e-4)))))))
    ni = n.astype(np.int32)
    n1 = (ni / 2).astype(np.int32)  # truncated toward zero, as C's int division
    n2 = ni - n1
    f1 = ((n1 + 127).astype(U32) << U32(23)).view(F32)
    f2 = ((n2 + 127).astype(U32) << U32(23)).view(F32)
    return p * f1 * f2


def _log_pos(x: np.ndarray) -> np.ndarray:
    """log(x) for finite normal float32 x > 0, as lgd_log_pos: x = 2^e m with m in
    [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by its odd series to s^9,
    plus e ln 2 in two parts."""
    b = x.view(U32)
    mant = b & U32(0x007FFFFF)
    big = (mant >= U32(0x003504F3)).astype(U32)  # m >= sqrt(2): use m / 2, e + 1
    e = (b >> U32(23)).astype(np.int32) - 127 + big.astype(np.int32)
    m = ((mant | U32(0x3F800000)) - (big << U32(23))).view(F32)
    s = (m - F32(1.0)) / (m + F32(1.0))
    s2 = s * s
    p = s2 * (F32(0.333333333) + s2 * (F32(0.2) + s2 * (F32(0.142857143) +
                                                        s2 * F32(0.111111111))))
    ef = e.astype(F32)
    return ef * F32(0.693145752) + (F32(2.0) * s + (F32(2.0) * s * p +
                                                    ef * F32(1.42860677e-6)))


def softplus_sigmoid(t: np.ndarray) -> tuple:
    """(softplus(t), sigmoid(t)) of float32 t, as lgd_softplus_sigmoid: e = exp(-|t|) (|t|
    clamped at 104), softplus = max(t, 0) + log1p(e) with log1p from log(1 + e) and the
    rounding of 1 + e corrected, sigmoid = 1 / (1 + e) or e / (1 + e) by t's sign, the
    selections on bits. A NaN t gives a NaN softplus."""
    tb = np.ascontiguousarray(t, F32).view(U32)
    ab = tb & U32(0x7FFFFFFF)
    nan = (ab > U32(0x7F800000)).astype(U32) * U32(0xFFFFFFFF)
    e = _exp_neg(np.minimum(ab, U32(0x42D00000)).view(F32))  # |t| <= 104.0
    w = F32(1.0) + e
    log1p_e = _log_pos(w) + (e - (w - F32(1.0))) / w
    neg = (tb >> U32(31)) * U32(0xFFFFFFFF)  # all ones where the sign bit is set
    pos = (tb & ~neg).view(F32)  # max(t, 0)
    softplus = ((pos + log1p_e).view(U32) | nan).view(F32)
    v = F32(1.0) / w
    ev = e * v
    sigmoid = ((v.view(U32) & ~neg) | (ev.view(U32) & neg)).view(F32)
    return softplus, sigmoid


def logistic_loss(a: float, b: float) -> Callable[..., None]:
    """l(x) = softplus(-(a x + b)) and its gradient for x [batch][n][1], computed as the
    library's CPU kernel does for dim 1 (logistic_rows, src/losses/loss_kernels_cpu.c):
    z = b + a x in double, t = -(float)z, then (sp, sg) = softplus_sigmoid(t) in float32,
    loss = sp, grad = -sg a. The values and gradients are the built-in's bit for bit."""
    a64, b64 = float(a), float(b)
    fa = F32(a)

    def loss(x: np.ndarray, value: np.ndarray, grad: Optional[np.ndarray]) -> None:
        z = b64 + a64 * x[..., 0].astype(np.float64)
        sp, sg = softplus_sigmoid((-z).astype(F32))
        value[...] = sp
        if grad is not None:  # None when the library needs values only (exact-IS)
            np.multiply(-sg, fa, out=grad[..., 0])

    return loss


# ---- statistics, as examples/lgd/sample_stats.c computes them ----

def mean_std(v: np.ndarray) -> tuple:
    """Mean and sample std (n - 1), summed in double in order (np.cumsum is sequential)."""
    v = v.astype(np.float64)
    m = np.cumsum(v)[-1] / v.size
    return float(m), math.sqrt(float(np.cumsum((v - m) * (v - m))[-1]) / (v.size - 1))


def mean_sd(v: List[float]) -> tuple:
    a = np.array(v, np.float64)
    m = np.cumsum(a)[-1] / a.size
    sd = math.sqrt(float(np.cumsum((a - m) * (a - m))[-1]) / (a.size - 1)) if a.size > 1 else 0.0
    return float(m), sd


def kl_gauss(m1: float, s1: float, m2: float, s2: float) -> float:
    if not s2 > 0:
        return math.inf
    return math.log(s2 / s1) + (s1 * s1 + (m1 - m2) ** 2) / (2 * s2 * s2) - 0.5


def quantiles(v: List[float], qs) -> List[float]:
    s = sorted(v)
    out = []
    for q in qs:
        pos = q * (len(s) - 1)
        lo = int(math.floor(pos))
        hi = lo + 1 if lo + 1 < len(s) else lo
        out.append(s[lo] + (pos - lo) * (s[hi] - s[lo]))
    return out


Q = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Method:
    name: str
    kind: str
    n: int = 0
    on_target: bool = False
    sampler: Optional[lgd.Sampler] = None
    run_mean: List[float] = field(default_factory=list)
    run_std: List[float] = field(default_factory=list)
    run_kl: List[float] = field(default_factory=list)
    run_sec: List[float] = field(default_factory=list)
    blk_kl: List[float] = field(default_factory=list)
    blk_std: List[float] = field(default_factory=list)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=10000, help="samples per run (10000)")
    p.add_argument("--paper-samples", type=int, default=100,
                   help="samples per run of the paper's protocol (100)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (20)")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "euler", "heun", "dpmpp2m"])
    p.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity (0)")
    p.add_argument("--seed", type=int, default=0, help="first seed (0)")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (5)")
    p.add_argument("--n", default="10,100", help="LGD-MC draws, comma-separated (10,100)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: OpenMP's)")
    p.add_argument("--builtin-loss", action="store_true",
                   help="the library's logistic loss instead of the numpy one")
    p.add_argument("--progress", action="store_true", help="a progress bar per run")
    args = p.parse_args(argv)
    if args.samples < 2 or args.paper_samples < 2 or args.seeds < 1:
        p.error("--samples and --paper-samples must be >= 2, --seeds >= 1")
    mc = [int(v) for v in args.n.split(",") if v]
    blocks = args.samples // args.paper_samples

    with lgd.Context(num_threads=args.threads) as ctx:
        var = STD * STD  # the tool's mix_std * mix_std, in float
        prior = lgd.Model.gmm(ctx, WEIGHTS, [[MEANS[0]], [MEANS[1]]], [var, var])
        target = lgd.Model.gmm(ctx, [1.0], [[MEANS[0]]], [var])
        s2 = float(STD) * float(STD)
        a = np.float32((MEANS[0] - MEANS[1]) / s2)
        b = np.float32((MEANS[1] ** 2 - MEANS[0] ** 2) / (2 * s2) +
                       math.log(WEIGHTS[0] / WEIGHTS[1]))
        if args.builtin_loss:
            loss = lgd.Loss.logistic(ctx, [a], b)
        else:
            loss = lgd.Loss.from_callable(ctx, 1, logistic_loss(float(a), float(b)),
                                          inplace=True)

        print("lgd mixture (Python): the LGD paper's 1-D Gaussian mixture (Sec. 6.1, App. B.1)")
        print(f"liblgd {lgd.version_string()}, backend {ctx.backend_name}; loss "
              f"{'built-in' if args.builtin_loss else 'numpy (Python callback)'}")
        print("prior  0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)")
        print("loss   -log p(y=0 | x0) = softplus(-(%g x0 + %g))   target N(-1, 0.2^2)"
              % (a, b))
        print("sampler %s%s, %d steps, Karras sigmas 80 -> 0.002 (rho 7); score step rule, "
              "scale 1" % (args.sampler, " (eta %g)" % args.eta if args.sampler == "ddim"
                           else "", args.steps))
        print("seeds %d..%d; %d samples per run%s\n" % (
            args.seed, args.seed + args.seeds - 1, args.samples,
            "; paper protocol: %d runs of %d samples" % (blocks * args.seeds,
                                                         args.paper_samples)
            if blocks else ""))

        methods = [Method("unguided", "none"), Method("exact", "none", on_target=True),
                   Method(f"exact-IS n={EXACT_IS_DRAWS}", "exact", EXACT_IS_DRAWS),
                   Method("DPS", "dps", 1)] + [Method(f"LGD-MC n={n}", "mc", n) for n in mc]
        kind = {"dpmpp2m": "dpmpp_2m"}.get(args.sampler, args.sampler)
        for m in methods:
            g = lgd.Guidance(target if m.on_target else prior,
                             None if m.kind == "none" else loss, m.kind,
                             n_samples=max(m.n, 1), step_rule="score", scale=1.0,
                             seed=args.seed)
            m.sampler = lgd.Sampler(g, kind, steps=args.steps, schedule="karras",
                                    sigma_max=80.0, sigma_min=0.002, rho=7.0, eta=args.eta)

        x = np.empty((args.samples, 1), np.float32)
        m0, sd0 = MEANS[0], float(STD)
        for si in range(args.seeds):
            seed = args.seed + si
            for m in methods:
                m.sampler.guidance.set_seed(seed)
                t0 = time.perf_counter()
                m.sampler.run(x, seed=seed, progress=True if args.progress else None)
                m.run_sec.append(time.perf_counter() - t0)
                mean, std = mean_std(x[:, 0])
                m.run_mean.append(mean)
                m.run_std.append(std)
                m.run_kl.append(kl_gauss(m0, sd0, mean, std))
                for blk in range(blocks):
                    bm, bs = mean_std(x[blk * args.paper_samples:(blk + 1) * args.paper_samples, 0])
                    m.blk_std.append(bs)
                    m.blk_kl.append(kl_gauss(m0, sd0, bm, bs))

    # the large-run table
    print("KL(N(-1, 0.2^2) || N(mean, std^2)), %d samples per run, mean +- sd over %d seed%s"
          % (args.samples, args.seeds, "" if args.seeds == 1 else "s"))
    print("%-15s %19s %19s %21s %10s" % ("method", "mean", "std", "KL", "s/run"))
    print("%-15s %19.4f %19.4f %21s %10s" % ("target", MEANS[0], float(STD), "0", "-"))
    for m in methods:
        mm, msd = mean_sd(m.run_mean)
        sm, ssd = mean_sd(m.run_std)
        km, ksd = mean_sd(m.run_kl)
        t, _ = mean_sd(m.run_sec)
        print("%-15s %9.4f +- %6.4f %9.4f +- %6.4f %10.5f +- %7.5f %10.3f"
              % (m.name, mm, msd, sm, ssd, km, ksd, t))
    dps, last = methods[3], methods[-1]
    ratios = [d / l for d, l in zip(dps.run_kl, last.run_kl)]
    rq = quantiles(ratios, Q)
    print("KL(DPS) / KL(%s) = %.1f (ratio of the means; per seed %.1f to %.1f)\n"
          % (last.name, mean_sd(dps.run_kl)[0] / mean_sd(last.run_kl)[0], rq[0], rq[4]))
    if blocks:
        print("Paper protocol (App. B.1): %d samples per run, %d runs (%d seeds x %d blocks)"
              % (args.paper_samples, blocks * args.seeds, args.seeds, blocks))
        print("%-15s %10s %21s %10s %10s %10s" % ("method", "KL median", "[25%, 75%]", "min",
                                                  "max", "mean std"))
        for m in methods:
            q = quantiles(m.blk_kl, Q)
            print("%-15s %10.4f   [%7.4f, %7.4f] %10.4f %10.4f %10.4f"
                  % (m.name, q[2], q[1], q[3], q[0], q[4], mean_sd(m.blk_std)[0]))
        br = [d / l for d, l in zip(dps.blk_kl, last.blk_kl)]
        rq = quantiles(br, Q)
        below = sum(r > 1.0 for r in br)
        print("KL(DPS) / KL(%s) per run: median %.1f [25%%: %.1f, 75%%: %.1f]; "
              "%s below DPS in %.1f %% of the runs\n"
              % (last.name, rq[2], rq[1], rq[3], last.name, 100.0 * below / len(br)))
    for m in methods:
        if m.kind == "mc" and m.n == 100:
            print("speed: %s, %d samples x %d steps: %.3f s per run (mean of %d)"
                  % (m.name, args.samples, args.steps, mean_sd(m.run_sec)[0], args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
