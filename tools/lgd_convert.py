#!/usr/bin/env python3
"""Write (and read) liblgd network files: safetensors + `lgd.*` metadata.

The file format and the architectures are specified in docs/network-format.md.
This module is both a library and a command-line tool:

    python3 tools/lgd_convert.py export --arch unet --config cfg.json \\
        --weights model.pt --out model.safetensors
    python3 tools/lgd_convert.py export --arch mlp --config cfg.json \\
        --random-init --seed 1 --out demo.safetensors
    python3 tools/lgd_convert.py info model.safetensors
    python3 tools/lgd_convert.py reference model.safetensors --out model.ref.safetensors

Library:
    save_network(module, path, prediction='eps', time_input='discrete',
                 alphas_cumprod=None, sigma_data=None, dtype='F32')
    load_network(path) -> (module, metadata, alphas_cumprod or None)
    write_reference(module, path, batch, seed, t, cond=None, dtype='F32')
    read_safetensors(path) -> (metadata, {name: tensor})
    serialize_safetensors(tensors, metadata) -> bytes
    guided_diffusion_state_dict_to_lgd(state_dict, drop_learned_sigma=False)
    lgd_config_from_guided_diffusion(**guided_diffusion_model_flags)

The safetensors files are written here with struct and json only (the
`safetensors` package is not needed): an 8-byte little-endian header length,
a compact JSON header ("__metadata__" first, then the tensors in file order)
padded with spaces to a multiple of 8 bytes, then the tensor bytes back to
back.  Tensors are ordered as the reference implementation orders them
(wider dtype first, then by name), so the offsets are contiguous and every
tensor is aligned to its element size.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys

try:
    import torch
except ImportError:  # the CLI reports it; the test skips
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FORMAT_VERSION = "1"
PREDICTIONS = ("eps", "x0", "v", "edm")
TIME_INPUTS = ("discrete", "discrete_round", "log_sigma", "sigma")
ALIGNMENT = 8

# dtype name -> (torch dtype name, element size, rank in the file order:
# higher first, as the safetensors reference implementation sorts them)
_DTYPES = {
    "F64": ("float64", 8, 4),
    "F32": ("float32", 4, 3),
    "BF16": ("bfloat16", 2, 2),
    "F16": ("float16", 2, 1),
}
WEIGHT_DTYPES = ("F32", "F16", "BF16")


def _torch_dtype(name):
    try:
        return getattr(torch, _DTYPES[name][0])
    except KeyError:
        raise ValueError("unsupported dtype %r (F32, F16, BF16, F64)" % (name,))


def _dtype_name(tdtype):
    for k, (tn, _, _) in _DTYPES.items():
        if getattr(torch, tn) == tdtype:
            return k
    raise ValueError("unsupported tensor dtype %s" % (tdtype,))


def _require_torch():
    if torch is None:
        sys.exit("lgd_convert: PyTorch is required (pip install torch)")


# ---------------------------------------------------------------------------
# safetensors writer / reader (struct + json)

def _tensor_bytes(t):
    if sys.byteorder != "little":
        raise RuntimeError("big-endian hosts are not supported")
    u8 = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    try:
        return u8.numpy().tobytes()
    except Exception:  # numpy missing: slower but dependency-free
        return bytes(u8.tolist())


def serialize_safetensors(tensors, metadata=None):
    """bytes of a safetensors file holding `tensors` ({name: tensor}, each in
    the dtype to be written: float32/float16/bfloat16/float64) and the
    string->string `metadata`."""
    entries = []
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError("bad tensor name %r" % (name,))
        dname = _dtype_name(t.dtype)
        entries.append((-_DTYPES[dname][2], name, dname, t))
    entries.sort(key=lambda e: (e[0], e[1]))
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError("metadata must map str to str (%r: %r)" % (k, v))
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    blobs = []
    offset = 0
    for _, name, dname, t in entries:
        b = _tensor_bytes(t)
        header[name] = {"dtype": dname, "shape": [int(s) for s in t.shape],
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    hjson += b" " * ((ALIGNMENT - len(hjson) % ALIGNMENT) % ALIGNMENT)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def write_safetensors(path, tensors, metadata=None):
    data = serialize_safetensors(tensors, metadata)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def parse_safetensors(data):
    """(metadata, {name: tensor}, header) of the bytes of a safetensors file.
    Tensors keep their stored dtype (F16/BF16/F32/F64)."""
    if len(data) < 8:
        raise ValueError("file too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("header length %d past the end of the file" % n)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for name, info in header.items():
        dname = info["dtype"]
        tdtype = _torch_dtype(dname)
        shape = [int(s) for s in info["shape"]]
        a, b = (int(v) for v in info["data_offsets"])
        count = math.prod(shape)
        if b - a != count * _DTYPES[dname][1] or a < 0 or base + b > len(data):
            raise ValueError("tensor %s: bad data_offsets %r" % (name, [a, b]))
        spans.append((a, b))
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=tdtype)
        else:
            tensors[name] = torch.frombuffer(bytearray(data[base + a:base + b]),
                                             dtype=tdtype).reshape(shape)
    spans.sort()
    pos = 0
    for a, b in spans:
        if a != pos:
            raise ValueError("tensor data not contiguous at offset %d" % a)
        pos = b
    if base + pos != len(data):
        raise ValueError("%d trailing bytes after the tensor data" % (len(data) - base - pos))
    return meta, tensors, header


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    meta, tensors, _ = parse_safetensors(data)
    return meta, tensors


# ---------------------------------------------------------------------------
# schedules

def linear_alphas_cumprod(steps=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's linear beta schedule (Ho et al. 2020), float64."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alphas_cumprod(steps=1000, s=0.008, max_beta=0.999):
    """Improved-DDPM's cosine schedule (Nichol & Dhariwal 2021), float64."""
    def f(i):
        return math.cos((i / steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f(i + 1) / f(i), max_beta) for i in range(steps)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), dim=0)


