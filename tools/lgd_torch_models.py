"""PyTorch mirrors of the networks liblgd loads (docs/network-format.md).

Every module here takes a flat batch ``x`` of shape [B][dim], a scalar time
``t`` (a float, a 0-d tensor, a [1] tensor or a per-row [B] tensor) and an
optional condition ``cond`` [B][cond_dim], and returns a flat [B][out_dim]
tensor.  Parameter names are those of docs/network-format.md, which are the
names of guided-diffusion's ``UNetModel`` for the U-Nets, so a state_dict of
these modules is exactly the tensor set of a network file.

Each module has ``lgd_metadata()``, the ``lgd.*`` metadata keys that describe
its architecture (``tools/lgd_convert.py`` adds ``lgd.format``,
``lgd.prediction``, ``lgd.time_input`` and ``lgd.sigma_data``), and
``build_from_metadata(meta)`` rebuilds a module from such keys.

Conventions fixed by the spec (and by guided-diffusion):
  * sinusoidal time embedding: half = E/2, f_i = exp(-ln(10000) i / half),
    emb = [cos(t f), sin(t f)] (cos first);
  * GroupNorm and LayerNorm eps 1e-5, GELU in its erf form;
  * attention heads split as guided-diffusion's QKVAttentionLegacy:
    qkv [B][3C][S] -> [B*heads][3*C/heads][S] -> q, k, v;
  * temporal_unet data is time-major [T][C] per row.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "sinusoidal", "make_act", "ResBlock", "AttentionBlock", "Upsample",
    "Downsample", "LgdMLP", "LgdUNet", "LAYER_CLASSES", "build_from_metadata",
    "needs_cond", "cond_dim_of", "randomize_",
]

GN_EPS = 1e-5
LN_EPS = 1e-5


# ---------------------------------------------------------------------------
# helpers

def sinusoidal(t, dim, max_period=10000.0, dtype=torch.float32):
    """ADM sinusoidal embedding of t ([B] tensor) -> [B][dim], cos then sin."""
    if dim % 2 != 0:
        raise ValueError("time embedding width must be even (got %d)" % dim)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period)
                      * torch.arange(half, dtype=dtype) / half)
    args = t.to(dtype).reshape(-1, 1) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def make_act(name):
    if name == "silu":
        return nn.SiLU()
    if name == "gelu":
        return nn.GELU()  # approximate='none': the erf form
    raise ValueError("unknown activation %r (silu, gelu)" % (name,))


def _time_tensor(t, batch, dtype):
    """t as a [1] or [batch] tensor of `dtype`."""
    if not torch.is_tensor(t):
        t = torch.tensor([float(t)], dtype=dtype)
    t = t.to(dtype).reshape(-1)
    if t.numel() not in (1, batch):
        raise ValueError("t must be a scalar or have one value per row")
    return t


def _param_dtype(module):
    for p in module.parameters():
        return p.dtype
    return torch.get_default_dtype()


def _ilist(s):
    s = str(s).strip()
    return [int(v) for v in s.split(",") if v.strip() != ""] if s else []


def _slist(values):
    return ",".join(str(int(v)) for v in values)


def _conv_nd(dims, *args, **kwargs):
    if dims == 1:
        return nn.Conv1d(*args, **kwargs)
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    raise ValueError("dims must be 1 or 2")


# ---------------------------------------------------------------------------
# U-Net building blocks (guided-diffusion names and order of operations)

class ResBlock(nn.Module):
    """guided-diffusion ResBlock (no up/down, no dropout, 1x1 skip)."""

    def __init__(self, channels, emb_channels, out_channels, dims=2,
                 num_groups=32, kernel_size=3, use_scale_shift_norm=False,
                 act="silu"):
        super().__init__()
        k = int(kernel_size)
        if k % 2 != 1:
            raise ValueError("kernel_size must be odd")
        self.channels = channels
        self.out_channels = out_channels
        self.use_scale_shift_norm = bool(use_scale_shift_norm)
        self.in_layers = nn.Sequential(
            nn.GroupNorm(num_groups, channels, eps=GN_EPS),
            make_act(act),
            _conv_nd(dims, channels, out_channels, k, padding=k // 2),
        )
        self.emb_layers = nn.Sequential(
            make_act(act),
            nn.Linear(emb_channels,
                      2 * out_channels if self.use_scale_shift_norm
                      else out_channels),
        )
        self.out_layers = nn.Sequential(
            nn.GroupNorm(num_groups, out_channels, eps=GN_EPS),
            make_act(act),
            nn.Identity(),  # guided-diffusion's Dropout slot (keeps index 3)
            _conv_nd(dims, out_channels, out_channels, k, padding=k // 2),
        )
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = _conv_nd(dims, channels, out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)
        while emb_out.dim() < h.dim():
            emb_out = emb_out[..., None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
            h = out_rest(h)
        else:
            h = h + emb_out
            h = self.out_layers(h)
        return self.skip_connection(x) + h


def qkv_attention_legacy(qkv, n_heads):
    """guided-diffusion QKVAttentionLegacy: [B][heads*3*ch][S] -> [B][heads*ch][S]."""
    bs, width, length = qkv.shape
    if width % (3 * n_heads) != 0:
        raise ValueError("qkv width not divisible by 3 * heads")
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight, dim=-1)
    a = torch.einsum("bts,bcs->bct", weight, v)
    return a.reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    """guided-diffusion AttentionBlock with legacy head order; num_groups=0:
    no GroupNorm (and no `norm` parameters), qkv of x itself."""

    def __init__(self, channels, num_heads=1, num_groups=32):
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError("channels %d not divisible by num_heads %d"
                             % (channels, num_heads))
        self.channels = channels
        self.num_heads = num_heads
        self.norm = (nn.GroupNorm(num_groups, channels, eps=GN_EPS) if num_groups
                     else nn.Identity())
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c = x.shape[0], x.shape[1]
        spatial = x.shape[2:]
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        h = qkv_attention_legacy(qkv, self.num_heads)
        h = self.proj_out(h)
        return (x + h).reshape(b, c, *spatial)


class Upsample(nn.Module):
    """Nearest 2x, then (conv_resample) a conv of kernel_size, padding k/2."""

    def __init__(self, channels, use_conv, dims=2, kernel_size=3):
        super().__init__()
        self.channels = channels
        self.use_conv = bool(use_conv)
        k = int(kernel_size)
        if self.use_conv:
            self.conv = _conv_nd(dims, channels, channels, k, padding=k // 2)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.use_conv:
            x = self.conv(x)
        return x


class Downsample(nn.Module):
    """(conv_resample) conv k=3 stride 2 padding 1, else 2x average pooling."""

    def __init__(self, channels, use_conv, dims=2):
        super().__init__()
        self.channels = channels
        self.use_conv = bool(use_conv)
        if self.use_conv:
            self.op = _conv_nd(dims, channels, channels, 3, stride=2, padding=1)
        elif dims == 1:
            self.op = nn.AvgPool1d(kernel_size=2, stride=2)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.op(x)


class TimestepEmbedSequential(nn.Sequential):
    """Passes the embedding to the ResBlocks among its children."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


