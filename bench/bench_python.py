#!/usr/bin/env python3
"""bench_python.py - the cost of driving liblgd from Python.

The `lgd mixture` experiment's LGD-MC n = 100 run (prior 0.5 N(-1, 0.2^2) +
0.5 N(1, 0.2^2), logistic loss -log p(y = 0 | x0), DDIM 20 steps, Karras sigmas
80 -> 0.002, --samples samples per run), timed as one lgd_sampler_run:

  C tool         the `lgd mixture` tool's own timing of that run (timing.csv, mc_n100);
  C in-process   lgd_sampler_run called straight through ctypes in this process, with the
                 library's logistic loss and no progress callback (the library's own
                 time, beside the package's calls);
  py builtin     the package with the library's logistic loss (what the Python layer
                 adds: the call, the wrapped array, a progress callback per step);
  py numpy       the package with the loss written in numpy (float32), called by the
                 library once per chunk of draws (default chunk_size: 16 draws);
  py numpy c100  the same with chunk_size 100 (one call per step);
  py numpy exact the numpy loss of bindings/python/examples/mixture.py, which repeats
                 the C kernel's float32 arithmetic bit for bit, for the record.

The variants are interleaved, repetition by repetition, so that a change of the machine's
load hits them alike; each row reports the median, min and max wall-clock seconds per run
over the repetitions, the ratio of its median to the C tool's, and the median CPU time of
the process (all its threads) with its ratio to the in-process C run. On a machine shared
with other work the CPU times with --threads 1 are the steadier comparison. Targets:
builtin within 1.10x of C, numpy within 1.30x.

    LGD_BUILD_DIR=build python3 bench/bench_python.py --reps 7
    bench/run_python_bench.sh build            # the same, finding the package itself
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bindings" / "python" / "src"))
sys.path.insert(0, str(HERE.parent / "bindings" / "python" / "examples"))

import lgd  # noqa: E402
import mixture  # noqa: E402  (bindings/python/examples/mixture.py)

A, B = np.float32(-50.0), np.float32(0.0)


def numpy_loss(x: np.ndarray, value: np.ndarray, grad: Optional[np.ndarray]) -> None:
    """softplus(-(a x + b)) and its gradient in float32 numpy: t = -(a x + b),
    loss = max(t, 0) + log(1 + exp(-|t|)), grad = -a sigmoid(t) with sigmoid(t) =
    (t >= 0 ? 1 : e) / (1 + e). log(1 + e) rather than log1p(e): numpy's float32 log is
    vectorised, its log1p is libm's scalar log1pf (4x the time here); the absolute error,
    below 6e-8, does not matter to a loss."""
    t = -(x[..., 0] * A + B)
    e = np.exp(-np.abs(t))
    ope = np.float32(1) + e
    np.add(np.maximum(t, np.float32(0)), np.log(ope), out=value)
    if grad is not None:
        s = np.where(t >= 0, np.float32(1), e)
        np.divide(s, ope, out=s)
        np.multiply(s, -A, out=grad[..., 0])


def c_tool_run(tool: Path, samples: int, seed: int, threads: int) -> float:
    """One `lgd mixture` run; its own timing of the LGD-MC n = 100 run, in seconds."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([str(tool), "mixture", "--samples", str(samples), "--seeds", "1",
                        "--seed", str(seed), "--n", "100", "--points", "2", "--quiet",
                        "--threads", str(threads), "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "timing.csv")) as f:
            for row in csv.DictReader(f):
                if row["method"] == "mc_n100":
                    return float(row["seconds_mean"])
    raise RuntimeError("timing.csv has no mc_n100 row")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tool", help="the lgd tool (default: $LGD_BUILD_DIR/examples/lgd/lgd)")
    args = p.parse_args()
    tool = Path(args.tool) if args.tool else Path(os.environ.get("LGD_BUILD_DIR", "build")) \
        / "examples" / "lgd" / "lgd"
    if not os.access(tool, os.X_OK):
        p.error(f"no lgd tool at {tool} (set LGD_BUILD_DIR or --tool)")

    times: Dict[str, List[float]] = {}
    cpu: Dict[str, List[float]] = {}
    with lgd.Context(num_threads=args.threads) as ctx:
        var = np.float32(0.2) * np.float32(0.2)
        prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [var, var])
        losses = {
            "py builtin": (lgd.Loss.logistic(ctx, [A], B), 0),
            "py numpy": (lgd.Loss.from_callable(ctx, 1, numpy_loss, inplace=True), 0),
            "py numpy c100": (lgd.Loss.from_callable(ctx, 1, numpy_loss, inplace=True), 100),
            "py numpy exact": (lgd.Loss.from_callable(
                ctx, 1, mixture.logistic_loss(float(A), float(B)), inplace=True), 0),
        }
        samplers = {name: lgd.Sampler(lgd.Guidance(prior, loss, "mc", n_samples=100,
                                                   chunk_size=chunk), "ddim", steps=20,
                                      sigma_max=80.0, sigma_min=0.002, rho=7.0)
                    for name, (loss, chunk) in losses.items()}
        x = np.empty((args.samples, 1), np.float32)
        raw = lgd.Sampler(lgd.Guidance(prior, losses["py builtin"][0], "mc", n_samples=100),
                          "ddim", steps=20, sigma_max=80.0, sigma_min=0.002, rho=7.0)
        xt = lgd.Tensor.wrap(ctx, x)

        def c_raw(seed: int) -> None:
            st = lgd._lib.lgd_sampler_run(raw.ptr, xt.ptr, seed, 0, lgd._core.NO_PROGRESS, None)
            if st:
                raise lgd.errors.error_for(st, "lgd_sampler_run")

        runs: Dict[str, Callable[[int], None]] = {"C in-process": c_raw}
        for name, s in samplers.items():
            runs[name] = (lambda s: lambda seed: s.run(x, seed=seed))(s)
        for run in runs.values():  # warm-up (page faults, thread pools)
            run(0)
        c_tool_run(tool, args.samples, 0, args.threads)
        for rep in range(args.reps):
            times.setdefault("C tool", []).append(
                c_tool_run(tool, args.samples, rep, args.threads))
            for name, run in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                run(rep)
                times.setdefault(name, []).append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(time.process_time() - c0)
            print(f"rep {rep + 1}/{args.reps}: " +
                  ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()), file=sys.stderr)

    c_med = statistics.median(times["C tool"])
    c_cpu = statistics.median(cpu["C in-process"])
    print(f"LGD-MC n=100, {args.samples} samples x 20 DDIM steps, one lgd_sampler_run; "
          f"{args.reps} repetitions (interleaved); threads {args.threads or 'default'}; "
          f"liblgd {lgd.version_string()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'variant':<16}{'wall med':>10}{'min':>8}{'max':>8}{'x C tool':>10}"
          f"{'cpu med':>10}{'x C cpu':>9}")
    for name, v in times.items():
        med, lo, hi = statistics.median(v), min(v), max(v)
        line = f"{name:<16}{med:>10.3f}{lo:>8.3f}{hi:>8.3f}{med / c_med:>10.3f}"
        if name in cpu:
            cm = statistics.median(cpu[name])
            line += f"{cm:>10.3f}{cm / c_cpu:>9.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