def _check_alphas(a):
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1).to(torch.float32)
    if a.numel() < 2:
        raise ValueError("lgd.alphas_cumprod needs at least 2 values")
    if not bool(((a > 0) & (a < 1)).all()):
        raise ValueError("lgd.alphas_cumprod must lie in (0, 1)")
    if not bool((a[1:] < a[:-1]).all()):
        raise ValueError("lgd.alphas_cumprod must be strictly decreasing (in float32)")
    return a


# ---------------------------------------------------------------------------
# network files

def network_metadata(module, prediction="eps", time_input="discrete",
                     sigma_data=None):
    if prediction not in PREDICTIONS:
        raise ValueError("prediction must be one of %s" % (PREDICTIONS,))
    if time_input not in TIME_INPUTS:
        raise ValueError("time_input must be one of %s" % (TIME_INPUTS,))
    meta = {"lgd.format": FORMAT_VERSION}
    meta.update(module.lgd_metadata())
    meta["lgd.prediction"] = prediction
    meta["lgd.time_input"] = time_input
    if sigma_data is not None or prediction == "edm":
        meta["lgd.sigma_data"] = repr(float(0.5 if sigma_data is None else sigma_data))
    return meta


def round_weights(module, dtype):
    """A deep copy of `module` in float32 whose weights are rounded to `dtype`
    (F32, F16 or BF16) and back: what a file of that dtype holds."""
    m = copy.deepcopy(module).float()
    if dtype != "F32":
        td = _torch_dtype(dtype)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.to(td).to(torch.float32))
    return m