# ---------------------------------------------------------------------------
# architectures

class _LgdNet(nn.Module):
    """Common interface: in_dim, out_dim, cond_dim, lgd_metadata()."""

    in_dim = 0
    out_dim = 0
    cond_dim = 0

    def lgd_metadata(self):  # pragma: no cover - overridden
        raise NotImplementedError


class LgdMLP(_LgdNet):
    """`mlp`: a time-conditioned residual MLP on vectors; out_dim (default dim,
    lgd.out_dim since liblgd 0.5.0) e.g. a classifier's number of classes."""

    def __init__(self, dim, hidden, depth, time_embed_dim, cond_dim=0,
                 act="silu", out_dim=None):
        super().__init__()
        if time_embed_dim % 2 != 0:
            raise ValueError("time_embed_dim must be even")
        self.dim, self.hidden, self.depth = int(dim), int(hidden), int(depth)
        self.time_embed_dim = int(time_embed_dim)
        self.cond_dim = int(cond_dim)
        self.act_name = act
        self.in_dim = self.dim
        self.out_dim = self.dim if out_dim is None else int(out_dim)
        H = self.hidden
        self.time_embed = nn.Sequential(nn.Linear(self.time_embed_dim, H),
                                        make_act(act), nn.Linear(H, H))
        self.input = nn.Linear(self.dim, H)
        if self.cond_dim > 0:
            self.cond_proj = nn.Linear(self.cond_dim, H, bias=False)
        self.blocks = nn.ModuleList(_MLPBlock(H, act) for _ in range(self.depth))
        self.out_norm = nn.LayerNorm(H, eps=LN_EPS)
        self.output = nn.Linear(H, self.out_dim)
        self.act = make_act(act)

    def lgd_metadata(self):
        meta = {
            "lgd.architecture": "mlp",
            "lgd.dim": str(self.dim),
            "lgd.hidden": str(self.hidden),
            "lgd.depth": str(self.depth),
            "lgd.time_embed_dim": str(self.time_embed_dim),
            "lgd.cond_dim": str(self.cond_dim),
            "lgd.act": self.act_name,
        }
        if self.out_dim != self.dim:  # older files (and liblgd < 0.5.0) have none
            meta["lgd.out_dim"] = str(self.out_dim)
        return meta

    def forward(self, x, t, cond=None):
        x = x.reshape(x.shape[0], self.dim)
        dtype = _param_dtype(self)
        tt = _time_tensor(t, x.shape[0], dtype)
        temb = self.time_embed(sinusoidal(tt, self.time_embed_dim, dtype=dtype))
        h = self.input(x) + temb
        if self.cond_dim > 0:
            if cond is None:
                raise ValueError("this network needs cond [B][%d]" % self.cond_dim)
            h = h + self.cond_proj(cond.reshape(x.shape[0], self.cond_dim).to(dtype))
        for block in self.blocks:
            h = block(h)
        return self.output(self.act(self.out_norm(h)))


