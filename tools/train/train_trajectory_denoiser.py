#!/usr/bin/env python3
"""A learned denoiser of the trajectory prior: models/trajectory_denoiser.safetensors.

    LGD_BUILD_DIR=build python3 tools/train/train_trajectory_denoiser.py [--steps 2000] [--seed 5]

The prior is liblgd's (`lgd trajectory`, <lgd/trajectory.h>: lgd_model_create_trajectory_prior
with its defaults: 64 frames of root velocities (vx, vy), 8 headings x 3 turn rates, a
Gaussian mixture of dim 128). Training draws come from the library through the Python
package (bindings/python; LGD_BUILD_DIR names the build): lgd_model_sample_posterior at
x = 0 and sigma = 1e6, i.e. p(x0 | x = 0, sigma) ∝ p(x0) exp(-|x0|^2 / (2 sigma^2)):
the prior up to a weight that differs from 1 by |x0|^2 / 2e12 < 1e-10 (the draws at
sigma = 1e4 and 1e6 are the same floats). 100,000 draws (seed --seed) are the training
pool; 2,000 more (another seed) the held-out set.

The network is a `temporal_unet` (docs/network-format.md): horizon 64, 2 channels
(time-major [T][2], as trajectories are stored), model_channels 16, channel_mult 1,2,2
(64, 32, 16 frames), one residual block per level, kernel size 5, attention in the
middle block, GroupNorm of 8 groups, scale-shift norm. EDM training and adapter as the
digit U-Net (prediction edm, time input log_sigma), sigma_data 0.77 (the draws'
standard deviation, 0.768); Adam 2e-3 with 200 warm-up steps, batches of 128, EMA 0.999
(with warm-up, common.EMA).

The exact prior gives exact references, which the final metrics use:
  * the excess denoising error: E|D_learned(x, sigma) - x0|^2 against the Bayes-optimal
    E|D_exact(x, sigma) - x0|^2 (liblgd's exact mixture denoiser) on the held-out draws,
    per sigma;
  * samples: 1,000 from the learned denoiser and 1,000 from the exact one with the same
    sampler (EDM's Heun, 18 steps, 80 -> 0.002), their negative log-likelihood per frame
    under the exact prior, and the largest speed per trajectory.
Writes models/trajectory_denoiser{,.ref}.safetensors and
docs/training/trajectory_denoiser.{csv,json}, then checks the file in liblgd.
"""

import argparse
import json
import math

import numpy as np

import common as U
from common import torch, M

NAME = "trajectory_denoiser"
SIGMA_DATA = 0.77
FRAMES = 64
DIM = 2 * FRAMES
EVAL_SIGMAS = (0.01, 0.05, 0.2, 1.0, 5.0, 20.0)
PRIOR_SIGMA = 1e6


def make_net():
    return M.LgdUNet(in_channels=2, out_channels=2, model_channels=16, channel_mult=[1, 2, 2],
                     num_res_blocks=1, attention_levels=[], num_heads=4, num_groups=8,
                     use_scale_shift_norm=1, kernel_size=5, horizon=FRAMES, dims=1)