def save_network(module, path, prediction="eps", time_input="discrete",
                 alphas_cumprod=None, sigma_data=None, dtype="F32"):
    """Write `module` (one of tools/lgd_torch_models.py) as a network file.

    dtype: storage dtype of the weights (F32, F16 or BF16; rounded to
    nearest even).  alphas_cumprod: the discrete VP schedule, written as
    the F32 tensor `lgd.alphas_cumprod`; required by the format when
    time_input is discrete or discrete_round, so when it is None there the
    DDPM linear schedule of 1000 steps is written.  Returns the metadata."""
    _require_torch()
    if dtype not in WEIGHT_DTYPES:
        raise ValueError("dtype must be one of %s" % (WEIGHT_DTYPES,))
    meta = network_metadata(module, prediction, time_input, sigma_data)
    td = _torch_dtype(dtype)
    tensors = {}
    for name, t in module.state_dict().items():
        if name.startswith("lgd."):
            raise ValueError("parameter name %s clashes with lgd.*" % name)
        tensors[name] = t.detach().cpu().to(torch.float32).to(td)
    if alphas_cumprod is None and time_input in ("discrete", "discrete_round"):
        alphas_cumprod = linear_alphas_cumprod(1000)
    if alphas_cumprod is not None:
        tensors["lgd.alphas_cumprod"] = _check_alphas(alphas_cumprod)
    write_safetensors(path, tensors, meta)
    return meta


def load_network(path, dtype=torch.float32 if torch is not None else None):
    """(module, metadata, alphas_cumprod or None) of a network file.  The
    weight set must match the architecture exactly (names and shapes)."""
    _require_torch()
    from lgd_torch_models import build_from_metadata
    meta, tensors = read_safetensors(path)
    if meta.get("lgd.format") != FORMAT_VERSION:
        raise ValueError("%s: lgd.format is %r, expected %s"
                         % (path, meta.get("lgd.format"), FORMAT_VERSION))
    alphas = tensors.pop("lgd.alphas_cumprod", None)
    module = build_from_metadata(meta)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError("%s: weights do not match the architecture; missing %s, "
                         "unexpected %s" % (path, missing, unexpected))
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise ValueError("%s: %s has shape %s, expected %s" % (
                path, name, tuple(t.shape), tuple(expected[name].shape)))
    module.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    module = module.to(dtype).eval()
    return module, meta, alphas


def weight_dtype_of(path):
    """The storage dtype of a network file's weights (F32, F16, BF16)."""
    _, tensors = read_safetensors(path)
    names = {_dtype_name(t.dtype) for k, t in tensors.items() if k != "lgd.alphas_cumprod"}
    return names.pop() if len(names) == 1 else "F32"


# ---------------------------------------------------------------------------
# reference files

def default_cond(module, batch, generator):
    """A condition for a conditional module: one-hot classes for the U-Nets,
    N(0, 1) for the MLP; None when unconditional."""
    from lgd_torch_models import LgdUNet
    cd = int(getattr(module, "cond_dim", 0))
    if cd <= 0:
        return None
    if isinstance(module, LgdUNet):
        labels = torch.randint(0, cd, (batch,), generator=generator)
        return torch.nn.functional.one_hot(labels, cd).to(torch.float32)
    return torch.randn(batch, cd, generator=generator, dtype=torch.float32)


def compute_reference(module, batch, seed, t, cond=None, dtype="F32",
                      x_scale=1.0):
    """The tensors of a reference file (float32), computed in float64 from
    the weights as stored with `dtype`."""
    _require_torch()
    g = torch.Generator().manual_seed(int(seed))
    x_in = (torch.randn(batch, module.in_dim, generator=g, dtype=torch.float32)
            * float(x_scale)).to(torch.float32)
    if cond is None:
        cond = default_cond(module, batch, g)
    elif cond is not None:
        cond = torch.as_tensor(cond, dtype=torch.float32).reshape(batch, -1)
    cot = torch.randn(batch, module.out_dim, generator=g, dtype=torch.float32)
    t32 = torch.tensor([float(t)], dtype=torch.float32)

    m64 = round_weights(module, dtype).double().eval()
    x64 = x_in.double().requires_grad_(True)
    c64 = cond.double() if cond is not None else None
    out = m64(x64, t32.double(), c64)
    (vjp,) = torch.autograd.grad(out, x64, cot.double())
    ref = {"x_in": x_in, "t": t32, "out": out.detach().to(torch.float32),
           "cotangent": cot, "vjp": vjp.to(torch.float32)}
    if cond is not None:
        ref["cond"] = cond
    return ref


