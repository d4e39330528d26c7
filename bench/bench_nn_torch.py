#!/usr/bin/env python3
"""PyTorch side of the network benchmark: one guided denoising step.

    python3 bench/bench_nn_torch.py --file tests/fixtures/nn/unet.safetensors \\
        --batch 4 --threads 2 [--sigma 1.0] [--t 500] [--reps 20] [--json]

The network file is read back with tools/lgd_convert.py's own safetensors
reader into the matching module of tools/lgd_torch_models.py (float32, CPU,
eager mode, no torch.compile).  For x [B][D] (seeded N(0, 1)) the step is the
eps-prediction VP adapter

    c_in = 1/sqrt(1 + sigma^2),  xhat = x - sigma * F(c_in x, t)

with t the value of --t passed as is, and the guidance

  unguided    xhat only, under torch.no_grad();
  dps         l(xhat) = 0.5 |xhat - y|^2 per row (y = 0), g = -grad_x sum_rows l(xhat)
              (one backward);
  lgd_mc_N    x_i = xhat + r z_i, r = sigma/sqrt(1 + sigma^2), z_i ~ N(0, I), N per
              row; w = softmax_i(-l(x_i)) per row; v = sum_i w_i grad l(x_i), with
              grad l(x_i) = x_i - y in closed form (no autograd; --mc-grad autograd
              takes it from autograd on the draws instead, which is slower);
              g = -(dxhat/dx)^T v by one backward of <xhat, v>.

Each mode is timed (median, min and max of --reps steps after --warmup steps, and
the median process CPU time, every thread) in its own child process, so that its
memory figures are its own: peak_rss_growth_kib is
the peak RSS over warm-up and timed steps minus the RSS before the first step
(model and inputs loaded; it includes first-use costs: library code pages,
allocator pools, thread pools), and steady_peak_rss_growth_kib the peak RSS
over the timed steps minus the RSS at their start (the peak is reset through
/proc/self/clear_refs after warm-up).  --json prints one JSON object for a C
benchmark to read.
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))

import torch  # noqa: E402

import lgd_convert  # noqa: E402

MODES = ("unguided", "dps", "lgd_mc_10", "lgd_mc_100")


def _maxrss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status_kib(field):
    """VmRSS / VmHWM of this process from /proc/self/status (KiB), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Step:
    def __init__(self, module, x, cond, sigma, t, seed, mc_grad):
        self.F = module
        self.x = x
        self.cond = cond
        self.sigma = float(sigma)
        self.c_in = 1.0 / math.sqrt(1.0 + self.sigma ** 2)
        self.r = self.sigma / math.sqrt(1.0 + self.sigma ** 2)
        self.t = torch.tensor([float(t)], dtype=torch.float32)
        self.y = torch.zeros_like(x)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.mc_grad = mc_grad

    def denoise(self, x):
        return x - self.sigma * self.F(self.c_in * x, self.t, self.cond)

    def unguided(self):
        with torch.no_grad():
            return self.denoise(self.x)

    def dps(self):
        x = self.x.detach().requires_grad_(True)
        xhat = self.denoise(x)
        loss = 0.5 * ((xhat - self.y) ** 2).sum(dim=1)
        (g,) = torch.autograd.grad(loss.sum(), x)
        return -g

    def lgd_mc(self, n):
        x = self.x.detach().requires_grad_(True)
        xhat = self.denoise(x)
        xh = xhat.detach()
        B, D = xh.shape
        z = torch.randn(B, n, D, generator=self.gen, dtype=xh.dtype)
        if self.mc_grad == "closed":
            with torch.no_grad():
                xi = xh[:, None, :] + self.r * z            # [B][n][D]
                diff = xi - self.y[:, None, :]
                li = 0.5 * (diff * diff).sum(dim=2)          # [B][n]
                w = torch.softmax(-li, dim=1)
                v = torch.einsum("bn,bnd->bd", w, diff)      # sum_i w_i (x_i - y)
        else:
            xi = (xh[:, None, :] + self.r * z).requires_grad_(True)
            li = 0.5 * ((xi - self.y[:, None, :]) ** 2).sum(dim=2)
            (gl,) = torch.autograd.grad(li.sum(), xi)
            with torch.no_grad():
                w = torch.softmax(-li.detach(), dim=1)
                v = torch.einsum("bn,bnd->bd", w, gl)
        (g,) = torch.autograd.grad(xhat, x, grad_outputs=v)
        return -g

    def run(self, mode):
        if mode == "unguided":
            return self.unguided()
        if mode == "dps":
            return self.dps()
        if mode.startswith("lgd_mc_"):
            return self.lgd_mc(int(mode[len("lgd_mc_"):]))
        raise ValueError(mode)


def _setup(args):
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    module, meta, _ = lgd_convert.load_network(args.file)
    module = module.float().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if module.in_dim != module.out_dim:
        sys.exit("bench_nn_torch: the network's out_dim != dim")
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, module.in_dim, generator=g, dtype=torch.float32)
    cond = lgd_convert.default_cond(module, args.batch, g)
    return module, meta, Step(module, x, cond, args.sigma, args.t, args.seed + 1,
                              args.mc_grad)


