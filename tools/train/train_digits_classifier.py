#!/usr/bin/env python3
"""The clean-image digit classifier: models/digits_classifier.safetensors.

    python3 tools/train/train_digits_classifier.py [--epochs 60] [--seed 1]

The judge of `lgd superres` / `lgd classcond` (an independently trained classifier of
another width, so that the networks that guide are not the ones that score):

    python3 tools/train/train_digits_classifier.py --name digits_judge --seed 11 --hidden 128

An `mlp` (docs/network-format.md) with lgd.out_dim = 10: input the 64 pixels of an
8x8 digit in [-1, 1], time input fixed at t = 0, output the 10 logits. It is the loss
of LGD and DPS, l(x0) = -log softmax(f(x0, 0))[y] (<lgd/network_loss.h>,
LGD_NETWORK_INPUT_CLEAN with options.t = 0). Trained on the train split of
data/digits/ only (AdamW, cross-entropy, minibatches of 64); the epoch with the best
tune-split accuracy (ties: the lower tune loss) is kept; the test split is evaluated
once, at the end.

The file's adapter (prediction x0, time input sigma) is what a clean classifier means
if it is ever used as a NOISY network loss: at sigma -> 0, c_in -> 1 and t -> 0, the
input it was trained on. Writes models/digits_classifier{,.ref}.safetensors and
docs/training/digits_classifier.csv (one row per epoch), then checks the file in
liblgd (LGD_BUILD_DIR) unless --no-parity.
"""

import argparse
import json

import common as U
from common import torch, M

NAME = "digits_classifier"
ARCH = dict(dim=64, hidden=256, depth=2, time_embed_dim=32, out_dim=10)


def evaluate(net, x, y, t=0.0):
    with torch.no_grad():
        f = net(x, t)
        loss = torch.nn.functional.cross_entropy(f, y).item()
        acc = (f.argmax(1) == y).float().mean().item()
        correct = int((f.argmax(1) == y).sum().item())
    return loss, acc, correct


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-parity", action="store_true")
    p.add_argument("--name", default=NAME,
                   help="models/NAME.safetensors (default %(default)s; digits_judge: the judge)")
    p.add_argument("--hidden", type=int, default=ARCH["hidden"])
    p.add_argument("--depth", type=int, default=ARCH["depth"])
    a = p.parse_args()
    name = a.name
    arch = dict(ARCH, hidden=a.hidden, depth=a.depth)

    gen = U.setup(a.seed, a.threads)
    xtr, ytr = U.load_digits_split("train")
    xtu, ytu = U.load_digits_split("tune")
    xte, yte = U.load_digits_split("test")
    net = M.LgdMLP(**arch)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    curve = U.Curve(name + ".csv", ["epoch", "train_loss", "train_acc", "tune_loss",
                                    "tune_acc", "lr", "wall_s"])
    timer = U.Timer()
    best = None
    for epoch in range(1, a.epochs + 1):
        net.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        tot, n = 0.0, 0
        for i in range(0, xtr.shape[0], a.batch):
            idx = perm[i:i + a.batch]
            loss = torch.nn.functional.cross_entropy(net(xtr[idx], 0.0), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * idx.numel()
            n += idx.numel()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        net.eval()
        _, tr_acc, _ = evaluate(net, xtr, ytr)
        tu_loss, tu_acc, _ = evaluate(net, xtu, ytu)
        curve.add(epoch=epoch, train_loss=tot / n, train_acc=tr_acc, tune_loss=tu_loss,
                  tune_acc=tu_acc, lr=lr, wall_s=timer.wall())
        key = (tu_acc, -tu_loss)
        if best is None or key > best[0]:
            best = (key, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        print("epoch %3d  train %.4f  tune loss %.4f acc %.4f" % (epoch, tot / n, tu_loss, tu_acc),
              flush=True)
    curve.close()
    wall, cpu = timer.wall(), timer.cpu()
    net.load_state_dict(best[2])
    net.eval()
    te_loss, te_acc, te_correct = evaluate(net, xte, yte)
    tu_loss, tu_acc, _ = evaluate(net, xtu, ytu)
    summary = {"model": name, "hidden": a.hidden, "depth": a.depth, "epoch_kept": best[1], "epochs": a.epochs, "seed": a.seed,
               "tune_acc": tu_acc, "tune_loss": tu_loss, "test_acc": te_acc,
               "test_loss": te_loss, "test_correct": te_correct, "test_n": int(yte.numel()),
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "parameters": sum(q.numel() for q in net.parameters())}
    print(json.dumps(summary))

    script = "tools/train/train_digits_classifier.py --epochs %d --seed %d" % (a.epochs, a.seed)
    if name != NAME or arch != ARCH:
        script += " --name %s --hidden %d --depth %d" % (name, a.hidden, a.depth)
    path = U.export(net, name, prediction="x0", time_input="sigma", extra={
        "train.script": script,
        "train.data": "data/digits train split (tools/train/make_digits_split.py)",
        "train.input": "clean 8x8 digits in [-1, 1], t = 0",
        "train.test_correct": te_correct, "train.test_n": int(yte.numel()),
        "train.test_acc": "%.4f" % te_acc})
    # reference: 4 test images, t = 0; labels: 2 right, 2 wrong (a gradient that is not ~0)
    g = torch.Generator().manual_seed(7)
    rows = torch.tensor([0, 1, 2, 3]) * 97
    x = xte[rows]
    labels = yte[rows].clone()
    labels[2:] = (labels[2:] + torch.tensor([3, 7])) % 10
    ref = U.reference_tensors(net, x, 0.0, torch.randn(4, 10, generator=g))
    ref.update(U.classifier_loss_reference(net, x, labels, t=0.0))
    U.write_reference(name, ref)
    print("wrote %s (+ .ref)" % path)
    if not a.no_parity:
        summary["parity"] = U.parity_check(name)
    with open(U.os.path.join(U.CURVE_DIR, name + ".json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
