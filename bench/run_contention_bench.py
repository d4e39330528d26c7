#!/usr/bin/env python3
"""run_contention_bench.py - the CPU backend on a busy machine (issue 16): bench-sampling's
128-D mixture step (DPS and LGD-MC n = 100) with 1 thread, and with 2 threads with the
contention guard off (LGD_CPU_ADAPTIVE=0) and on (the default; src/backend/cpu/
cpu_contention.h), while 0, 1 and 3 competing busy processes run (shell busy loops this
script starts and stops itself).

Rounds are interleaved: each round runs every (busy, configuration) pair once, each in
its own process, so that a change of the machine's own load between rounds hits them
alike. The table gives the median, min and max over the rounds of bench-sampling's
median ms per step; the ratios are 2 threads / 1 thread at the same number of busy
processes (the issue's target: 2 threads on a busy machine no slower than 1 thread).
OMP_WAIT_POLICY and GOMP_SPINCOUNT are unset (the library's own behaviour).

usage: bench/run_contention_bench.py [BUILD_DIR] [--reps R] [--steps S] [--busy LIST]
       BUILD_DIR defaults to build; R to 3; S (bench-sampling's timed steps) to 3;
       LIST to 0,1,3.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [  # key, label, threads, guard
    ("t1", "1 thread", 1, True),
    ("t2_off", "2 threads, guard off", 2, False),
    ("t2_on", "2 threads, guard on", 2, True),
]
METHODS = ["DPS", "LGD-MC n=100"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--busy", default="0,1,3")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "bench-sampling")
    if not os.access(bench, os.X_OK):
        sys.exit(f"run_contention_bench.py: {bench} not built (ninja -C {a.build} bench/bench-sampling)")
    if a.reps < 1 or a.steps < 1:
        sys.exit("run_contention_bench.py: --reps and --steps must be >= 1")
    levels = [int(b) for b in a.busy.split(",")]
    env0 = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    times = {}  # (busy, key, method) -> [ms]
    busy = []

    def stop_busy():
        for p in busy:
            p.kill()
            p.wait()
        busy.clear()

    print(f"contention benchmark: bench-sampling (128-D mixture, batch 4096), {a.steps} timed "
          f"steps per run; {a.reps} interleaved rounds; busy processes {a.busy}")
    print(f"machine: {os.cpu_count()} cores; load average at start: "
          f"{open('/proc/loadavg').read().split()[:3]}")
    try:
        for r in range(1, a.reps + 1):
            print(f"round {r} of {a.reps}")
            for b in levels:
                stop_busy()
                for _ in range(b):
                    busy.append(subprocess.Popen(["sh", "-c", "while :; do :; done"],
                                                 stdin=subprocess.DEVNULL))
                time.sleep(0.2)
                for key, label, threads, guard in CONFIGS:
                    env = dict(env0)
                    env["LGD_CPU_ADAPTIVE"] = "1" if guard else "0"
                    out = subprocess.run([bench, "--threads", str(threads), "--steps",
                                          str(a.steps)], env=env, capture_output=True,
                                         text=True, check=True).stdout
                    row = []
                    for m in METHODS:
                        hit = re.search(r"^" + re.escape(m) + r"\s+([0-9.]+)", out, re.M)
                        if not hit:
                            sys.exit(f"no '{m}' row in bench-sampling's output:\n{out}")
                        v = float(hit.group(1))
                        times.setdefault((b, key, m), []).append(v)
                        row.append(f"{m} {v:8.1f} ms")
                    print(f"  busy {b}  {label:22s} " + "   ".join(row))
    finally:
        stop_busy()
    print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}\n")
    print(f"{'busy':>4}  {'configuration':22s} " +
          " ".join(f"{m + ' median':>20s} {'min':>8s} {'max':>8s}" for m in METHODS))
    for b in levels:
        for key, label, _, _ in CONFIGS:
            cells = []
            for m in METHODS:
                v = times[(b, key, m)]
                cells.append(f"{statistics.median(v):20.1f} {min(v):8.1f} {max(v):8.1f}")
            print(f"{b:4d}  {label:22s} " + " ".join(cells))
    print("\nratios of medians, 2 threads / 1 thread at the same load (target: <= 1 when busy)")
    for b in levels:
        for key in ("t2_off", "t2_on"):
            r = [statistics.median(times[(b, key, m)]) / statistics.median(times[(b, "t1", m)])
                 for m in METHODS]
            print(f"  busy {b}  {dict((k, l) for k, l, _, _ in CONFIGS)[key]:22s} " +
                  "   ".join(f"{m} {x:5.2f}" for m, x in zip(METHODS, r)))


if __name__ == "__main__":
    main()