def write_reference(module, path, batch, seed, t, cond=None, dtype="F32",
                    x_scale=1.0):
    """Write NAME.ref.safetensors: x_in [B][dim], t [1], cond (conditional
    networks), out [B][out_dim], cotangent, vjp [B][dim]; all F32, computed
    in float64 by `module.double()` on a deep copy from the float32 weights
    (rounded to `dtype` first for F16/BF16 files).  Returns the tensors."""
    ref = compute_reference(module, batch, seed, t, cond=cond, dtype=dtype,
                            x_scale=x_scale)
    write_safetensors(path, ref, None)
    return ref


# ---------------------------------------------------------------------------
# guided-diffusion

def guided_diffusion_state_dict_to_lgd(state_dict, drop_learned_sigma=False):
    """Map a guided-diffusion UNetModel state_dict onto liblgd names.

    The names are the same by design (docs/network-format.md uses
    guided-diffusion's module names: time_embed.0, input_blocks.j.0.in_layers.2,
    middle_block.1.qkv, output_blocks.j.2.conv, out.2, label_emb, ...), so the
    map is the identity on names.  It strips a DataParallel `module.` prefix,
    converts to float32, and with drop_learned_sigma keeps only the first half
    of the output channels of `out.2` (models trained with learn_sigma=True
    output [eps, variance]; liblgd wants out_channels = in_channels).
    Unsupported guided-diffusion features (resblock_updown,
    use_new_attention_order, per-level num_head_channels) are refused by
    lgd_config_from_guided_diffusion and by load_state_dict."""
    out = {}
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[len("module."):]
        out[k] = v.detach().cpu().to(torch.float32)
    if drop_learned_sigma:
        w, b = out["out.2.weight"], out["out.2.bias"]
        if w.shape[0] % 2 != 0:
            raise ValueError("out.2 has an odd number of channels; no learned sigma")
        half = w.shape[0] // 2
        out["out.2.weight"] = w[:half].clone()
        out["out.2.bias"] = b[:half].clone()
    return out