class _MLPBlock(nn.Module):
    def __init__(self, hidden, act):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = make_act(act)

    def forward(self, h):
        return h + self.fc2(self.act(self.fc1(self.act(self.norm(h)))))


class LgdUNet(_LgdNet):
    """`unet` (dims=2) and `temporal_unet` (dims=1): guided-diffusion UNetModel.

    dims=2: x row = [C][H][W] (H = W = image_size).
    dims=1: x row = [T][C] time-major (T = horizon); transposed to [C][T].
    cond (num_classes > 0): float [B][num_classes] (one-hot);
    emb += cond @ label_emb.weight.
    num_head_channels > 0 (lgd.num_head_channels, liblgd >= 0.5.0): every
    attention block has C / num_head_channels heads (num_heads unused);
    middle_attention_groups (lgd.middle_attention_groups, liblgd >= 0.5.0):
    the GroupNorm groups of the middle attention, 0 = no GroupNorm there
    (default num_groups).
    """

    def __init__(self, in_channels, out_channels, model_channels, channel_mult,
                 num_res_blocks, attention_levels=(), num_heads=1,
                 num_groups=32, num_classes=0, conv_resample=1,
                 use_scale_shift_norm=0, kernel_size=3, time_embed_dim=None,
                 dims=2, image_size=None, horizon=None, act="silu",
                 num_head_channels=0, middle_attention_groups=None):
        super().__init__()
        self.dims = int(dims)
        if self.dims not in (1, 2):
            raise ValueError("dims must be 1 (temporal_unet) or 2 (unet)")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.model_channels = int(model_channels)
        self.channel_mult = [int(m) for m in channel_mult]
        self.num_res_blocks = int(num_res_blocks)
        self.attention_levels = sorted(int(v) for v in attention_levels)
        self.num_heads = int(num_heads)
        self.num_groups = int(num_groups)
        self.num_head_channels = int(num_head_channels or 0)
        self.middle_attention_groups = (self.num_groups if middle_attention_groups is None
                                        else int(middle_attention_groups))
        if self.num_head_channels < 0 or self.middle_attention_groups < 0:
            raise ValueError("num_head_channels and middle_attention_groups must be >= 0")
        self.num_classes = int(num_classes or 0)
        self.conv_resample = int(bool(conv_resample))
        self.use_scale_shift_norm = int(bool(use_scale_shift_norm))
        self.kernel_size = int(kernel_size)
        self.time_embed_dim = int(time_embed_dim or 4 * self.model_channels)
        self.act_name = act
        if not self.channel_mult:
            raise ValueError("channel_mult must not be empty")
        if self.model_channels % 2 != 0:
            raise ValueError("model_channels must be even (time embedding)")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        levels = len(self.channel_mult)
        for lv in self.attention_levels:
            if not 0 <= lv < levels:
                raise ValueError("attention level %d out of range" % lv)
        if self.dims == 2:
            if image_size is None:
                raise ValueError("unet needs image_size")
            self.image_size = int(image_size)
            size = self.image_size
            self.in_dim = self.in_channels * size * size
            self.out_dim = self.out_channels * size * size
        else:
            if horizon is None:
                raise ValueError("temporal_unet needs horizon")
            self.horizon = int(horizon)
            size = self.horizon
            self.in_dim = self.in_channels * size
            self.out_dim = self.out_channels * size
        if size % (2 ** (levels - 1)) != 0:
            raise ValueError("spatial size %d not divisible by 2^(levels-1)" % size)
        self.cond_dim = self.num_classes

        C0, E, k, G = self.model_channels, self.time_embed_dim, self.kernel_size, self.num_groups
        ss = self.use_scale_shift_norm

        def resblock(cin, cout):
            return ResBlock(cin, E, cout, dims=self.dims, num_groups=G,
                            kernel_size=k, use_scale_shift_norm=ss, act=act)

        def attn(c, groups=G):
            if self.num_head_channels:
                if c % self.num_head_channels:
                    raise ValueError("%d channels do not split into heads of %d channels"
                                     % (c, self.num_head_channels))
                heads = c // self.num_head_channels
            else:
                heads = self.num_heads
            return AttentionBlock(c, num_heads=heads, num_groups=groups)

        self.time_embed = nn.Sequential(nn.Linear(C0, E), make_act(act),
                                        nn.Linear(E, E))
        if self.num_classes > 0:
            self.label_emb = nn.Embedding(self.num_classes, E)

        ch = input_ch = self.channel_mult[0] * C0
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(
            _conv_nd(self.dims, self.in_channels, ch, k, padding=k // 2))])
        chans = [ch]
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                layers = [resblock(ch, mult * C0)]
                ch = mult * C0
                if level in self.attention_levels:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != levels - 1:
                self.input_blocks.append(TimestepEmbedSequential(
                    Downsample(ch, self.conv_resample, dims=self.dims)))
                chans.append(ch)
        self.middle_block = TimestepEmbedSequential(
            resblock(ch, ch), attn(ch, self.middle_attention_groups), resblock(ch, ch))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(self.channel_mult))[::-1]:
            for i in range(self.num_res_blocks + 1):
                ich = chans.pop()
                layers = [resblock(ch + ich, mult * C0)]
                ch = mult * C0
                if level in self.attention_levels:
                    layers.append(attn(ch))
                if level and i == self.num_res_blocks:
                    layers.append(Upsample(ch, self.conv_resample, dims=self.dims,
                                           kernel_size=k))
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            nn.GroupNorm(G, ch, eps=GN_EPS), make_act(act),
            _conv_nd(self.dims, input_ch, self.out_channels, k, padding=k // 2))

    def lgd_metadata(self):
        m = {
            "lgd.architecture": "unet" if self.dims == 2 else "temporal_unet",
            "lgd.in_channels": str(self.in_channels),
            "lgd.out_channels": str(self.out_channels),
            "lgd.model_channels": str(self.model_channels),
            "lgd.channel_mult": _slist(self.channel_mult),
            "lgd.num_res_blocks": str(self.num_res_blocks),
            "lgd.attention_levels": _slist(self.attention_levels),
            "lgd.num_groups": str(self.num_groups),
            "lgd.num_classes": str(self.num_classes),
            "lgd.conv_resample": str(self.conv_resample),
            "lgd.use_scale_shift_norm": str(self.use_scale_shift_norm),
            "lgd.kernel_size": str(self.kernel_size),
            "lgd.time_embed_dim": str(self.time_embed_dim),
            "lgd.act": self.act_name,
        }
        # lgd.num_head_channels and lgd.middle_attention_groups only where needed
        # (liblgd < 0.5.0 does not read them)
        if self.num_head_channels:
            m["lgd.num_head_channels"] = str(self.num_head_channels)
        else:
            m["lgd.num_heads"] = str(self.num_heads)
        if self.middle_attention_groups != self.num_groups:
            m["lgd.middle_attention_groups"] = str(self.middle_attention_groups)
        if self.dims == 2:
            m["lgd.image_size"] = str(self.image_size)
        else:
            m["lgd.horizon"] = str(self.horizon)
        return m

    def forward(self, x, t, cond=None):
        B = x.shape[0]
        dtype = _param_dtype(self)
        if self.dims == 2:
            S = self.image_size
            h = x.reshape(B, self.in_channels, S, S)
        else:
            h = x.reshape(B, self.horizon, self.in_channels).transpose(1, 2)
        tt = _time_tensor(t, B, dtype)
        emb = self.time_embed(sinusoidal(tt, self.model_channels, dtype=dtype))
        if self.num_classes > 0:
            if cond is None:
                raise ValueError("this network needs cond [B][%d]" % self.num_classes)
            emb = emb + cond.reshape(B, self.num_classes).to(dtype) @ self.label_emb.weight
        hs = []
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = torch.cat([h, hs.pop()], dim=1)
            h = module(h, emb)
        h = self.out(h)
        if self.dims == 2:
            return h.reshape(B, -1)
        return h.transpose(1, 2).reshape(B, -1)


# ---------------------------------------------------------------------------
# `layer` networks: one layer alone, parameters named as the torch module

def _shape_str(shape):
    return ",".join(str(int(s)) for s in shape)


class _LayerMixin:
    """input_shape (per row), flat in / flat out, metadata."""

    layer_name = None

    def _init_layer(self, input_shape, act=None):
        self.input_shape = tuple(int(s) for s in input_shape)
        self.in_dim = int(math.prod(self.input_shape))
        self.cond_dim = 0
        self.act_name = act
        with torch.no_grad():
            y = self._layer_fn(torch.zeros((1,) + self.input_shape,
                                        dtype=_param_dtype(self)),
                            torch.zeros(1, dtype=_param_dtype(self)))
        self.output_shape = tuple(y.shape[1:])
        self.out_dim = int(math.prod(self.output_shape))

    def _base_meta(self):
        m = {"lgd.architecture": "layer", "lgd.layer": self.layer_name,
             "lgd.input_shape": _shape_str(self.input_shape)}
        if self.act_name is not None:  # only layers that use lgd.act
            m["lgd.act"] = self.act_name
        return m

    def forward(self, x, t=0.0, cond=None):
        B = x.shape[0]
        dtype = _param_dtype(self)
        tt = _time_tensor(t, B, dtype)
        return self._layer_fn(x.reshape((B,) + self.input_shape), tt).reshape(B, -1)


class LinearLayer(_LayerMixin, nn.Linear):
    layer_name = "linear"

    def __init__(self, in_features, out_features, bias=True):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_layer((in_features,))

    def _layer_fn(self, x, t):
        return nn.Linear.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.out_features": str(self.out_features),
                  "lgd.bias": "1" if self.bias is not None else "0"})
        return m


