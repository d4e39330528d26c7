#!/usr/bin/env python3
"""Check every shipped model in liblgd against PyTorch.

    LGD_BUILD_DIR=build python3 tools/train/check_models.py

For each models/NAME.safetensors: the converter reads it back into the PyTorch module
(tools/lgd_convert.py load_network: names and shapes exactly the architecture's),
PyTorch recomputes NAME.ref.safetensors from the file (float64: the reference is the
file's, not a stale one), and liblgd, through the Python package, matches the
reference: the raw forward pass and VJP, the adapted denoiser D(x, sigma) (denoisers),
the cross-entropy and its gradient (classifiers); relative error below 1e-4.
Exit status 0 when every model passes.
"""

import math
import sys

import common as U
from common import torch, C

MODELS = ("digits_unet", "digits_classifier", "digits_noisy_classifier", "trajectory_denoiser",
          "digits_judge")


def recompute(name):
    """max relative difference between the committed reference and PyTorch on the file."""
    module, meta, _ = C.load_network(U.os.path.join(U.MODEL_DIR, name + ".safetensors"))
    _, ref = C.read_safetensors(U.os.path.join(U.MODEL_DIR, name + ".ref.safetensors"))
    new = U.reference_tensors(module, ref["x_in"], float(ref["t"][0]), ref["cotangent"])
    if "model_sigma" in ref:
        sd = float(meta["lgd.sigma_data"])
        sig = [float(s) for s in ref["model_sigma"]]
        with torch.no_grad():
            m64 = module.double()
            for i, s in enumerate(sig):
                d = U.edm_denoise(m64, ref["model_x"][i].double(), s, sd).float()
                new.setdefault("model_out_list", []).append(d)
        new["model_out"] = torch.stack(new.pop("model_out_list"))
        module = module.float()
    if "loss" in ref:
        labels = ref["loss_labels"].long()
        if "loss_sigma" in ref:
            new.update(U.classifier_loss_reference(module, ref["loss_x"], labels,
                                                   sigma=float(ref["loss_sigma"][0]),
                                                   sigma_data=float(meta["lgd.sigma_data"])))
        else:
            new.update(U.classifier_loss_reference(module, ref["loss_x"], labels,
                                                   t=float(ref["loss_t"][0])))
    worst = 0.0
    for k in ("out", "vjp", "model_out", "loss", "loss_grad"):
        if k in ref:
            a, b = new[k].double(), ref[k].double()
            worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item())
    return worst


def main():
    bad = 0
    for name in MODELS:
        r = recompute(name)
        print("%s: the reference recomputed by PyTorch from the file: max rel diff %.2e"
              % (name, r))
        if not r <= 1e-6 or math.isnan(r):
            bad += 1
            continue
        try:
            U.parity_check(name)
        except RuntimeError as e:
            print(e)
            bad += 1
    print("%d of %d models pass" % (len(MODELS) - bad, len(MODELS)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