def time_mode(args, mode):
    """Timings of one mode in this process."""
    module, meta, step = _setup(args)
    rss_start = _status_kib("VmRSS") or _maxrss_kib()
    for _ in range(args.warmup):
        out = step.run(mode)
    hwm_before = _maxrss_kib()
    steady = _reset_peak_rss()
    rss_steady = _status_kib("VmRSS")
    times, cpus = [], []
    for _ in range(args.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = step.run(mode)
        times.append((time.perf_counter() - t0) * 1e3)
        cpus.append((time.process_time() - c0) * 1e3)
    hwm_steady = _status_kib("VmHWM") if steady else None
    peak = max(hwm_before, _maxrss_kib())
    return {
        "ms_median": statistics.median(times),
        "ms_min": min(times),
        "ms_max": max(times),
        "ms_mean": statistics.fmean(times),
        # process CPU time (every thread), which moves less than the wall time on a
        # machine shared with other processes
        "cpu_ms_median": statistics.median(cpus),
        # peak RSS over warm-up + timed steps minus the RSS before the first step
        # (model and inputs loaded): includes first-use costs (library code pages,
        # allocator pools, oneDNN/OpenMP initialisation)
        "peak_rss_growth_kib": max(0, peak - rss_start),
        # after warm-up, the peak RSS over the timed steps minus the RSS at their
        # start (VmHWM reset through /proc/self/clear_refs); null if unavailable
        "steady_peak_rss_growth_kib": max(0, hwm_steady - rss_steady)
        if (hwm_steady is not None and rss_steady is not None) else None,
        "peak_rss_kib": peak,
        "result_norm": float(out.norm()),
    }


def _child_cmd(args, mode):
    cmd = [sys.executable, os.path.abspath(__file__), "--file", args.file,
           "--batch", str(args.batch), "--sigma", repr(args.sigma), "--t", repr(args.t),
           "--threads", str(args.threads), "--reps", str(args.reps),
           "--warmup", str(args.warmup), "--seed", str(args.seed),
           "--mc-grad", args.mc_grad, "--single-mode", mode]
    return cmd


def main(argv=None):
    p = argparse.ArgumentParser(description="Time one guided denoising step of a liblgd "
                                "network file in PyTorch (CPU, float32, eager).")
    p.add_argument("--file", required=True, help="network file (.safetensors)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--t", type=float, default=500.0,
                   help="the discrete timestep given to the network (default 500)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--reps", type=int, default=20, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated subset of %s (lgd_mc_N for any N)" % (",".join(MODES),))
    p.add_argument("--mc-grad", choices=("closed", "autograd"), default="closed",
                   help="LGD-MC: grad l(x_i) in closed form (default) or by autograd")
    p.add_argument("--no-isolate", action="store_true",
                   help="time every mode in this process (RSS growth then cumulative)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--single-mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.single_mode:
        print(json.dumps(time_mode(args, args.single_mode)))
        return 0

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    meta, _ = lgd_convert.read_safetensors(args.file)
    module, _, _ = lgd_convert.load_network(args.file)
    results = {}
    for mode in modes:
        if args.no_isolate:
            results[mode] = time_mode(args, mode)
        else:
            r = subprocess.run(_child_cmd(args, mode), check=True, capture_output=True,
                               text=True)
            results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    report = {
        "tool": "bench_nn_torch",
        "file": args.file,
        "architecture": meta.get("lgd.architecture"),
        "dim": module.in_dim,
        "params": sum(p.numel() for p in module.parameters()),
        "batch": args.batch,
        "sigma": args.sigma,
        "t": args.t,
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
        "dtype": "float32",
        "torch": torch.__version__,
        "mc_grad": args.mc_grad,
        "isolated": not args.no_isolate,
        "modes": results,
    }
    if args.json:
        print(json.dumps(report, sort_keys=False))
    else:
        print("%s: %s, dim %d, %d parameters; batch %d, sigma %g, t %g, %d threads, "
              "torch %s (float32, eager)" % (args.file, report["architecture"], report["dim"],
                                             report["params"], args.batch, args.sigma, args.t,
                                             args.threads, torch.__version__))
        print("%-12s %10s %10s %10s %14s %14s" % ("mode", "median ms", "min ms", "mean ms",
                                                  "peak RSS +KiB", "steady +KiB"))
        for mode, r in results.items():
            st = r["steady_peak_rss_growth_kib"]
            print("%-12s %10.3f %10.3f %10.3f %14d %14s" % (
                mode, r["ms_median"], r["ms_min"], r["ms_mean"], r["peak_rss_growth_kib"],
                "-" if st is None else str(st)))
        print("LGD-MC gradient of l at the draws: %s" % (
            "closed form x_i - y (no autograd)" if args.mc_grad == "closed"
            else "autograd on the draws"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