class _ConvLayer(_LayerMixin):
    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.out_channels": str(self.out_channels),
                  "lgd.kernel_size": str(self.kernel_size[0]),
                  "lgd.stride": str(self.stride[0]),
                  "lgd.padding": str(self.padding[0]),
                  "lgd.bias": "1" if self.bias is not None else "0"})
        return m


class Conv1dLayer(_ConvLayer, nn.Conv1d):
    layer_name = "conv1d"

    def __init__(self, input_shape, out_channels, kernel_size, stride=1,
                 padding=0, bias=True):
        nn.Conv1d.__init__(self, input_shape[0], out_channels, kernel_size,
                           stride=stride, padding=padding, bias=bias)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return nn.Conv1d.forward(self, x)


class Conv2dLayer(_ConvLayer, nn.Conv2d):
    layer_name = "conv2d"

    def __init__(self, input_shape, out_channels, kernel_size, stride=1,
                 padding=0, bias=True):
        nn.Conv2d.__init__(self, input_shape[0], out_channels, kernel_size,
                           stride=stride, padding=padding, bias=bias)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return nn.Conv2d.forward(self, x)


class GroupNormLayer(_LayerMixin, nn.GroupNorm):
    layer_name = "group_norm"

    def __init__(self, input_shape, num_groups, eps=GN_EPS):
        nn.GroupNorm.__init__(self, num_groups, input_shape[0], eps=eps)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return nn.GroupNorm.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.num_groups": str(self.num_groups),
                  "lgd.eps": repr(float(self.eps))})
        return m


