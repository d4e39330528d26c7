#!/usr/bin/env python3
"""The noise-aware digit classifier for classifier guidance (CG):
models/digits_noisy_classifier.safetensors.

    python3 tools/train/train_digits_noisy_classifier.py [--epochs 300] [--seed 4]

The architecture of the clean classifier (an `mlp` with lgd.out_dim = 10, hidden 256,
2 residual blocks), trained on noisy digits x = x0 + sigma eps with the input and time
convention of <lgd/network_loss.h>'s LGD_NETWORK_INPUT_NOISY under the file's adapter
(prediction edm, time input log_sigma, sigma_data 0.75, the digit U-Net's): the network
receives x_in = c_in(sigma) x with c_in = 1 / sqrt(sigma^2 + 0.75^2) and t = ln(sigma) / 4,
and gives the logits of p(y | x_sigma). Training sigmas are log-uniform over the
sampler's range [0.002, 80] (lgd_sampler_options' Karras defaults), a fresh sigma and
noise for every image in every epoch; train split only; AdamW, cross-entropy, batches of
128; the epoch with the best tune accuracy (fixed noise, sigmas log-uniform) is kept.

Reports the test accuracy per sigma band (10 noise draws per test image, sigma
log-uniform within the band, fixed seed) and on the clean test images at sigma = 0.002.
Writes models/digits_noisy_classifier{,.ref}.safetensors,
docs/training/digits_noisy_classifier.{csv,json}, then checks the file in liblgd
(LGD_BUILD_DIR) unless --no-parity.
"""

import argparse
import json
import math

import common as U
from common import torch, M

NAME = "digits_noisy_classifier"
ARCH = dict(dim=64, hidden=256, depth=2, time_embed_dim=32, out_dim=10)
SIGMA_DATA = 0.75
BANDS = ((0.002, 0.05), (0.05, 0.2), (0.2, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 5.0),
         (5.0, 20.0), (20.0, 80.0))


def logits(net, x, sigma):
    """f(c_in(sigma) x, ln(sigma) / 4) for x [B][64] (already noisy) and sigma [B]."""
    c_in, _, _, c_noise = U.edm_coeffs(sigma, SIGMA_DATA)
    return net(c_in[:, None] * x, c_noise)


def noisy_eval(net, x0, y, lo, hi, draws, seed):
    """(accuracy, mean loss) over `draws` noisy copies of each image, sigma log-uniform
    in [lo, hi], fixed seed."""
    g = torch.Generator().manual_seed(seed)
    correct, loss, n = 0, 0.0, 0
    with torch.no_grad():
        for _ in range(draws):
            s = U.sample_sigma_loguniform(x0.shape[0], g, lo, hi)
            x = x0 + s[:, None] * torch.randn(x0.shape, generator=g)
            f = logits(net, x, s)
            correct += int((f.argmax(1) == y).sum().item())
            loss += torch.nn.functional.cross_entropy(f, y, reduction="sum").item()
            n += y.numel()
    return correct / n, loss / n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-parity", action="store_true")
    a = p.parse_args()

    gen = U.setup(a.seed, a.threads)
    xtr, ytr = U.load_digits_split("train")
    xtu, ytu = U.load_digits_split("tune")
    xte, yte = U.load_digits_split("test")
    net = M.LgdMLP(**ARCH)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    curve = U.Curve(NAME + ".csv", ["epoch", "train_loss", "train_acc", "tune_loss",
                                    "tune_acc", "lr", "wall_s"])
    timer = U.Timer()
    best = None
    for epoch in range(1, a.epochs + 1):
        net.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        tot, right, n = 0.0, 0, 0
        for i in range(0, xtr.shape[0], a.batch):
            idx = perm[i:i + a.batch]
            s = U.sample_sigma_loguniform(idx.numel(), gen)
            x = xtr[idx] + s[:, None] * torch.randn(idx.numel(), 64, generator=gen)
            f = logits(net, x, s)
            loss = torch.nn.functional.cross_entropy(f, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * idx.numel()
            right += int((f.argmax(1) == ytr[idx]).sum().item())
            n += idx.numel()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        net.eval()
        tu_acc, tu_loss = noisy_eval(net, xtu, ytu, U.SIGMA_MIN, U.SIGMA_MAX, 4, 99)
        curve.add(epoch=epoch, train_loss=tot / n, train_acc=right / n, tune_loss=tu_loss,
                  tune_acc=tu_acc, lr=lr, wall_s=timer.wall())
        key = (tu_acc, -tu_loss)
        if best is None or key > best[0]:
            best = (key, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        if epoch % 10 == 0:
            print("epoch %3d  train %.4f  tune loss %.4f acc %.4f  %.0f s" % (
                epoch, tot / n, tu_loss, tu_acc, timer.wall()), flush=True)
    curve.close()
    wall, cpu = timer.wall(), timer.cpu()
    net.load_state_dict(best[2])
    net.eval()

    bands = []
    for lo, hi in BANDS:
        acc, loss = noisy_eval(net, xte, yte, lo, hi, 10, 12345)
        bands.append({"sigma_lo": lo, "sigma_hi": hi, "test_acc": acc, "test_loss": loss})
        print("sigma in [%g, %g]: test accuracy %.4f, loss %.4f" % (lo, hi, acc, loss))
    with torch.no_grad():
        s = torch.full((xte.shape[0],), U.SIGMA_MIN)
        f = logits(net, xte, s)
        clean_correct = int((f.argmax(1) == yte).sum().item())
    summary = {"model": NAME, "epoch_kept": best[1], "epochs": a.epochs, "seed": a.seed,
               "sigma_data": SIGMA_DATA, "test_acc_per_band": bands,
               "test_correct_clean_sigma_min": clean_correct, "test_n": int(yte.numel()),
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "parameters": sum(q.numel() for q in net.parameters())}
    print(json.dumps(summary))

    path = U.export(net, NAME, prediction="edm", time_input="log_sigma",
                    sigma_data=SIGMA_DATA, extra={
                        "train.script": "tools/train/train_digits_noisy_classifier.py "
                                        "--epochs %d --seed %d" % (a.epochs, a.seed),
                        "train.data": "data/digits train split (tools/train/make_digits_split.py)",
                        "train.input": "x_in = c_in(sigma) (x0 + sigma eps), t = ln(sigma) / 4, "
                                       "sigma log-uniform in [0.002, 80]",
                        "train.test_correct_sigma_min": clean_correct,
                        "train.test_n": int(yte.numel())})
    # reference: the raw network on 4 noisy test images at sigma = 0.7, and the noisy
    # cross-entropy at sigma = 0.7 (labels: 2 right, 2 wrong)
    g = torch.Generator().manual_seed(13)
    rows = torch.tensor([3, 77, 199, 350])
    sigma = 0.7
    x = xte[rows] + sigma * torch.randn(4, 64, generator=g)
    c_in = 1.0 / math.sqrt(sigma * sigma + SIGMA_DATA ** 2)
    ref = U.reference_tensors(net, c_in * x, 0.25 * math.log(sigma),
                              torch.randn(4, 10, generator=g))
    labels = yte[rows].clone()
    labels[2:] = (labels[2:] + torch.tensor([5, 1])) % 10
    ref.update(U.classifier_loss_reference(net, x, labels, sigma=sigma, sigma_data=SIGMA_DATA))
    U.write_reference(NAME, ref)
    print("wrote %s (+ .ref)" % path)
    if not a.no_parity:
        summary["parity"] = U.parity_check(NAME)
    with open(U.os.path.join(U.CURVE_DIR, NAME + ".json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
