#!/usr/bin/env python3
"""The unconditional denoiser of the 8x8 digits: models/digits_unet.safetensors.

    python3 tools/train/train_digits_unet.py [--steps 3000] [--seed 2]

An ADM `unet` (docs/network-format.md; guided-diffusion's UNetModel): 1 channel, 8x8,
model_channels 16, channel_mult 1,2 (8x8 and 4x4), one residual block per level,
attention at 4x4 and in the middle block (4 heads), GroupNorm of 8 groups, scale-shift
norm. Trained with EDM's preconditioning and loss (Karras et al. 2022): the file's
adapter is prediction `edm`, time input `log_sigma` (t = ln(sigma) / 4), sigma_data
0.75 (the standard deviation of the training pixels, 0.752), which liblgd applies as
D(x, sigma) = c_skip x + c_out F(c_in x, t). Training sigmas are EDM's log-normal
(ln sigma ~ N(-1.2, 1.2^2)); Adam, learning rate 2e-3 (200 warm-up steps), batches of
128 train-split images with fresh noise, an exponential moving average of the weights
(decay 0.999, with warm-up: common.EMA) is what is exported.

Writes models/digits_unet{,.ref}.safetensors, docs/training/digits_unet.csv (per
epoch, one pass over the 1,078 train images: the mean training loss; every 10th epoch
also the held-out loss of the EMA weights on the test split at fixed noise), and
docs/training/digits_unet.json with the final metrics: the held-out loss per sigma,
and the quality of 1,000 samples (EDM's Heun sampler, 18 steps, 80 -> 0.002) judged by
the clean classifier models/digits_classifier.safetensors (train it first): the label
histogram, the mean confidence, a Frechet distance in its logit space to the test
images, and nearest-neighbour distances to the train and test images (memorisation);
docs/training/digits_unet_samples.png shows the first 100 samples (digits_test.png 100
test digits).
"""

import argparse
import json
import math

import numpy as np

import common as U
from common import torch, M, C

NAME = "digits_unet"
SIGMA_DATA = 0.75
EVAL_SIGMAS = (0.02, 0.1, 0.3, 1.0, 3.0, 10.0)


def make_net(c0, mult, res_blocks, attention):
    return M.LgdUNet(in_channels=1, out_channels=1, model_channels=c0, channel_mult=mult,
                     num_res_blocks=res_blocks, attention_levels=attention, num_heads=4,
                     num_groups=8, use_scale_shift_norm=1, kernel_size=3, image_size=8,
                     dims=2)


def heldout_loss(net, x0, eps, sigmas):
    """EDM loss (|F - F_target|^2 = lambda |D - x0|^2) per sigma at fixed noise."""
    out = {}
    with torch.no_grad():
        for s in sigmas:
            sig = torch.full((x0.shape[0],), float(s))
            out[s] = U.edm_loss(net, x0, sig, eps, SIGMA_DATA).mean().item()
    return out