class LayerNormLayer(_LayerMixin, nn.LayerNorm):
    layer_name = "layer_norm"

    def __init__(self, features, eps=LN_EPS):
        nn.LayerNorm.__init__(self, features, eps=eps)
        self._init_layer((features,))

    def _layer_fn(self, x, t):
        return nn.LayerNorm.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m["lgd.eps"] = repr(float(self.eps))
        return m


class _ActLayer(_LayerMixin, nn.Module):
    def __init__(self, input_shape):
        nn.Module.__init__(self)
        self.fn = make_act(self.layer_name)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return self.fn(x)

    def lgd_metadata(self):
        return self._base_meta()


class SiLULayer(_ActLayer):
    layer_name = "silu"


class GELULayer(_ActLayer):
    layer_name = "gelu"


class AttentionLayer(_LayerMixin, AttentionBlock):
    layer_name = "attention"

    def __init__(self, input_shape, num_heads, num_groups):
        AttentionBlock.__init__(self, input_shape[0], num_heads=num_heads,
                                num_groups=num_groups)
        self.num_groups = num_groups
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return AttentionBlock.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.num_heads": str(self.num_heads),
                  "lgd.num_groups": str(self.num_groups)})
        return m


class ResBlockLayer(_LayerMixin, ResBlock):
    """ResBlock alone; emb = sinusoidal(t, E) (no time MLP)."""

    layer_name = "resblock"

    def __init__(self, input_shape, out_channels, time_embed_dim, num_groups,
                 kernel_size=3, use_scale_shift_norm=0, act="silu"):
        ResBlock.__init__(self, input_shape[0], time_embed_dim, out_channels,
                          dims=len(input_shape) - 1, num_groups=num_groups,
                          kernel_size=kernel_size,
                          use_scale_shift_norm=use_scale_shift_norm, act=act)
        self.time_embed_dim = int(time_embed_dim)
        self.num_groups = int(num_groups)
        self.kernel_size = int(kernel_size)
        self._init_layer(input_shape, act)

    def _layer_fn(self, x, t):
        emb = sinusoidal(t, self.time_embed_dim, dtype=x.dtype)
        return ResBlock.forward(self, x, emb)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.out_channels": str(self.out_channels),
                  "lgd.time_embed_dim": str(self.time_embed_dim),
                  "lgd.num_groups": str(self.num_groups),
                  "lgd.kernel_size": str(self.kernel_size),
                  "lgd.use_scale_shift_norm": str(int(self.use_scale_shift_norm))})
        return m


