#!/usr/bin/env python3
"""Regenerate tests/fixtures/nn/: network files and their PyTorch references.

    python3 tools/make_fixtures.py [--out DIR] [--stats]

Every fixture is a pair NAME.safetensors (network file, docs/network-format.md)
and NAME.ref.safetensors (x_in, t, [cond], out, cotangent, vjp; float64
PyTorch rounded to float32).  Weights and inputs come from fixed seeds, so the
output is byte-for-byte the same on every run.  README.md in the output
directory is generated too.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
except ImportError:
    sys.exit("make_fixtures.py: PyTorch is required (pip install torch)")

import lgd_convert as C  # noqa: E402
import lgd_torch_models as M  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "fixtures", "nn")
T_DISCRETE = 37.5


def _unet(**kw):
    return M.LgdUNet(dims=2, **kw)


def _tunet(**kw):
    return M.LgdUNet(dims=1, **kw)


UNET = dict(in_channels=3, out_channels=3, image_size=8, model_channels=16,
            channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,),
            num_heads=2, num_groups=4, kernel_size=3, conv_resample=1)

# name, description, builder, save options, reference options
FIXTURES = [
    ("linear", "Linear 6 -> 5 with bias",
     lambda: M.LinearLayer(6, 5), {}, {}),
    ("conv1d", "Conv1d 3 -> 5 channels, k 3, stride 1, padding 1",
     lambda: M.Conv1dLayer((3, 10), 5, 3, stride=1, padding=1), {}, {}),
    ("conv2d", "Conv2d 3 -> 4 channels, k 3, stride 1, padding 1",
     lambda: M.Conv2dLayer((3, 6, 6), 4, 3, stride=1, padding=1), {}, {}),
    ("conv2d_stride2", "Conv2d 3 -> 4 channels, k 3, stride 2, padding 1",
     lambda: M.Conv2dLayer((3, 8, 8), 4, 3, stride=2, padding=1), {}, {}),
    ("group_norm", "GroupNorm 4 groups over 8 channels, eps 1e-5",
     lambda: M.GroupNormLayer((8, 4, 4), 4), {}, {}),
    ("layer_norm", "LayerNorm over 10 features, eps 1e-5",
     lambda: M.LayerNormLayer(10), {}, {}),
    ("silu", "SiLU (x scaled by 2.5)", lambda: M.SiLULayer((16,)), {},
     {"x_scale": 2.5}),
    ("gelu", "GELU, erf form (x scaled by 2.5)", lambda: M.GELULayer((16,)), {},
     {"x_scale": 2.5}),
    ("attention", "AttentionBlock 2-D, C 8, 4x4, 2 heads, 4 groups (legacy head order)",
     lambda: M.AttentionLayer((8, 4, 4), 2, 4), {}, {}),
    ("attention_1d", "AttentionBlock 1-D, C 8, T 6, 2 heads, 4 groups",
     lambda: M.AttentionLayer((8, 6), 2, 4), {}, {}),
    ("resblock", "ResBlock 2-D 8 -> 16 channels (1x1 skip conv), E 16, 4 groups, k 3",
     lambda: M.ResBlockLayer((8, 4, 4), 16, 16, 4, kernel_size=3,
                             use_scale_shift_norm=0), {}, {}),
    ("resblock_scale_shift", "ResBlock 2-D 8 -> 8 (identity skip), scale-shift norm, E 16",
     lambda: M.ResBlockLayer((8, 4, 4), 8, 16, 4, kernel_size=3,
                             use_scale_shift_norm=1), {}, {}),
    ("upsample", "Upsample 2-D: nearest 2x then conv k 3 (4 channels, 4x4 -> 8x8)",
     lambda: M.UpsampleLayer((4, 4, 4), conv_resample=1, kernel_size=3), {}, {}),
    ("downsample", "Downsample 2-D: conv k 3 stride 2 padding 1 (4 channels, 8x8 -> 4x4)",
     lambda: M.DownsampleLayer((4, 8, 8), conv_resample=1, kernel_size=3), {}, {}),
    ("downsample_avgpool", "Downsample 2-D without conv: 2x2 average pooling (8x8 -> 4x4)",
     lambda: M.DownsampleLayer((4, 8, 8), conv_resample=0, kernel_size=3), {}, {}),
    ("concat", "cat([x, silu(x)], channels): 3x4x4 -> 6x4x4",
     lambda: M.ConcatLayer((3, 4, 4)), {}, {}),
    ("time_embedding", "x + time MLP(sinusoidal(t, 16)), hidden 12, input F = 12",
     lambda: M.TimeEmbeddingLayer((12,), 16, 12), {}, {}),
    ("mlp", "mlp D 8, H 32, depth 2, E 16",
     lambda: M.LgdMLP(8, 32, 2, 16), {}, {"batch": 3}),
    ("mlp_f16", "`mlp` (same weights, x_in, cotangent) stored F16; reference from the "
     "F16-rounded weights",
     lambda: M.LgdMLP(8, 32, 2, 16), {"dtype": "F16"}, {"batch": 3, "seed_as": "mlp"}),
    ("mlp_bf16", "`mlp` (same weights, x_in, cotangent) stored BF16; reference from the "
     "BF16-rounded weights",
     lambda: M.LgdMLP(8, 32, 2, 16), {"dtype": "BF16"}, {"batch": 3, "seed_as": "mlp"}),
    ("mlp_cond", "mlp D 8, H 32, depth 2, E 16, cond_dim 3 (cond N(0,1)); "
     "prediction edm, time_input log_sigma, t 0.7, no alphas_cumprod",
     lambda: M.LgdMLP(8, 32, 2, 16, cond_dim=3),
     {"prediction": "edm", "time_input": "log_sigma", "sigma_data": 0.5},
     {"batch": 3, "t": 0.7}),
    ("unet", "unet in/out 3, 8x8, C0 16, mult 1,2, R 1, attention level 1, 2 heads, "
     "4 groups, k 3, conv_resample 1",
     lambda: _unet(**UNET), {}, {}),
    ("unet_cond_ss", "as `unet` but C0 8 and time_embed_dim 40 (not the default 4 C0; "
     "keeps the fixtures small), num_classes 4 (one-hot cond), use_scale_shift_norm 1, "
     "conv_resample 0 (average pooling down, nearest up without conv)",
     lambda: _unet(**dict(UNET, model_channels=8, time_embed_dim=40, num_classes=4,
                          use_scale_shift_norm=1, conv_resample=0)),
     {}, {}),
    ("temporal_unet", "temporal_unet C 2, horizon 16 (x time-major [16][2]), C0 16, "
     "mult 1,2,2, R 1, attention level 2, 2 heads, 4 groups, k 5",
     lambda: _tunet(in_channels=2, out_channels=2, horizon=16, model_channels=16,
                    channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(2,),
                    num_heads=2, num_groups=4, kernel_size=5, conv_resample=1),
     {}, {}),
    ("unet_head_channels", "unet in/out 1, 8x8, C0 4, mult 1,2, R 1, attention levels 0,1 "
     "with lgd.num_head_channels 2 (2 heads at 4 channels, 4 at 8), the middle attention "
     "without GroupNorm (lgd.middle_attention_groups 0: diffusers' scale-shift middle "
     "block), use_scale_shift_norm 1, 2 groups, time_embed_dim 8 (liblgd >= 0.5.0)",
     lambda: _unet(in_channels=1, out_channels=1, image_size=8, model_channels=4,
                   channel_mult=(1, 2), num_res_blocks=1, attention_levels=(0, 1),
                   num_head_channels=2, middle_attention_groups=0, num_groups=2,
                   use_scale_shift_norm=1, time_embed_dim=8, conv_resample=1),
     {}, {}),
]


def fixture_seeds(name):
    """(weight seed, reference seed) of a fixture: 1000 + i and 2000 + i for its
    index i in FIXTURES, or those of the fixture named by its `seed_as`."""
    names = [f[0] for f in FIXTURES]
    ref_opts = FIXTURES[names.index(name)][4]
    index = names.index(ref_opts.get("seed_as", name))
    return 1000 + index, 2000 + index


def _shape(module, which):
    if which == "in":
        shape = getattr(module, "input_shape", None)
        if shape is None:
            if isinstance(module, M.LgdUNet):
                shape = ((module.in_channels, module.image_size, module.image_size)
                         if module.dims == 2 else (module.horizon, module.in_channels))
            else:
                shape = (module.in_dim,)
        return shape
    shape = getattr(module, "output_shape", None)
    if shape is None:
        if isinstance(module, M.LgdUNet):
            shape = ((module.out_channels, module.image_size, module.image_size)
                     if module.dims == 2 else (module.horizon, module.out_channels))
        else:
            shape = (module.out_dim,)
    return shape


def _fmt(shape):
    return "x".join(str(s) for s in shape)


def generate(out_dir, stats=False):
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # same float64 reductions whatever the machine
    rows = []
    for name, what, build, save_opts, ref_opts in FIXTURES:
        wseed, rseed = fixture_seeds(name)
        module = build()
        M.randomize_(module, seed=wseed)
        module.eval()
        net = os.path.join(out_dir, name + ".safetensors")
        ref = os.path.join(out_dir, name + ".ref.safetensors")
        dtype = save_opts.get("dtype", "F32")
        meta = C.save_network(module, net, **save_opts)
        batch = ref_opts.get("batch", 2)
        t = ref_opts.get("t", T_DISCRETE)
        r = C.write_reference(module, ref, batch=batch, seed=rseed, t=t,
                              dtype=dtype, x_scale=ref_opts.get("x_scale", 1.0))
        nparam = sum(p.numel() for p in module.parameters())
        size = os.path.getsize(net) + os.path.getsize(ref)
        rows.append((name, what, meta, module, batch, t, nparam, dtype,
                     os.path.getsize(net), os.path.getsize(ref), "cond" in r))
        if stats:
            print("%-22s params %6d  out std %.3f max %.3f  vjp std %.3f max %.3f  %6d B" % (
                name, nparam, r["out"].std().item(), r["out"].abs().max().item(),
                r["vjp"].std().item(), r["vjp"].abs().max().item(), size))
    _write_readme(out_dir, rows)
    return rows


def _write_readme(out_dir, rows):
    total = sum(r[8] + r[9] for r in rows)
    lines = [
        "# Network fixtures (generated)",
        "",
        "Parity fixtures for liblgd's network loader and layers: each `NAME.safetensors`",
        "is a network file (docs/network-format.md) and `NAME.ref.safetensors` its",
        "PyTorch reference: `x_in` [B][dim], `t` [1], `cond` [B][cond_dim] (conditional",
        "networks only), `out` = F(x_in, t) [B][out_dim], `cotangent` [B][out_dim] and",
        "`vjp` = (dF/dx_in)^T cotangent [B][dim], all F32, computed in float64 from the",
        "stored weights (rounded to F16/BF16 first for those files) and rounded.",
        "",
        "Weights are seeded random values (normalisation weights and biases",
        "included, no zero-initialised convs); the time is t = 37.5 unless stated.",
        "Files with a discrete time input carry `lgd.alphas_cumprod` (DDPM linear",
        "schedule, 1000 steps).",
        "",
        "Regenerate (deterministic, byte-identical):",
        "",
        "    python3 tools/make_fixtures.py            # writes tests/fixtures/nn/",
        "    python3 tools/test_convert.py             # checks writer, modules, determinism",
        "",
        "Do not edit these files by hand.",
        "",
        "| name | what | metadata | per-row in -> out | B | t | params | dtype | bytes (net + ref) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, what, meta, module, batch, t, nparam, dtype, nsize, rsize, has_cond) in rows:
        arch = meta["lgd.architecture"]
        kind = meta.get("lgd.layer", arch)
        tags = ["`%s`" % kind]
        if arch != "layer":
            tags.append("pred `%s`" % meta["lgd.prediction"])
            tags.append("time `%s`" % meta["lgd.time_input"])
        if has_cond:
            tags.append("cond %d" % module.cond_dim)
        lines.append("| `%s` | %s | %s | %s -> %s | %d | %g | %d | %s | %d + %d |" % (
            name, what, ", ".join(tags), _fmt(_shape(module, "in")),
            _fmt(_shape(module, "out")), batch, t, nparam, dtype, nsize, rsize))
    lines += ["", "Total: %d files, %d bytes." % (2 * len(rows), total), ""]
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default %(default)s)")
    p.add_argument("--stats", action="store_true", help="print output/vjp magnitudes")
    args = p.parse_args(argv)
    rows = generate(args.out, stats=args.stats)
    total = sum(r[8] + r[9] for r in rows)
    print("wrote %d fixtures (%d files, %d bytes) to %s" % (len(rows), 2 * len(rows),
                                                         total, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