def sample_quality(net, n, steps, seed, xtr, xte, yte):
    """Quality of n Heun samples as the clean classifier sees them (None without it)."""
    path = U.os.path.join(U.MODEL_DIR, "digits_classifier.safetensors")
    if not U.os.path.exists(path):
        print("no %s: sample quality not measured" % path)
        return None, None
    clf, _, _ = C.load_network(path)
    gen = torch.Generator().manual_seed(seed)
    timer = U.Timer()
    xs = U.heun_sample(lambda x, s: U.edm_denoise(net, x, s, SIGMA_DATA), n, 64, steps, gen)
    t_sample = timer.wall()
    with torch.no_grad():
        fs = clf(xs.clamp(-1, 1), 0.0).double()
        fte = clf(xte, 0.0).double()
        ftr = clf(xtr, 0.0).double()
    ps, pte = torch.softmax(fs, 1), torch.softmax(fte, 1)
    hist = torch.bincount(fs.argmax(1), minlength=10).tolist()
    # nearest neighbours (Euclidean, 64 pixels): a memorising model has samples much
    # closer to the train images than to the held-out test images
    d_tr = torch.cdist(xs.double(), xtr.double()).min(1).values
    d_te = torch.cdist(xs.double(), xte.double()).min(1).values
    d_te_tr = torch.cdist(xte.double(), xtr.double()).min(1).values
    q = {
        "samples": n, "heun_steps": steps, "seed": seed, "sampling_wall_s": round(t_sample, 1),
        "label_histogram": hist,
        "mean_confidence": ps.max(1).values.mean().item(),
        "test_mean_confidence": pte.max(1).values.mean().item(),
        "frac_confidence_gt_0.9": (ps.max(1).values > 0.9).double().mean().item(),
        "test_frac_confidence_gt_0.9": (pte.max(1).values > 0.9).double().mean().item(),
        "fd_logits_samples_test": U.frechet_distance(fs.numpy(), fte.numpy()),
        "fd_logits_train_test": U.frechet_distance(ftr.numpy(), fte.numpy()),
        "nn_dist_to_train_median": d_tr.median().item(),
        "nn_dist_to_test_median": d_te.median().item(),
        "test_nn_dist_to_train_median": d_te_tr.median().item(),
        "pixel_range": [xs.min().item(), xs.max().item()],
    }
    return q, xs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--mult", default="1,2")
    p.add_argument("--res-blocks", type=int, default=1)
    p.add_argument("--attention", default="1")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--heun-steps", type=int, default=18)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-parity", action="store_true")
    a = p.parse_args()

    gen = U.setup(a.seed, a.threads)
    xtr, _ = U.load_digits_split("train")
    xte, yte = U.load_digits_split("test")
    mult = [int(v) for v in a.mult.split(",")]
    att = [int(v) for v in a.attention.split(",") if v.strip()]
    net = make_net(a.channels, mult, a.res_blocks, att)
    ema = U.EMA(net, a.ema)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    # fixed held-out noise for the curve and the final numbers
    g_eval = torch.Generator().manual_seed(1000 + a.seed)
    eps_te = torch.randn(xte.shape[0], 64, generator=g_eval)

    ntr = xtr.shape[0]
    steps_per_epoch = ntr / a.batch
    curve = U.Curve(NAME + ".csv", ["epoch", "step", "train_loss", "ema_test_loss",
                                    "lr", "wall_s"])
    timer = U.Timer()
    perm, pos = torch.randperm(ntr, generator=gen), 0
    acc, nacc, epoch = 0.0, 0, 0
    for step in range(1, a.steps + 1):
        if pos + a.batch > ntr:
            perm, pos = torch.randperm(ntr, generator=gen), 0
        idx = perm[pos:pos + a.batch]
        pos += a.batch
        x0 = xtr[idx]
        sigma = U.sample_sigma_lognormal(x0.shape[0], gen)
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
        if step >= (epoch + 1) * steps_per_epoch or step == a.steps:
            epoch += 1
            row = dict(epoch=epoch, step=step, train_loss=acc / nacc, ema_test_loss="",
                       lr=lr, wall_s=timer.wall())
            if epoch % 10 == 0 or step == a.steps:
                hl = heldout_loss(ema.module, xte, eps_te, EVAL_SIGMAS)
                row["ema_test_loss"] = float(np.mean(list(hl.values())))
            curve.add(**row)
            print("epoch %3d step %5d  loss %.4f  held-out %s  %.0f s" % (
                epoch, step, acc / nacc, row["ema_test_loss"], timer.wall()), flush=True)
            acc, nacc = 0.0, 0
    curve.close()
    wall, cpu = timer.wall(), timer.cpu()
    final = ema.module.eval()

    hl_te = heldout_loss(final, xte, eps_te, EVAL_SIGMAS)
    g_tr = torch.Generator().manual_seed(2000 + a.seed)
    hl_tr = heldout_loss(final, xtr, torch.randn(ntr, 64, generator=g_tr), EVAL_SIGMAS)
    # mean squared error of D against x0 at sigma 0.5 on the test split (the shipped
    # model test recomputes it in liblgd with its own noise)
    with torch.no_grad():
        s = 0.5
        mse05 = ((U.edm_denoise(final, xte + s * eps_te, s, SIGMA_DATA) - xte) ** 2).mean().item()
    quality, xs = sample_quality(final, a.samples, a.heun_steps, 3000 + a.seed, xtr, xte, yte)
    summary = {"model": NAME, "steps": a.steps, "epochs": epoch, "batch": a.batch,
               "seed": a.seed, "lr": a.lr, "ema": a.ema, "sigma_data": SIGMA_DATA,
               "architecture": dict(model_channels=a.channels, channel_mult=mult,
                                    num_res_blocks=a.res_blocks, attention_levels=att),
               "parameters": sum(q.numel() for q in final.parameters()),
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "heldout_loss_test": {str(k): v for k, v in hl_te.items()},
               "loss_train": {str(k): v for k, v in hl_tr.items()},
               "test_mse_sigma_0.5": mse05, "sample_quality": quality}
    print(json.dumps(summary, indent=1))
    if xs is not None:
        # the first 100 samples, and 100 test digits beside them for comparison
        U.write_png_grid(U.os.path.join(U.CURVE_DIR, NAME + "_samples.png"), xs.numpy(), 10, 10)
        U.write_png_grid(U.os.path.join(U.CURVE_DIR, "digits_test.png"), xte.numpy(), 10, 10)

    path = U.export(final, NAME, prediction="edm", time_input="log_sigma",
                    sigma_data=SIGMA_DATA, extra={
                        "train.script": "tools/train/train_digits_unet.py --steps %d --seed %d"
                                        % (a.steps, a.seed),
                        "train.data": "data/digits train split (tools/train/make_digits_split.py)",
                        "train.objective": "EDM (Karras et al. 2022), ln sigma ~ N(-1.2, 1.2^2), "
                                           "EMA 0.999",
                        "train.test_mse_sigma_0.5": "%.6g" % mse05})
    # reference: the raw network at t = ln(0.5) / 4 on 4 noisy test images, and the
    # adapted denoiser at 4 sigmas
    g = torch.Generator().manual_seed(11)
    rows = torch.tensor([5, 123, 250, 401])
    x0 = xte[rows]
    eps = torch.randn(4, 64, generator=g)
    s = 0.5
    x_in = (x0 + s * eps) / math.sqrt(s * s + SIGMA_DATA ** 2)
    ref = U.reference_tensors(final, x_in, 0.25 * math.log(s), torch.randn(4, 64, generator=g))
    ref.update(U.denoiser_reference(final, x0, eps, (0.01, 0.3, 1.5, 20.0), SIGMA_DATA))
    U.write_reference(NAME, ref)
    print("wrote %s (+ .ref)" % path)
    if not a.no_parity:
        summary["parity"] = U.parity_check(NAME)
    with open(U.os.path.join(U.CURVE_DIR, NAME + ".json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