class UpsampleLayer(_LayerMixin, Upsample):
    layer_name = "upsample"

    def __init__(self, input_shape, conv_resample=1, kernel_size=3):
        Upsample.__init__(self, input_shape[0], conv_resample,
                          dims=len(input_shape) - 1, kernel_size=kernel_size)
        self.kernel_size = int(kernel_size)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return Upsample.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.conv_resample": str(int(self.use_conv)),
                  "lgd.kernel_size": str(self.kernel_size)})
        return m


class DownsampleLayer(_LayerMixin, Downsample):
    """Downsample alone.  Its conv is always k=3 stride 2 padding 1 (as in
    the U-Nets); lgd.kernel_size is written (as the U-Net's kernel) but does
    not change the op, so files should carry 3."""

    layer_name = "downsample"

    def __init__(self, input_shape, conv_resample=1, kernel_size=3):
        Downsample.__init__(self, input_shape[0], conv_resample,
                            dims=len(input_shape) - 1)
        self.kernel_size = int(kernel_size)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return Downsample.forward(self, x)

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.conv_resample": str(int(self.use_conv)),
                  "lgd.kernel_size": str(self.kernel_size)})
        return m


class ConcatLayer(_LayerMixin, nn.Module):
    """y = cat([x, silu(x)], channels) (channels = first per-row axis)."""

    layer_name = "concat"

    def __init__(self, input_shape):
        nn.Module.__init__(self)
        self._init_layer(input_shape)

    def _layer_fn(self, x, t):
        return torch.cat([x, F.silu(x)], dim=1)

    def lgd_metadata(self):
        return self._base_meta()


