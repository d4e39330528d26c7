#!/usr/bin/env python3
"""Write (and read) liblgd network files: safetensors + `lgd.*` metadata.

The file format and the architectures are specified in docs/network-format.md.
This module is both a library and a command-line tool:

    python3 tools/lgd_convert.py export --arch unet --config cfg.json \\
        --weights model.pt --out model.safetensors
    python3 tools/lgd_convert.py export --arch mlp --config cfg.json \\
        --random-init --seed 1 --out demo.safetensors
    python3 tools/lgd_convert.py diffusers MODEL_DIR model.safetensors \\
        [--scheduler SCHEDULER_DIR] [--image-size N]
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
    save_diffusers(unet, path, scheduler, image_size=None) -> (metadata, LgdUNet)
    convert_diffusers(unet, scheduler) -> (LgdUNet, adapter, provenance metadata)
    diffusers_unet_plan(config), diffusers_unet_to_lgd(config, state_dict),
    diffusers_scheduler_adapter(scheduler_config), load_diffusers_dir(dir)

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
                 alphas_cumprod=None, sigma_data=None, dtype="F32",
                 extra_metadata=None):
    """Write `module` (one of tools/lgd_torch_models.py) as a network file.

    dtype: storage dtype of the weights (F32, F16 or BF16; rounded to
    nearest even).  alphas_cumprod: the discrete VP schedule, written as
    the F32 tensor `lgd.alphas_cumprod`; required by the format when
    time_input is discrete or discrete_round, so when it is None there the
    DDPM linear schedule of 1000 steps is written.  extra_metadata: more
    string -> string entries (provenance; keys must not start with lgd.).
    Returns the metadata."""
    _require_torch()
    if dtype not in WEIGHT_DTYPES:
        raise ValueError("dtype must be one of %s" % (WEIGHT_DTYPES,))
    meta = network_metadata(module, prediction, time_input, sigma_data)
    for k, v in (extra_metadata or {}).items():
        if k.startswith("lgd."):
            raise ValueError("extra metadata key %s clashes with lgd.*" % k)
        meta[k] = v
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
    use_new_attention_order) are refused by lgd_config_from_guided_diffusion
    and by load_state_dict."""
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
    head_channels = 0
    if num_head_channels != -1:
        chans = {mults[lv] * num_channels for lv in levels} | {mults[-1] * num_channels}
        if any(c % num_head_channels for c in chans):
            raise ValueError("num_head_channels=%d does not divide the attention channels %s"
                             % (num_head_channels, sorted(chans)))
        heads = {c // num_head_channels for c in chans}
        if len(heads) == 1:  # one head count: lgd.num_heads (read by every liblgd)
            num_heads = heads.pop()
        else:  # per-level head counts: lgd.num_head_channels (liblgd >= 0.5.0)
            head_channels = num_head_channels
    return dict(in_channels=in_channels, out_channels=in_channels,
                model_channels=num_channels, channel_mult=mults,
                num_res_blocks=num_res_blocks, attention_levels=levels,
                num_heads=num_heads, num_groups=32,
                num_classes=num_classes if class_cond else 0,
                conv_resample=int(bool(conv_resample)),
                use_scale_shift_norm=int(bool(use_scale_shift_norm)),
                kernel_size=3, image_size=image_size, dims=2,
                num_head_channels=head_channels)


# ---------------------------------------------------------------------------
# Hugging Face diffusers: UNet2DModel + a DDPM-family scheduler config
#
# UNet2DModel (diffusers/models/unets/unet_2d.py) is the ADM U-Net under other
# names: conv_in = input_blocks.0.0, down_blocks.l.resnets.j / attentions.j /
# downsamplers.0.conv = the input blocks of level l, mid_block = middle_block,
# up_blocks.i (level L-1-i) = the output blocks, conv_norm_out / conv_out = out.
# Its ResnetBlock2D is ADM's ResBlock (norm1, conv1, time_emb_proj, norm2,
# conv2, conv_shortcut), the skips are pushed and popped in the same order and
# concatenated as cat([h, skip]).  What differs is mapped exactly:
#   * flip_sin_to_cos=False: the embedding is [sin, cos] rather than ADM's
#     [cos, sin]: the two halves of time_embedding.linear_1's columns swap;
#   * attention: separate to_q/to_k/to_v Linear(C, C) with heads of
#     attention_head_dim channels, contiguous per head, scale 1/sqrt(d): ADM's
#     legacy qkv conv with the rows interleaved [q_h; k_h; v_h] per head;
#     C / d heads per block (lgd.num_heads when every block has the same count,
#     else lgd.num_head_channels = d);
#   * the scale-shift middle attention has no GroupNorm unless
#     attn_norm_num_groups is set (lgd.middle_attention_groups);
#   * an attention block on one side of a level only (AttnDownBlock2D over
#     UpBlock2D or the reverse), add_attention=False or mid_block_type=None:
#     the missing blocks are written with zero output projections (an
#     attention block with proj_out = 0 is x + 0 = x, a ResBlock with
#     out_layers.3 = 0 is x + 0 = x, in value and in VJP).
# Everything else is refused with a DiffusersError naming the field.

class DiffusersError(ValueError):
    """A diffusers model or scheduler config that liblgd's `unet` cannot
    express; the message names the field."""


# UNet2DModel's constructor defaults (diffusers 0.42): a field missing from a
# config.json (written by an older diffusers) has this value
UNET2D_DEFAULTS = {
    "sample_size": None, "in_channels": 3, "out_channels": 3,
    "center_input_sample": False, "time_embedding_type": "positional",
    "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                         "AttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                       "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2,
    "mid_block_scale_factor": 1, "downsample_padding": 1,
    "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0,
    "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32,
    "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True,
    "class_embed_type": None, "num_class_embeds": None,
    "num_train_timesteps": None,
}
_DOWN_BLOCKS = {"DownBlock2D": False, "AttnDownBlock2D": True}
_UP_BLOCKS = {"UpBlock2D": False, "AttnUpBlock2D": True}
_MAX_LEVELS = 8  # src/nn/nn_arch_unet.c

# The schedulers whose alphas_cumprod is cumprod(1 - betas) of the usual beta
# schedules, with their defaults (beta_start, beta_end, beta_schedule)
_DDPM_FAMILY = (1e-4, 0.02, "linear")
_KDIFF_FAMILY = (0.00085, 0.012, "linear")
_LCM_FAMILY = (0.00085, 0.012, "scaled_linear")
DIFFUSERS_SCHEDULERS = {
    "DDPMScheduler": _DDPM_FAMILY, "DDPMParallelScheduler": _DDPM_FAMILY,
    "DDIMScheduler": _DDPM_FAMILY, "DDIMParallelScheduler": _DDPM_FAMILY,
    "PNDMScheduler": _DDPM_FAMILY, "EulerDiscreteScheduler": _DDPM_FAMILY,
    "EulerAncestralDiscreteScheduler": _DDPM_FAMILY,
    "DPMSolverMultistepScheduler": _DDPM_FAMILY,
    "DPMSolverSinglestepScheduler": _DDPM_FAMILY,
    "UniPCMultistepScheduler": _DDPM_FAMILY, "DEISMultistepScheduler": _DDPM_FAMILY,
    "LMSDiscreteScheduler": _DDPM_FAMILY, "SASolverScheduler": _DDPM_FAMILY,
    "HeunDiscreteScheduler": _KDIFF_FAMILY, "KDPM2DiscreteScheduler": _KDIFF_FAMILY,
    "KDPM2AncestralDiscreteScheduler": _KDIFF_FAMILY,
    "LCMScheduler": _LCM_FAMILY, "TCDScheduler": _LCM_FAMILY,
}
DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _dconfig(config):
    """A UNet2DModel config as a plain dict with the defaults filled in;
    refuses other classes and fields this converter does not know."""
    cfg = dict(config)
    cls = cfg.get("_class_name", "UNet2DModel")
    if cls != "UNet2DModel":
        raise DiffusersError("_class_name = %r: only UNet2DModel is converted" % (cls,))
    unknown = sorted(k for k, v in cfg.items()
                     if not k.startswith("_") and k not in UNET2D_DEFAULTS
                     and v is not None)
    if unknown:
        raise DiffusersError("config field %s is unknown to this converter (written for "
                             "diffusers 0.42's UNet2DModel)" % unknown[0])
    out = dict(UNET2D_DEFAULTS)
    out.update({k: v for k, v in cfg.items() if not k.startswith("_")})
    return out


def _block_name(name):
    return name[len("UNetRes"):] if isinstance(name, str) and name.startswith("UNetRes") else name


def _int_field(cfg, key, lo=1):
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise DiffusersError("%s = %r must be an integer >= %d" % (key, v, lo))
    return v


def diffusers_unet_plan(config, image_size=None, learned_variance=False):
    """(LgdUNet keyword arguments, plan) of a diffusers UNet2DModel config
    (a dict or a FrozenDict, e.g. `unet.config`).

    image_size: the square image side (default: the config's sample_size).
    learned_variance: the model outputs [eps, variance] (out_channels =
    2 in_channels, a DDPMScheduler with variance_type learned or
    learned_range); the file keeps the first half.  The plan holds what
    the weight map needs (levels, attention per side, what is zero-filled).
    Raises DiffusersError naming the field of a configuration liblgd's
    `unet` cannot express."""
    cfg = _dconfig(config)

    def refuse(key, why):
        raise DiffusersError("%s = %r: %s" % (key, cfg[key], why))

    if cfg["time_embedding_type"] != "positional":
        refuse("time_embedding_type", "only the sinusoidal \"positional\" embedding is "
               "expressible (fourier and learned are not)")
    if cfg["freq_shift"] != 0:
        refuse("freq_shift", "liblgd's sinusoidal embedding has the frequencies "
               "exp(-ln(10000) i / half) (freq_shift 0); DDPM's freq_shift 1 divides by "
               "half - 1, which the C time embedding cannot compute")
    if not isinstance(cfg["flip_sin_to_cos"], bool):
        refuse("flip_sin_to_cos", "must be true or false")
    if cfg["center_input_sample"]:
        refuse("center_input_sample", "the 2x - 1 input map is not part of the lgd U-Net")
    if cfg["act_fn"] not in ("silu", "swish"):
        refuse("act_fn", "UNet2DModel's output and time-embedding activations are SiLU "
               "whatever act_fn is; liblgd uses one activation, so only silu converts")
    if not isinstance(cfg["norm_eps"], (int, float)) or abs(cfg["norm_eps"] - 1e-5) > 1e-12:
        refuse("norm_eps", "liblgd's GroupNorm eps is 1e-5")
    groups = _int_field(cfg, "norm_num_groups")
    if cfg["resnet_time_scale_shift"] not in ("default", "scale_shift"):
        refuse("resnet_time_scale_shift", "only default and scale_shift are expressible")
    scale_shift = cfg["resnet_time_scale_shift"] == "scale_shift"
    if cfg["mid_block_scale_factor"] != 1:
        refuse("mid_block_scale_factor", "a middle block output scale is not part of the lgd "
               "U-Net (1 only)")
    if cfg["downsample_padding"] != 1:
        refuse("downsample_padding", "liblgd's downsampling conv is k 3, stride 2, "
               "padding 1 (padding 0 pads asymmetrically)")
    R = _int_field(cfg, "layers_per_block")
    in_ch = _int_field(cfg, "in_channels")
    out_ch = _int_field(cfg, "out_channels")
    bc = cfg["block_out_channels"]
    if not isinstance(bc, (list, tuple)) or not bc:
        refuse("block_out_channels", "must be a non-empty list")
    bc = [int(c) for c in bc]
    L = len(bc)
    if L > _MAX_LEVELS:
        refuse("block_out_channels", "at most %d levels" % _MAX_LEVELS)
    C0 = bc[0]
    if C0 < 2 or C0 % 2:
        refuse("block_out_channels", "block_out_channels[0] is the sinusoidal embedding "
               "width, which must be even")
    for i, c in enumerate(bc):
        if c < 1 or c % C0:
            refuse("block_out_channels", "block_out_channels[%d] = %d is not a multiple of "
                   "block_out_channels[0] = %d (the lgd U-Net's channel_mult)" % (i, c, C0))
        if c % groups:
            refuse("norm_num_groups", "%d channels do not split into %d groups" % (c, groups))
    down = [_block_name(t) for t in cfg["down_block_types"]]
    up = [_block_name(t) for t in cfg["up_block_types"]]
    if len(down) != L:
        refuse("down_block_types", "needs one type per block_out_channels entry")
    if len(up) != L:
        refuse("up_block_types", "needs one type per block_out_channels entry")
    for t in down:
        if t not in _DOWN_BLOCKS:
            refuse("down_block_types", "%r is not convertible (DownBlock2D, "
                   "AttnDownBlock2D)" % (t,))
    for t in up:
        if t not in _UP_BLOCKS:
            refuse("up_block_types", "%r is not convertible (UpBlock2D, AttnUpBlock2D)" % (t,))
    attn_down = [_DOWN_BLOCKS[t] for t in down]
    attn_up = [_UP_BLOCKS[up[L - 1 - lv]] for lv in range(L)]  # by level
    if any(attn_down[:L - 1]) and cfg["downsample_type"] != "conv":
        refuse("downsample_type", "only conv downsampling is expressible")
    if any(attn_up[1:]) and cfg["upsample_type"] != "conv":
        refuse("upsample_type", "only conv upsampling is expressible")
    mid_type = cfg["mid_block_type"]
    if mid_type not in ("UNetMidBlock2D", None):
        refuse("mid_block_type", "UNetMidBlock2D or null only")
    has_mid = mid_type is not None
    mid_attn = has_mid and bool(cfg["add_attention"])

    # the time embedding and the classes
    E = cfg["time_embedding_dim"] or 4 * C0
    if isinstance(E, bool) or not isinstance(E, int) or E < 1:
        refuse("time_embedding_dim", "must be a positive integer")
    cet = cfg["class_embed_type"]
    if cet is None:
        n = cfg["num_class_embeds"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            refuse("num_class_embeds", "must be a positive integer")
        classes, class_kind = (n, "embedding") if n else (0, None)
    elif cet == "identity":
        classes, class_kind = E, "identity"  # cond = the [E] vector itself
    else:
        refuse("class_embed_type", "only a class table (num_class_embeds) or identity is "
               "expressible")

    # the image
    size = image_size if image_size is not None else cfg["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise DiffusersError("sample_size = %r: liblgd's unet is square (give "
                                 "image_size)" % (size,))
        size = size[0]
    if size is None:
        raise DiffusersError("sample_size = None: give image_size")
    size = int(size)
    if size < 1 or size % (2 ** (L - 1)):
        raise DiffusersError("image size %d is not divisible by 2^(levels - 1) = %d"
                             % (size, 2 ** (L - 1)))

    # outputs
    if learned_variance:
        if out_ch != 2 * in_ch:
            refuse("out_channels", "a learned variance needs out_channels = 2 in_channels")
        out_keep = in_ch
    else:
        if out_ch != in_ch:
            refuse("out_channels", "differs from in_channels = %d: not a denoiser (a "
                   "learned-variance model needs the scheduler's variance_type learned "
                   "or learned_range)" % in_ch)
        out_keep = out_ch

    # attention: levels, heads, middle norm
    levels = [lv for lv in range(L) if attn_down[lv] or attn_up[lv]]
    d = cfg["attention_head_dim"]
    if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
        refuse("attention_head_dim", "must be a positive integer or null")
    real = ([bc[lv] for lv in range(L) if attn_down[lv] or attn_up[lv]]
            + ([bc[-1]] if mid_attn else []))
    graph = [bc[lv] for lv in levels] + [bc[-1]]  # every attention block liblgd builds
    num_heads, head_channels = 1, 0
    if d is not None:
        for c in real:
            if c % d:
                refuse("attention_head_dim", "%d channels do not split into heads of %d "
                       "(diffusers' inner width would be %d)" % (c, d, (c // d) * d))
        heads = {c // d for c in real}
        if len(heads) == 1 and all(c % next(iter(heads)) == 0 for c in graph):
            num_heads = heads.pop()
        elif all(c % d == 0 for c in graph):
            head_channels = d
        else:
            refuse("attention_head_dim", "no head count fits the zero-filled attention "
                   "blocks too")
    if mid_attn:
        ag = cfg["attn_norm_num_groups"]
        if ag is None:
            mid_groups = 0 if scale_shift else groups  # diffusers: no norm with scale_shift
        else:
            if isinstance(ag, bool) or not isinstance(ag, int) or ag < 1 or bc[-1] % ag:
                refuse("attn_norm_num_groups", "must be a positive integer dividing %d"
                       % bc[-1])
            mid_groups = ag
    else:
        mid_groups = groups  # zero-filled: the groups do not matter

    kwargs = dict(in_channels=in_ch, out_channels=out_keep, model_channels=C0,
                  channel_mult=[c // C0 for c in bc], num_res_blocks=R,
                  attention_levels=levels, num_heads=num_heads, num_groups=groups,
                  num_classes=classes, conv_resample=1,
                  use_scale_shift_norm=int(scale_shift), kernel_size=3,
                  time_embed_dim=E, image_size=size, act="silu",
                  num_head_channels=head_channels, middle_attention_groups=mid_groups)
    plan = dict(levels=L, R=R, flip=cfg["flip_sin_to_cos"], attn_down=attn_down,
                attn_up=attn_up, has_mid=has_mid, mid_attn=mid_attn,
                class_kind=class_kind, learned_variance=bool(learned_variance),
                out_channels=out_ch)
    return kwargs, plan


_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _diffusers_names(state_dict):
    """float32 tensors under diffusers' current names (the attention names of
    diffusers < 0.14 checkpoints, query/key/value/proj_attn, renamed)."""
    out = {}
    for k, v in state_dict.items():
        parts = k.split(".")
        if (len(parts) >= 3 and ".attentions." in "." + k and parts[-2] in _LEGACY_ATTENTION
                and parts[-1] in ("weight", "bias")):
            k = ".".join(parts[:-2] + [_LEGACY_ATTENTION[parts[-2]], parts[-1]])
        if k in out:
            raise DiffusersError("weights: %s appears twice (old and new attention names)" % k)
        out[k] = torch.as_tensor(v).detach().cpu().to(torch.float32)
    return out


def diffusers_unet_to_lgd(config, state_dict, image_size=None, learned_variance=False):
    """The LgdUNet (tools/lgd_torch_models.py, float32, eval) computing what
    the UNet2DModel of `config` with weights `state_dict` computes (its first
    in_channels outputs with learned_variance).  Every tensor of the state
    dict is used exactly once; a missing, unexpected or misshapen one raises
    DiffusersError."""
    _require_torch()
    import lgd_torch_models as M
    kwargs, plan = diffusers_unet_plan(config, image_size, learned_variance)
    module = M.LgdUNet(dims=2, **kwargs)
    template = module.state_dict()
    src = _diffusers_names(state_dict)
    dst = {}

    def take(name):
        if name not in src:
            raise DiffusersError("weights: tensor %s is missing" % name)
        return src.pop(name)

    def put(name, t):
        want = tuple(template[name].shape)
        if tuple(t.shape) != want:
            raise DiffusersError("weights: %s has shape %s, the config needs %s"
                                 % (name, list(t.shape), list(want)))
        dst[name] = t

    def copy(d, s):
        for p in ("weight", "bias"):
            put("%s.%s" % (d, p), take("%s.%s" % (s, p)))

    def resblock(d, s):
        copy(d + ".in_layers.0", s + ".norm1")
        copy(d + ".in_layers.2", s + ".conv1")
        copy(d + ".emb_layers.1", s + ".time_emb_proj")
        copy(d + ".out_layers.0", s + ".norm2")
        copy(d + ".out_layers.3", s + ".conv2")
        if d + ".skip_connection.weight" in template:
            copy(d + ".skip_connection", s + ".conv_shortcut")

    def heads_of(C):
        return C // module.num_head_channels if module.num_head_channels else module.num_heads

    def attention(d, s):
        if d + ".norm.weight" in template:
            copy(d + ".norm", s + ".group_norm")
        C = template[d + ".proj_out.weight"].shape[0]
        h = heads_of(C)
        ch = C // h
        for p in ("weight", "bias"):
            q, k, v = (take("%s.%s.%s" % (s, n, p)) for n in ("to_q", "to_k", "to_v"))
            for n, t in (("to_q", q), ("to_k", k), ("to_v", v)):
                if tuple(t.shape[:1]) != (C,):
                    raise DiffusersError("weights: %s.%s.%s has shape %s, the config needs "
                                         "%d rows" % (s, n, p, list(t.shape), C))
            # legacy order: per head h, rows [q_h; k_h; v_h] of ch each
            qkv = torch.stack([q.reshape(h, ch, -1), k.reshape(h, ch, -1),
                               v.reshape(h, ch, -1)], dim=1).reshape(3 * C, -1)
            put("%s.qkv.%s" % (d, p), qkv.reshape(template["%s.qkv.%s" % (d, p)].shape))
        w = take(s + ".to_out.0.weight")
        put(d + ".proj_out.weight", w.reshape(template[d + ".proj_out.weight"].shape)
            if w.dim() == 2 else w)
        put(d + ".proj_out.bias", take(s + ".to_out.0.bias"))

    def identity(d):
        """zero-fill a block: GroupNorm weight 1, everything else 0 (x + 0)"""
        names = [n for n in template if n.startswith(d + ".")]
        if not names:
            raise DiffusersError("internal: no block %s" % d)
        for n in names:
            norm = (".norm." in n or ".in_layers.0." in n or ".out_layers.0." in n)
            dst[n] = (torch.ones if norm and n.endswith(".weight") else torch.zeros)(
                template[n].shape, dtype=torch.float32)

    # time embedding (ADM's sinusoid is [cos, sin]; flip_sin_to_cos=False is [sin, cos])
    w1 = take("time_embedding.linear_1.weight")
    if not plan["flip"]:
        half = w1.shape[1] // 2
        w1 = torch.cat([w1[:, half:], w1[:, :half]], dim=1)
    put("time_embed.0.weight", w1)
    put("time_embed.0.bias", take("time_embedding.linear_1.bias"))
    copy("time_embed.2", "time_embedding.linear_2")
    if plan["class_kind"] == "embedding":
        put("label_emb.weight", take("class_embedding.weight"))
    elif plan["class_kind"] == "identity":
        E = template["label_emb.weight"].shape[0]
        put("label_emb.weight", torch.eye(E, dtype=torch.float32))

    copy("input_blocks.0.0", "conv_in")
    L, R = plan["levels"], plan["R"]
    j = 1
    for lv in range(L):
        for r in range(R):
            resblock("input_blocks.%d.0" % j, "down_blocks.%d.resnets.%d" % (lv, r))
            if plan["attn_down"][lv]:
                attention("input_blocks.%d.1" % j, "down_blocks.%d.attentions.%d" % (lv, r))
            elif plan["attn_up"][lv]:
                identity("input_blocks.%d.1" % j)
            j += 1
        if lv != L - 1:
            copy("input_blocks.%d.0.op" % j, "down_blocks.%d.downsamplers.0.conv" % lv)
            j += 1
    if plan["has_mid"]:
        resblock("middle_block.0", "mid_block.resnets.0")
        if plan["mid_attn"]:
            attention("middle_block.1", "mid_block.attentions.0")
        else:
            identity("middle_block.1")
        resblock("middle_block.2", "mid_block.resnets.1")
    else:
        for b in ("middle_block.0", "middle_block.1", "middle_block.2"):
            identity(b)
    j = 0
    for i in range(L):
        lv = L - 1 - i
        for r in range(R + 1):
            resblock("output_blocks.%d.0" % j, "up_blocks.%d.resnets.%d" % (i, r))
            sub = 1
            if plan["attn_up"][lv]:
                attention("output_blocks.%d.1" % j, "up_blocks.%d.attentions.%d" % (i, r))
                sub = 2
            elif plan["attn_down"][lv]:
                identity("output_blocks.%d.1" % j)
                sub = 2
            if lv > 0 and r == R:
                copy("output_blocks.%d.%d.conv" % (j, sub), "up_blocks.%d.upsamplers.0.conv" % i)
            j += 1
    copy("out.0", "conv_norm_out")
    w, b = take("conv_out.weight"), take("conv_out.bias")
    if plan["learned_variance"]:  # [eps, variance]: keep eps
        w, b = w[:w.shape[0] // 2], b[:b.shape[0] // 2]
    put("out.2.weight", w)
    put("out.2.bias", b)

    if src:
        extra = sorted(src)
        raise DiffusersError("weights: %d tensor(s) the config does not have, e.g. %s"
                             % (len(extra), ", ".join(extra[:3])))
    missing = sorted(set(template) - set(dst))
    if missing:
        raise DiffusersError("internal: lgd tensors left unset: %s" % missing[:3])
    module.load_state_dict(dst, strict=True)
    return module.eval()


def _betas_for_alpha_bar(steps, kind, max_beta=0.999):
    """diffusers' betas_for_alpha_bar (float64 Python, then float32)."""
    if kind == "cosine":
        def f(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    else:  # laplace
        def f(t):
            lmb = -0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6)
            snr = math.exp(lmb)
            return math.sqrt(snr / (1 + snr))
    betas = [min(1 - f((i + 1) / steps) / f(i / steps), max_beta) for i in range(steps)]
    return torch.tensor(betas, dtype=torch.float32)


def diffusers_scheduler_adapter(config):
    """The adapter of a diffusers scheduler config (a dict or `scheduler.config`):
    {"prediction": eps / v / x0, "time_input": discrete or log_sigma,
    "alphas_cumprod": float32 tensor, "learned_variance": bool}.

    alphas_cumprod is computed as the scheduler computes it (float32 betas
    from beta_schedule / beta_start / beta_end / trained_betas, float32
    cumprod), so it equals the scheduler's own alphas_cumprod bit for bit.
    Sampling settings (timestep_spacing, steps_offset, clip_sample,
    thresholding, use_karras_sigmas, ...) are not the network's and are not
    used: liblgd's samplers choose their own steps.  Raises DiffusersError
    naming the field it cannot express."""
    _require_torch()
    cfg = dict(config)
    cls = cfg.get("_class_name")
    if cls is not None and cls not in DIFFUSERS_SCHEDULERS:
        raise DiffusersError("_class_name = %r: not a discrete VP scheduler this converter "
                             "knows (%s)" % (cls, ", ".join(sorted(DIFFUSERS_SCHEDULERS))))
    bs, be, sched = DIFFUSERS_SCHEDULERS.get(cls, _DDPM_FAMILY)
    bs = cfg.get("beta_start", bs)
    be = cfg.get("beta_end", be)
    sched = cfg.get("beta_schedule", sched)
    T = cfg.get("num_train_timesteps", 1000)
    if isinstance(T, bool) or not isinstance(T, int) or not 2 <= T <= (1 << 24):
        raise DiffusersError("num_train_timesteps = %r must be an integer in [2, 2^24]" % (T,))
    pt = cfg.get("prediction_type", "epsilon")
    if pt not in DIFFUSERS_PREDICTIONS:
        raise DiffusersError("prediction_type = %r: epsilon, v_prediction or sample" % (pt,))
    if cfg.get("rescale_betas_zero_snr"):
        raise DiffusersError("rescale_betas_zero_snr = True: alphas_cumprod[-1] = 0 (infinite "
                             "sigma) is outside liblgd's discrete schedules")
    tb = cfg.get("trained_betas")
    if tb is not None:
        betas = torch.tensor(tb, dtype=torch.float32).reshape(-1)
        if betas.numel() != T:
            raise DiffusersError("trained_betas has %d values, num_train_timesteps is %d"
                                 % (betas.numel(), T))
    elif sched == "linear":
        betas = torch.linspace(bs, be, T, dtype=torch.float32)
    elif sched == "scaled_linear":
        betas = torch.linspace(bs ** 0.5, be ** 0.5, T, dtype=torch.float32) ** 2
    elif sched == "squaredcos_cap_v2":
        betas = _betas_for_alpha_bar(T, "cosine")
    elif sched in ("laplace", "sigmoid") and cls in (None, "DDPMScheduler",
                                                     "DDPMParallelScheduler"):
        if sched == "laplace":
            betas = _betas_for_alpha_bar(T, "laplace")
        else:
            betas = (torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float32)) * (be - bs)
                     + bs)
    else:
        raise DiffusersError("beta_schedule = %r is not a schedule of %s"
                             % (sched, cls or "DDPMScheduler"))
    alphas = torch.cumprod(1.0 - betas, dim=0)
    try:
        alphas = _check_alphas(alphas)
    except ValueError as e:
        raise DiffusersError("beta_schedule = %r: %s" % (sched, e))
    time_input = "discrete"
    tt = cfg.get("timestep_type", "discrete")
    if tt == "continuous" and pt == "v_prediction" and cls == "EulerDiscreteScheduler":
        time_input = "log_sigma"  # the network's t is 0.25 log(sigma)
    elif tt not in ("discrete", "continuous"):
        raise DiffusersError("timestep_type = %r: discrete or continuous" % (tt,))
    var = cfg.get("variance_type")
    learned = var in ("learned", "learned_range")
    return {"prediction": DIFFUSERS_PREDICTIONS[pt], "time_input": time_input,
            "alphas_cumprod": alphas, "learned_variance": learned}


def _plain_config(c):
    """A JSON-able dict of a config (dict or FrozenDict): tuples as lists."""
    def fix(v):
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {str(k): fix(x) for k, x in v.items()}
        if torch is not None and torch.is_tensor(v):
            return v.tolist()
        if hasattr(v, "tolist"):  # numpy
            return v.tolist()
        return v
    return fix(dict(c))


def convert_diffusers(unet, scheduler, image_size=None, config=None):
    """(LgdUNet, adapter dict, provenance metadata) of an in-memory diffusers
    model: `unet` a UNet2DModel (its .config and .state_dict()), or a
    state_dict with `config` given; `scheduler` a scheduler (its .config) or
    a scheduler config dict.  The adapter is diffusers_scheduler_adapter's."""
    _require_torch()
    if config is None:
        if not hasattr(unet, "config"):
            raise DiffusersError("give a UNet2DModel, or a state_dict and its config")
        config = unet.config
    sd = unet.state_dict() if hasattr(unet, "state_dict") else unet
    sconf = scheduler.config if hasattr(scheduler, "config") else scheduler
    if sconf is None:
        raise DiffusersError("a scheduler config is required (the training schedule's "
                             "alphas_cumprod and prediction_type)")
    adapter = diffusers_scheduler_adapter(sconf)
    module = diffusers_unet_to_lgd(config, sd, image_size, adapter["learned_variance"])
    prov = {"diffusers.unet_config": json.dumps(_plain_config(config), sort_keys=True,
                                                separators=(",", ":")),
            "diffusers.scheduler_config": json.dumps(_plain_config(sconf), sort_keys=True,
                                                     separators=(",", ":"))}
    return module, adapter, prov


def save_diffusers(unet, path, scheduler, image_size=None, config=None, dtype="F32",
                   time_input=None):
    """Convert an in-memory diffusers model (see convert_diffusers) and write
    it as a network file; time_input overrides the scheduler's (e.g.
    discrete_round).  Returns (metadata, LgdUNet)."""
    module, adapter, prov = convert_diffusers(unet, scheduler, image_size, config)
    meta = save_network(module, path, prediction=adapter["prediction"],
                        time_input=time_input or adapter["time_input"],
                        alphas_cumprod=adapter["alphas_cumprod"], dtype=dtype,
                        extra_metadata=prov)
    return meta, module


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def load_diffusers_dir(model_dir, scheduler=None, variant=None):
    """(config, state_dict, scheduler config, paths) of a save_pretrained
    directory: config.json and diffusion_pytorch_model[.VARIANT].safetensors
    or .bin (or their sharded .index.json); a pipeline directory (with
    model_index.json) means its unet/ and scheduler/.  The scheduler config:
    `scheduler` (a scheduler_config.json or its directory), else
    MODEL_DIR/../scheduler/, else MODEL_DIR itself."""
    _require_torch()
    if os.path.isfile(os.path.join(model_dir, "model_index.json")) and \
            os.path.isdir(os.path.join(model_dir, "unet")):
        model_dir = os.path.join(model_dir, "unet")
    cpath = os.path.join(model_dir, "config.json")
    if not os.path.isfile(cpath):
        raise DiffusersError("%s has no config.json" % model_dir)
    config = _read_json(cpath)
    stem = "diffusion_pytorch_model" + ("." + variant if variant else "")
    sd = None
    for ext in ("safetensors", "bin"):
        single = os.path.join(model_dir, "%s.%s" % (stem, ext))
        index = single + ".index.json"
        if os.path.isfile(single):
            files = [single]
        elif os.path.isfile(index):
            files = sorted(set(_read_json(index)["weight_map"].values()))
            files = [os.path.join(model_dir, f) for f in files]
        else:
            continue
        sd = {}
        for f in files:
            if ext == "safetensors":
                _, part = read_safetensors(f)
            else:
                part = torch.load(f, map_location="cpu", weights_only=True)
            sd.update(part)
        break
    if sd is None:
        raise DiffusersError("%s has no %s.safetensors or %s.bin" % (model_dir, stem, stem))
    if scheduler is not None:
        spath = (os.path.join(scheduler, "scheduler_config.json")
                 if os.path.isdir(scheduler) else scheduler)
        candidates = [spath]
    else:
        parent = os.path.dirname(os.path.abspath(model_dir))
        candidates = [os.path.join(parent, "scheduler", "scheduler_config.json"),
                      os.path.join(model_dir, "scheduler_config.json")]
    for spath in candidates:
        if os.path.isfile(spath):
            return config, sd, _read_json(spath), (cpath, spath)
    raise DiffusersError("no scheduler config (looked for %s); give --scheduler"
                         % " and ".join(candidates))


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


def _cmd_diffusers(args):
    try:
        config, sd, sconf, (cpath, spath) = load_diffusers_dir(
            args.model_dir, args.scheduler, args.variant)
        meta, module = save_diffusers(sd, args.out, sconf, image_size=args.image_size,
                                      config=config, dtype=args.dtype,
                                      time_input=args.time_input)
    except DiffusersError as e:
        sys.exit("lgd_convert: cannot convert %s: %s" % (args.model_dir, e))
    n = sum(p.numel() for p in module.parameters())
    print("wrote %s: unet %dx%d, %d parameters, prediction %s, time input %s, %d "
          "timesteps, %s, %d bytes (from %s, %s)" % (
              args.out, module.image_size, module.image_size, n, meta["lgd.prediction"],
              meta["lgd.time_input"], sconf.get("num_train_timesteps", 1000), args.dtype,
              os.path.getsize(args.out), cpath, spath))


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

    d = sub.add_parser("diffusers", help="a diffusers UNet2DModel directory -> network file",
                       description="Convert a Hugging Face diffusers UNet2DModel, as "
                       "save_pretrained writes it (config.json + "
                       "diffusion_pytorch_model.safetensors or .bin), with its scheduler's "
                       "config (alphas_cumprod, prediction_type) into a `unet` network file "
                       "(docs/network-format.md). Configurations liblgd cannot express are "
                       "refused with the field named.")
    d.add_argument("model_dir", help="the UNet2DModel directory (or a pipeline directory "
                   "with unet/ and scheduler/)")
    d.add_argument("out", help="the network file to write (.safetensors)")
    d.add_argument("--scheduler", default=None,
                   help="scheduler_config.json or its directory (default: "
                   "MODEL_DIR/../scheduler, then MODEL_DIR)")
    d.add_argument("--image-size", type=int, default=None,
                   help="square image side (default: the config's sample_size)")
    d.add_argument("--variant", default=None,
                   help="weights variant (diffusion_pytorch_model.VARIANT.safetensors)")
    d.add_argument("--dtype", default="F32", choices=WEIGHT_DTYPES)
    d.add_argument("--time-input", default=None, choices=("discrete", "discrete_round"),
                   help="override the scheduler's time input (default: discrete)")
    d.set_defaults(fn=_cmd_diffusers)

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