def prior_draws(lgd, prior, n, seed):
    z = np.zeros((n, DIM), dtype=np.float32)
    return prior.sample_posterior(z, PRIOR_SIGMA, 1, seed=seed)[:, 0, :].copy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--pool", type=int, default=100000)
    p.add_argument("--heldout", type=int, default=2000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--heun-steps", type=int, default=18)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-parity", action="store_true")
    a = p.parse_args()

    lgd = U.import_lgd()
    if lgd is None:
        raise SystemExit("train_trajectory_denoiser: needs the lgd package (set LGD_BUILD_DIR)")
    gen = U.setup(a.seed, a.threads)
    ctx = lgd.Context(num_threads=a.threads)
    prior = lgd.Model.trajectory_prior(ctx)
    assert prior.dim == DIM
    timer_data = U.Timer()
    xtr = torch.from_numpy(prior_draws(lgd, prior, a.pool, a.seed))
    xho = torch.from_numpy(prior_draws(lgd, prior, a.heldout, 1000 + a.seed))
    data_s = timer_data.wall()
    print("%d + %d prior draws in %.1f s; std %.4f" % (a.pool, a.heldout, data_s,
                                                       xtr.std().item()), flush=True)

    net = make_net()
    ema = U.EMA(net, a.ema)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    g_eval = torch.Generator().manual_seed(2000 + a.seed)
    eps_ho = torch.randn(xho.shape, generator=g_eval)
    curve = U.Curve(NAME + ".csv", ["epoch", "step", "train_loss", "ema_heldout_loss",
                                    "lr", "wall_s"])
    # an "epoch" here is a fixed 100 steps (12,800 draws): the pool is seen about
    # steps * batch / pool times in all
    per_epoch = 100
    timer = U.Timer()
    acc, nacc, epoch = 0.0, 0, 0
    for step in range(1, a.steps + 1):
        idx = torch.randint(0, xtr.shape[0], (a.batch,), generator=gen)
        x0 = xtr[idx]
        sigma = U.sample_sigma_lognormal(a.batch, gen)
        eps = torch.randn(x0.shape, generator=gen)
        lr = a.lr * min(1.0, step / a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = U.edm_loss(net, x0, sigma, eps, SIGMA_DATA).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(net)
        acc += loss.item()
        nacc += 1
        if step % per_epoch == 0 or step == a.steps:
            epoch += 1
            with torch.no_grad():
                hl = np.mean([U.edm_loss(ema.module, xho, torch.full((xho.shape[0],), s), eps_ho,
                                         SIGMA_DATA).mean().item() for s in EVAL_SIGMAS])
            curve.add(epoch=epoch, step=step, train_loss=acc / nacc, ema_heldout_loss=float(hl),
                      lr=lr, wall_s=timer.wall())
            print("epoch %3d step %5d  loss %.4f  held-out %.4f  %.0f s" % (
                epoch, step, acc / nacc, hl, timer.wall()), flush=True)
            acc, nacc = 0.0, 0
    curve.close()
    wall, cpu = timer.wall(), timer.cpu()
    final = ema.module.eval()

    # excess denoising error against the exact (Bayes-optimal) denoiser
    excess = []
    with torch.no_grad():
        for s in EVAL_SIGMAS:
            x = xho + s * eps_ho
            d_l = U.edm_denoise(final, x, s, SIGMA_DATA)
            d_e = torch.from_numpy(prior.denoise(x.numpy(), s))
            mse_l = ((d_l - xho) ** 2).mean().item()
            mse_e = ((d_e - xho) ** 2).mean().item()
            dist = ((d_l - d_e) ** 2).mean().item()
            excess.append({"sigma": s, "mse_learned": mse_l, "mse_exact": mse_e,
                           "mse_learned_vs_exact": dist})
            print("sigma %-5g  MSE learned %.5f  exact %.5f  |D_l - D_e|^2 %.5f" % (
                s, mse_l, mse_e, dist))

    # samples from both denoisers with the same sampler, scored by the exact prior
    timer_s = U.Timer()
    xs_l = U.heun_sample(lambda x, s: U.edm_denoise(final, x, s, SIGMA_DATA), a.samples, DIM,
                         a.heun_steps, torch.Generator().manual_seed(3000 + a.seed))
    t_l = timer_s.wall()
    xs_e = U.heun_sample(lambda x, s: torch.from_numpy(prior.denoise(x.numpy(), s)), a.samples,
                         DIM, a.heun_steps, torch.Generator().manual_seed(3000 + a.seed))

    def stats(xs):
        nll = -prior.log_density(xs.numpy(), 0.0) / FRAMES
        v = xs.numpy().reshape(-1, FRAMES, 2)
        speed = np.sqrt((v ** 2).sum(-1)).max(1)
        return {"nll_per_frame_median": float(np.median(nll)),
                "nll_per_frame_mean": float(np.mean(nll)),
                "nll_per_frame_p90": float(np.percentile(nll, 90)),
                "max_speed_median": float(np.median(speed)),
                "max_speed_max": float(speed.max()),
                "frac_max_speed_gt_3": float((speed > 3.0).mean())}

    q = {"samples": a.samples, "heun_steps": a.heun_steps, "learned": stats(xs_l),
         "exact_denoiser": stats(xs_e), "prior_draws": stats(xho[:a.samples]),
         "sampling_wall_s_learned": round(t_l, 1)}
    summary = {"model": NAME, "steps": a.steps, "batch": a.batch, "seed": a.seed,
               "lr": a.lr, "ema": a.ema, "sigma_data": SIGMA_DATA, "pool": a.pool,
               "data_std": xtr.std().item(), "data_wall_s": round(data_s, 1),
               "parameters": sum(t.numel() for t in final.parameters()),
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "denoising_vs_exact": excess, "sample_quality": q}
    print(json.dumps(summary, indent=1))

    path = U.export(final, NAME, prediction="edm", time_input="log_sigma",
                    sigma_data=SIGMA_DATA, extra={
                        "train.script": "tools/train/train_trajectory_denoiser.py --steps %d "
                                        "--seed %d" % (a.steps, a.seed),
                        "train.data": "draws of lgd_model_create_trajectory_prior (defaults: "
                                      "64 frames, 8 headings, 3 turns) via "
                                      "lgd_model_sample_posterior(x = 0, sigma = 1e6)",
                        "train.objective": "EDM (Karras et al. 2022), ln sigma ~ N(-1.2, 1.2^2), "
                                           "EMA 0.999"})
    g = torch.Generator().manual_seed(17)
    x0 = xho[:4]
    eps = torch.randn(4, DIM, generator=g)
    s = 0.5
    x_in = (x0 + s * eps) / math.sqrt(s * s + SIGMA_DATA ** 2)
    ref = U.reference_tensors(final, x_in, 0.25 * math.log(s), torch.randn(4, DIM, generator=g))
    ref.update(U.denoiser_reference(final, x0, eps, (0.01, 0.3, 1.5, 20.0), SIGMA_DATA))
    U.write_reference(NAME, ref)
    print("wrote %s (+ .ref)" % path)
    ctx.close()
    if not a.no_parity:
        summary["parity"] = U.parity_check(NAME)
    with open(U.os.path.join(U.CURVE_DIR, NAME + ".json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