class TimeEmbeddingLayer(_LayerMixin, nn.Module):
    """y = x + time_embed.2(act(time_embed.0(sinusoidal(t, E)))).

    The [hidden] vector is added to each row: input shape `F` needs
    F = hidden; an input `C,H,W` / `C,T` needs C = hidden and the vector is
    broadcast over the spatial positions (as a ResBlock's emb_out)."""

    layer_name = "time_embedding"

    def __init__(self, input_shape, time_embed_dim, hidden, act="silu"):
        nn.Module.__init__(self)
        if input_shape[0] != hidden:
            raise ValueError("time_embedding: first input axis must equal hidden")
        self.time_embed_dim = int(time_embed_dim)
        self.hidden = int(hidden)
        self.time_embed = nn.Sequential(nn.Linear(time_embed_dim, hidden),
                                        make_act(act), nn.Linear(hidden, hidden))
        self._init_layer(input_shape, act)

    def _layer_fn(self, x, t):
        e = self.time_embed(sinusoidal(t, self.time_embed_dim, dtype=x.dtype))
        while e.dim() < x.dim():
            e = e[..., None]
        return x + e

    def lgd_metadata(self):
        m = self._base_meta()
        m.update({"lgd.time_embed_dim": str(self.time_embed_dim),
                  "lgd.hidden": str(self.hidden)})
        return m


LAYER_CLASSES = {
    "linear": LinearLayer, "conv1d": Conv1dLayer, "conv2d": Conv2dLayer,
    "group_norm": GroupNormLayer, "layer_norm": LayerNormLayer,
    "silu": SiLULayer, "gelu": GELULayer, "attention": AttentionLayer,
    "resblock": ResBlockLayer, "upsample": UpsampleLayer,
    "downsample": DownsampleLayer, "concat": ConcatLayer,
    "time_embedding": TimeEmbeddingLayer,
}


# ---------------------------------------------------------------------------
# metadata -> module

def needs_cond(module):
    return getattr(module, "cond_dim", 0) > 0


def cond_dim_of(module):
    return int(getattr(module, "cond_dim", 0))