def lgd_config_from_guided_diffusion(image_size, num_channels, num_res_blocks,
                                     attention_resolutions="16,8",
                                     channel_mult="", num_heads=1,
                                     num_head_channels=-1, learn_sigma=False,
                                     class_cond=False, use_scale_shift_norm=False,
                                     resblock_updown=False,
                                     use_new_attention_order=False,
                                     in_channels=3, num_classes=1000,
                                     conv_resample=True, **_ignored):
    """LgdUNet keyword arguments for guided-diffusion's create_model flags
    (script_util.py).  The output keeps in_channels channels (drop the learned
    sigma half with guided_diffusion_state_dict_to_lgd(..., True))."""
    if resblock_updown:
        raise ValueError("resblock_updown=True is not part of the lgd U-Net")
    if use_new_attention_order:
        raise ValueError("use_new_attention_order=True is not supported (legacy order only)")
    if channel_mult == "" or channel_mult is None:
        defaults = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4),
                    128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
        if image_size not in defaults:
            raise ValueError("unsupported image size %d" % image_size)
        channel_mult = defaults[image_size]
    elif isinstance(channel_mult, str):
        channel_mult = tuple(int(c) for c in channel_mult.split(","))
    mults = []
    for m in channel_mult:
        if float(m) != int(m):
            raise ValueError("fractional channel_mult %r is not supported" % (m,))
        mults.append(int(m))
    if isinstance(attention_resolutions, str):
        res = [int(r) for r in attention_resolutions.split(",") if r.strip()]
    else:
        res = [int(r) for r in attention_resolutions]
    levels = []
    for r in res:
        ds = image_size // r
        lv = int(round(math.log2(ds)))
        if 2 ** lv != ds:
            raise ValueError("attention resolution %d is not a power-of-two downsampling" % r)
        if lv < len(mults):
            levels.append(lv)
    levels = sorted(set(levels))
    if num_head_channels != -1:
        chans = {mults[lv] * num_channels for lv in levels} | {mults[-1] * num_channels}
        heads = {c // num_head_channels for c in chans}
        if len(heads) != 1 or any(c % num_head_channels for c in chans):
            raise ValueError("num_head_channels=%d gives a different head count per "
                             "level; liblgd has one num_heads" % num_head_channels)
        num_heads = heads.pop()
    return dict(in_channels=in_channels, out_channels=in_channels,
                model_channels=num_channels, channel_mult=mults,
                num_res_blocks=num_res_blocks, attention_levels=levels,
                num_heads=num_heads, num_groups=32,
                num_classes=num_classes if class_cond else 0,
                conv_resample=int(bool(conv_resample)),
                use_scale_shift_norm=int(bool(use_scale_shift_norm)),
                kernel_size=3, image_size=image_size, dims=2)


# ---------------------------------------------------------------------------
# CLI

def build_from_config(arch, cfg):
    """A module of `arch` from a JSON config of constructor arguments.
    mlp: LgdMLP(dim, hidden, depth, time_embed_dim, cond_dim, act, out_dim);
    unet: LgdUNet(..., image_size); temporal_unet: LgdUNet(..., horizon);
    layer: {"layer": NAME, "input_shape": [...], ...the class's arguments}."""
    import lgd_torch_models as M
    cfg = dict(cfg)
    if arch == "mlp":
        return M.LgdMLP(**cfg)
    if arch == "unet":
        cfg.pop("dims", None)
        return M.LgdUNet(dims=2, **cfg)
    if arch == "temporal_unet":
        cfg.pop("dims", None)
        return M.LgdUNet(dims=1, **cfg)
    if arch == "layer":
        name = cfg.pop("layer")
        cls = M.LAYER_CLASSES[name]
        if name == "linear":
            return cls(**cfg)
        if name == "layer_norm":
            return cls(**cfg)
        shape = cfg.pop("input_shape")
        return cls(tuple(shape), **cfg)
    raise ValueError("unknown architecture %r" % arch)


def _load_state_dict_file(path):
    if path.endswith(".safetensors"):
        _, sd = read_safetensors(path)
        return sd
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError("%s does not hold a state_dict" % path)
    return obj


def _load_alphas(spec):
    """linear[:N], cosine[:N], or a file (.json list, .pt tensor, .npy)."""
    kind, _, n = spec.partition(":")
    if kind in ("linear", "cosine"):
        steps = int(n) if n else 1000
        return linear_alphas_cumprod(steps) if kind == "linear" else cosine_alphas_cumprod(steps)
    if spec.endswith(".json"):
        with open(spec) as f:
            return torch.tensor(json.load(f), dtype=torch.float64)
    if spec.endswith(".npy"):
        import numpy as np
        return torch.from_numpy(np.load(spec)).to(torch.float64)
    return torch.as_tensor(torch.load(spec, map_location="cpu", weights_only=True),
                           dtype=torch.float64)


def _cmd_export(args):
    import lgd_torch_models as M
    with open(args.config) as f:
        cfg = json.load(f)
    if args.from_guided_diffusion:
        if args.arch != "unet":
            sys.exit("--from-guided-diffusion needs --arch unet")
        cfg = lgd_config_from_guided_diffusion(**cfg)
        cfg.pop("dims")
    module = build_from_config(args.arch, cfg)
    if args.random_init:
        if args.weights:
            sys.exit("give --weights or --random-init, not both")
        M.randomize_(module, args.seed)
    elif args.weights:
        sd = _load_state_dict_file(args.weights)
        if args.from_guided_diffusion:
            mapped = guided_diffusion_state_dict_to_lgd(sd)
            learned_sigma = ("out.2.weight" in mapped and
                             mapped["out.2.weight"].shape[0] == 2 * module.out_channels)
            sd = guided_diffusion_state_dict_to_lgd(sd, drop_learned_sigma=learned_sigma)
        module.load_state_dict({k: torch.as_tensor(v).to(torch.float32)
                                for k, v in sd.items()}, strict=True)
    else:
        sys.exit("give --weights FILE or --random-init")
    alphas = _load_alphas(args.alphas_cumprod) if args.alphas_cumprod else None
    meta = save_network(module, args.out, prediction=args.prediction,
                        time_input=args.time_input, alphas_cumprod=alphas,
                        sigma_data=args.sigma_data, dtype=args.dtype)
    n = sum(p.numel() for p in module.parameters())
    print("wrote %s: %s, %d parameters, %s, %d bytes" % (
        args.out, meta["lgd.architecture"], n, args.dtype, os.path.getsize(args.out)))
    if args.reference:
        write_reference(module, args.reference, args.batch, args.ref_seed, args.t,
                        dtype=args.dtype)
        print("wrote %s" % args.reference)


def _cmd_info(args):
    meta, tensors = read_safetensors(args.file)
    for k in sorted(meta):
        print("%s = %s" % (k, meta[k]))
    total = 0
    for name, t in tensors.items():
        total += t.numel()
        print("  %-44s %-5s %s" % (name, _dtype_name(t.dtype), list(t.shape)))
    print("%d tensors, %d values" % (len(tensors), total))
    if "lgd.architecture" in meta:
        module, _, _ = load_network(args.file)
        print("loads as %s: in_dim %d, out_dim %d, cond_dim %d" % (
            type(module).__name__, module.in_dim, module.out_dim,
            getattr(module, "cond_dim", 0)))


def _cmd_reference(args):
    module, _, _ = load_network(args.file)
    out = args.out or (args.file[:-len(".safetensors")] + ".ref.safetensors")
    write_reference(module, out, args.batch, args.seed, args.t,
                    dtype=weight_dtype_of(args.file))
    print("wrote %s" % out)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="lgd_convert.py",
        description="Write liblgd network files (safetensors + lgd.* metadata, "
                    "docs/network-format.md) from the PyTorch modules of "
                    "tools/lgd_torch_models.py.")
    sub = p.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("export", help="config + weights -> network file",
                       description="Build the module of --arch from --config "
                       "(JSON constructor arguments), load --weights (a state_dict "
                       "of that module: .pt/.pth or .safetensors) or draw "
                       "--random-init weights, and write --out.")
    e.add_argument("--arch", required=True,
                   choices=("mlp", "unet", "temporal_unet", "layer"))
    e.add_argument("--config", required=True, help="JSON file of constructor arguments")
    e.add_argument("--weights", help="state_dict file (.pt, .pth, .safetensors)")
    e.add_argument("--random-init", action="store_true",
                   help="seeded non-trivial random weights (demo files)")
    e.add_argument("--seed", type=int, default=0, help="seed of --random-init")
    e.add_argument("--from-guided-diffusion", action="store_true",
                   help="--config holds guided-diffusion create_model flags and "
                   "--weights a guided-diffusion UNetModel state_dict")
    e.add_argument("--out", required=True)
    e.add_argument("--dtype", default="F32", choices=WEIGHT_DTYPES)
    e.add_argument("--prediction", default="eps", choices=PREDICTIONS)
    e.add_argument("--time-input", default="discrete", choices=TIME_INPUTS)
    e.add_argument("--sigma-data", type=float, default=None)
    e.add_argument("--alphas-cumprod", default=None,
                   help="linear[:N], cosine[:N], or a .json/.npy/.pt file "
                   "(default with discrete time: linear:1000)")
    e.add_argument("--reference", default=None,
                   help="also write a reference file (NAME.ref.safetensors)")
    e.add_argument("--batch", type=int, default=2)
    e.add_argument("--t", type=float, default=37.5)
    e.add_argument("--ref-seed", type=int, default=1)
    e.set_defaults(fn=_cmd_export)

    i = sub.add_parser("info", help="print a file's metadata and tensors")
    i.add_argument("file")
    i.set_defaults(fn=_cmd_info)

    r = sub.add_parser("reference", help="write NAME.ref.safetensors for a network file")
    r.add_argument("file")
    r.add_argument("--out", default=None)
    r.add_argument("--batch", type=int, default=2)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--t", type=float, default=37.5)
    r.set_defaults(fn=_cmd_reference)

    args = p.parse_args(argv)
    _require_torch()
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