def build_from_metadata(meta):
    """A freshly initialised module for the `lgd.*` keys of a network file."""
    def get(key, default=None):
        if key in meta:
            return meta[key]
        if default is None:
            raise ValueError("missing metadata key %s" % key)
        return default

    if str(get("lgd.format", "1")) != "1":
        raise ValueError("unsupported lgd.format %r" % meta.get("lgd.format"))
    arch = get("lgd.architecture")
    act = get("lgd.act", "silu")
    if arch == "mlp":
        return LgdMLP(int(get("lgd.dim")), int(get("lgd.hidden")),
                      int(get("lgd.depth")), int(get("lgd.time_embed_dim")),
                      cond_dim=int(get("lgd.cond_dim", "0")), act=act,
                      out_dim=int(get("lgd.out_dim", get("lgd.dim"))))
    if arch in ("unet", "temporal_unet"):
        if "lgd.num_head_channels" in meta and "lgd.num_heads" in meta:
            raise ValueError("give lgd.num_heads or lgd.num_head_channels, not both")
        common = dict(
            in_channels=int(get("lgd.in_channels")),
            out_channels=int(get("lgd.out_channels")),
            model_channels=int(get("lgd.model_channels")),
            channel_mult=_ilist(get("lgd.channel_mult")),
            num_res_blocks=int(get("lgd.num_res_blocks")),
            attention_levels=_ilist(get("lgd.attention_levels", "")),
            num_heads=int(get("lgd.num_heads", "1")),
            num_groups=int(get("lgd.num_groups", "32")),
            num_classes=int(get("lgd.num_classes", "0")),
            conv_resample=int(get("lgd.conv_resample", "1")),
            use_scale_shift_norm=int(get("lgd.use_scale_shift_norm", "0")),
            kernel_size=int(get("lgd.kernel_size", "3")),
            time_embed_dim=int(meta["lgd.time_embed_dim"])
            if "lgd.time_embed_dim" in meta else None,
            act=act,
            num_head_channels=int(get("lgd.num_head_channels", "0")),
            middle_attention_groups=int(meta["lgd.middle_attention_groups"])
            if "lgd.middle_attention_groups" in meta else None)
        if arch == "unet":
            return LgdUNet(dims=2, image_size=int(get("lgd.image_size")), **common)
        return LgdUNet(dims=1, horizon=int(get("lgd.horizon")), **common)
    if arch == "layer":
        name = get("lgd.layer")
        shape = tuple(_ilist(get("lgd.input_shape")))
        if name == "linear":
            return LinearLayer(shape[0], int(get("lgd.out_features")),
                               bias=get("lgd.bias", "1") == "1")
        if name in ("conv1d", "conv2d"):
            cls = Conv1dLayer if name == "conv1d" else Conv2dLayer
            return cls(shape, int(get("lgd.out_channels")),
                       int(get("lgd.kernel_size")),
                       stride=int(get("lgd.stride", "1")),
                       padding=int(get("lgd.padding", "0")),
                       bias=get("lgd.bias", "1") == "1")
        if name == "group_norm":
            return GroupNormLayer(shape, int(get("lgd.num_groups")),
                                  eps=float(get("lgd.eps", str(GN_EPS))))
        if name == "layer_norm":
            return LayerNormLayer(shape[0], eps=float(get("lgd.eps", str(LN_EPS))))
        if name == "silu":
            return SiLULayer(shape)
        if name == "gelu":
            return GELULayer(shape)
        if name == "attention":
            return AttentionLayer(shape, int(get("lgd.num_heads")),
                                  int(get("lgd.num_groups")))
        if name == "resblock":
            return ResBlockLayer(shape, int(get("lgd.out_channels")),
                                 int(get("lgd.time_embed_dim")),
                                 int(get("lgd.num_groups")),
                                 kernel_size=int(get("lgd.kernel_size", "3")),
                                 use_scale_shift_norm=int(get("lgd.use_scale_shift_norm", "0")),
                                 act=act)
        if name == "upsample":
            return UpsampleLayer(shape, int(get("lgd.conv_resample", "1")),
                                 int(get("lgd.kernel_size", "3")))
        if name == "downsample":
            return DownsampleLayer(shape, int(get("lgd.conv_resample", "1")),
                                   int(get("lgd.kernel_size", "3")))
        if name == "concat":
            return ConcatLayer(shape)
        if name == "time_embedding":
            return TimeEmbeddingLayer(shape, int(get("lgd.time_embed_dim")),
                                      int(get("lgd.hidden")), act=act)
        raise ValueError("unknown lgd.layer %r" % name)
    raise ValueError("unknown lgd.architecture %r" % arch)


# ---------------------------------------------------------------------------
# deterministic non-trivial initialisation (fixtures, demo files)

def randomize_(module, seed, gain=1.0, norm_spread=0.25, bias_scale=0.2):
    """Fill every parameter with seeded random values, in registration order.

    Linear/conv weights: N(0, 1) * gain / sqrt(fan_in); biases:
    N(0, 1) * bias_scale; GroupNorm/LayerNorm weights 1 + norm_spread N(0, 1)
    and biases bias_scale N(0, 1) (not 1/0); embedding tables N(0, 1) * 0.5.
    Nothing is left at zero (guided-diffusion's zero-initialised output convs
    included), so every tensor influences the output of a parity test.
    """
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, mod in module.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                r = torch.randn(p.shape, generator=g, dtype=torch.float64)
                if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)):
                    v = 1.0 + norm_spread * r if pname == "weight" else bias_scale * r
                elif isinstance(mod, nn.Embedding):
                    v = 0.5 * r
                elif pname == "weight":
                    fan_in = max(1, p[0].numel())
                    v = r * (gain / math.sqrt(fan_in))
                else:
                    v = bias_scale * r
                p.copy_(v.to(p.dtype))
    return module
