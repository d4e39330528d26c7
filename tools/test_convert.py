#!/usr/bin/env python3
"""Tests of tools/lgd_convert.py, tools/lgd_torch_models.py, tools/make_fixtures.py.

    python3 tools/test_convert.py [-v]

Skips (exit 0) with a message when PyTorch is not installed.  Uses the
`safetensors` and `numpy` packages to cross-check when they are installed.
"""

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

try:
    import torch
except ImportError:
    torch = None

try:
    import numpy as np
except ImportError:
    np = None

try:
    import safetensors.torch as st_torch
    from safetensors import safe_open
except ImportError:
    st_torch = None

NO_TORCH = "PyTorch is not installed (pip install torch): skipping the converter tests"

if torch is not None:
    import lgd_convert as C
    import lgd_torch_models as M
    import make_fixtures as MF

FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "nn")
SIZE_CAP = 2 * 1024 * 1024  # all fixtures together (see make_fixtures.py)


def _bf16_rne_bits(x32):
    """Hand-written float32 -> bfloat16 round-to-nearest-even, as uint16 bits."""
    out = []
    for v in x32:
        (bits,) = struct.unpack("<I", struct.pack("<f", v))
        rounding = 0x7FFF + ((bits >> 16) & 1)
        out.append(((bits + rounding) >> 16) & 0xFFFF)
    return out


def _fixture_module(name):
    for n, _, build, save_opts, ref_opts in MF.FIXTURES:
        if n == name:
            wseed, rseed = MF.fixture_seeds(name)
            m = build()
            M.randomize_(m, seed=wseed)
            return m.eval(), save_opts, ref_opts, rseed
    raise KeyError(name)


@unittest.skipIf(torch is None, NO_TORCH)
class TestSafetensorsIO(unittest.TestCase):
    def _tensors(self):
        g = torch.Generator().manual_seed(3)
        return {
            "b.weight": torch.randn(3, 5, generator=g),
            "a": torch.randn(7, generator=g).to(torch.float16),
            "c": torch.randn(2, 3, generator=g).to(torch.bfloat16),
            "z.scalar": torch.randn(1, generator=g).double(),
            "a.bias": torch.randn(4, generator=g),
        }

    def test_layout_and_roundtrip(self):
        tensors = self._tensors()
        meta = {"lgd.format": "1", "lgd.architecture": "layer", "x": "y"}
        data = C.serialize_safetensors(tensors, meta)
        (n,) = struct.unpack("<Q", data[:8])
        self.assertEqual(n % 8, 0, "header padded to 8 bytes")
        header_text = data[8:8 + n].decode("ascii")
        self.assertLess(len(header_text) - len(header_text.rstrip(" ")), 8, "space padding")
        header = json.loads(header_text)
        self.assertEqual(list(header)[0], "__metadata__")
        self.assertEqual(header["__metadata__"], meta)
        order = [k for k in header if k != "__metadata__"]
        # wider dtypes first, then by name (the reference implementation's order)
        self.assertEqual(order, ["z.scalar", "a.bias", "b.weight", "c", "a"])
        pos = 0
        for k in order:
            a, b = header[k]["data_offsets"]
            self.assertEqual(a, pos)
            elem = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}[header[k]["dtype"]]
            self.assertEqual(a % elem, 0, "aligned to its element size")
            pos = b
        self.assertEqual(8 + n + pos, len(data))
        meta2, back, _ = C.parse_safetensors(data)
        self.assertEqual(meta2, meta)
        for k, t in tensors.items():
            self.assertEqual(back[k].dtype, t.dtype)
            self.assertTrue(torch.equal(back[k], t), k)

    @unittest.skipIf(st_torch is None, "safetensors package not installed")
    def test_bytes_equal_safetensors_package(self):
        tensors = self._tensors()
        self.assertEqual(C.serialize_safetensors(tensors, None), st_torch.save(tensors))
        one = {"lgd.format": "1"}
        self.assertEqual(C.serialize_safetensors(tensors, one),
                         st_torch.save(tensors, metadata=one))

    def test_network_file_parses(self):
        m, _, _, _ = _fixture_module("unet_cond_ss")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "u.safetensors")
            meta = C.save_network(m, path)
            sd = m.state_dict()
            if st_torch is not None:
                with safe_open(path, framework="pt") as f:
                    self.assertEqual(f.metadata(), meta)
                    keys = set(f.keys())
                    self.assertEqual(keys, set(sd) | {"lgd.alphas_cumprod"})
                    for k in sd:
                        self.assertTrue(torch.equal(f.get_tensor(k), sd[k]), k)
                    a = f.get_tensor("lgd.alphas_cumprod")
            else:
                meta2, tensors = C.read_safetensors(path)
                self.assertEqual(meta2, meta)
                a = tensors["lgd.alphas_cumprod"]
            self.assertEqual(a.dtype, torch.float32)
            self.assertEqual(a.shape, (1000,))
            self.assertTrue(bool((a[1:] < a[:-1]).all()))
            self.assertEqual(meta["lgd.format"], "1")
            self.assertEqual(meta["lgd.architecture"], "unet")
            self.assertEqual(meta["lgd.channel_mult"], "1,2")
            self.assertEqual(meta["lgd.attention_levels"], "1")
            self.assertEqual(meta["lgd.time_embed_dim"], "40")

    def test_f16_bf16_rounding(self):
        # ties and near-ties for both formats, plus ordinary values
        vals = [1.0, -2.5, 0.1, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 1.0 + 2 ** -8,
                1.0 + 3 * 2 ** -8, 1.0 + 2 ** -8 + 2 ** -20, 65504.0, 6.0e-5, -3.3e-3,
                1.00390625, 1.01171875, 123.456, -7.77e-2]
        x32 = torch.tensor(vals, dtype=torch.float32)
        m = M.LinearLayer(len(vals), 1)
        with torch.no_grad():
            m.weight.copy_(x32[None])
            m.bias.fill_(0.3)
        with tempfile.TemporaryDirectory() as d:
            for dt in ("F16", "BF16"):
                path = os.path.join(d, dt + ".safetensors")
                C.save_network(m, path, dtype=dt)
                _, tensors = C.read_safetensors(path)
                w = tensors["weight"].reshape(-1)
                self.assertEqual(C._dtype_name(w.dtype), dt)
                bits = w.view(torch.int16).to(torch.int64).tolist()
                bits = [b & 0xFFFF for b in bits]
                if dt == "F16":
                    if np is not None:
                        want = np.array(vals, dtype=np.float32).astype(np.float16).view(np.uint16).tolist()
                    else:
                        want = [struct.unpack("<H", struct.pack("<e", v))[0] for v in x32.tolist()]
                else:
                    want = _bf16_rne_bits(x32.tolist())
                self.assertEqual(bits, want, dt)
                self.assertEqual(tensors["lgd.alphas_cumprod"].dtype, torch.float32)
                # the module a file of that dtype loads as holds the rounded weights
                loaded, _, _ = C.load_network(path)
                self.assertTrue(torch.equal(loaded.weight.reshape(-1), w.float()))
                self.assertTrue(torch.equal(C.round_weights(m, dt).weight.reshape(-1), w.float()))

    def test_rejects_bad_files(self):
        m = M.LinearLayer(3, 2)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "l.safetensors")
            C.save_network(m, path)
            meta, tensors = C.read_safetensors(path)
            tensors["extra"] = torch.zeros(2)
            C.write_safetensors(path, tensors, meta)
            with self.assertRaises(ValueError):
                C.load_network(path)
            tensors.pop("extra")
            tensors["weight"] = torch.zeros(3, 2)
            C.write_safetensors(path, tensors, meta)
            with self.assertRaises(ValueError):
                C.load_network(path)
        with self.assertRaises(ValueError):
            C.parse_safetensors(struct.pack("<Q", 100) + b"{}")
        with self.assertRaises(ValueError):
            C.save_network(m, "/nonexistent/x.safetensors",
                           alphas_cumprod=torch.tensor([0.5, 0.6]))


@unittest.skipIf(torch is None, NO_TORCH)
class TestModules(unittest.TestCase):
    def test_time_embedding_values(self):
        E = 10
        for t in (0.0, 0.7, 37.5, 999.0):
            emb = M.sinusoidal(torch.tensor([t], dtype=torch.float64), E, dtype=torch.float64)[0]
            half = E // 2
            for i in range(half):
                f = math.exp(-math.log(10000.0) * i / half)
                self.assertAlmostEqual(emb[i].item(), math.cos(t * f), places=12)
                self.assertAlmostEqual(emb[half + i].item(), math.sin(t * f), places=12)

    def test_attention_vs_explicit(self):
        torch.manual_seed(0)
        Cc, H, W, heads = 8, 4, 4, 2
        blk = M.randomize_(M.AttentionBlock(Cc, num_heads=heads, num_groups=4), 11).double()
        x = torch.randn(2, Cc, H, W, dtype=torch.float64)
        got = blk(x)
        S = H * W
        xs = x.reshape(2, Cc, S)
        n = torch.nn.functional.group_norm(xs, 4, blk.norm.weight, blk.norm.bias, 1e-5)
        qkv = torch.einsum("oc,bcs->bos", blk.qkv.weight[:, :, 0], n) + blk.qkv.bias[None, :, None]
        ch = Cc // heads
        outs = []
        for h in range(heads):
            base = h * 3 * ch  # legacy order: [q_h, k_h, v_h] per head
            q = qkv[:, base:base + ch]
            k = qkv[:, base + ch:base + 2 * ch]
            v = qkv[:, base + 2 * ch:base + 3 * ch]
            logits = torch.einsum("bct,bcs->bts", q, k) / math.sqrt(ch)
            w = torch.softmax(logits, dim=-1)
            outs.append(torch.einsum("bts,bcs->bct", w, v))
        a = torch.cat(outs, dim=1)
        proj = torch.einsum("oc,bcs->bos", blk.proj_out.weight[:, :, 0], a) + blk.proj_out.bias[None, :, None]
        want = (xs + proj).reshape(2, Cc, H, W)
        self.assertLess((got - want).abs().max().item(), 1e-12)

    def test_resblock_by_hand(self):
        torch.manual_seed(1)
        for ss, cout in ((0, 12), (1, 8)):
            rb = M.randomize_(M.ResBlockLayer((8, 4, 4), cout, 16, 4, 3, ss), 5).double()
            x = torch.randn(2, 8 * 16, dtype=torch.float64)
            t = 37.5
            got = rb(x, t)
            xi = x.reshape(2, 8, 4, 4)
            silu = torch.nn.functional.silu
            gn = torch.nn.functional.group_norm
            conv = torch.nn.functional.conv2d
            h = conv(silu(gn(xi, 4, rb.in_layers[0].weight, rb.in_layers[0].bias, 1e-5)),
                     rb.in_layers[2].weight, rb.in_layers[2].bias, padding=1)
            emb = M.sinusoidal(torch.tensor([t], dtype=torch.float64), 16, dtype=torch.float64)
            eo = (silu(emb) @ rb.emb_layers[1].weight.T + rb.emb_layers[1].bias)[:, :, None, None]
            ow, ob = rb.out_layers[0].weight, rb.out_layers[0].bias
            if ss:
                scale, shift = eo[:, :cout], eo[:, cout:]
                h = gn(h, 4, ow, ob, 1e-5) * (1 + scale) + shift
            else:
                h = gn(h + eo, 4, ow, ob, 1e-5)
            h = conv(silu(h), rb.out_layers[3].weight, rb.out_layers[3].bias, padding=1)
            skip = xi if cout == 8 else conv(xi, rb.skip_connection.weight, rb.skip_connection.bias)
            want = (skip + h).reshape(2, -1)
            self.assertLess((got - want).abs().max().item(), 1e-12)

    def test_simple_layers_by_hand(self):
        torch.manual_seed(2)
        x = torch.randn(3, 16, dtype=torch.float64) * 3
        gelu = M.GELULayer((16,)).double()(x)
        want = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
        self.assertLess((gelu - want).abs().max().item(), 1e-14)
        silu = M.SiLULayer((16,)).double()(x)
        self.assertLess((silu - x / (1 + torch.exp(-x))).abs().max().item(), 1e-14)
        ln = M.randomize_(M.LayerNormLayer(16), 3).double()
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        want = (x - mu) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias
        self.assertLess((ln(x) - want).abs().max().item(), 1e-12)
        gnl = M.randomize_(M.GroupNormLayer((8, 2), 4), 4).double()
        xg = torch.randn(2, 16, dtype=torch.float64)
        xr = xg.reshape(2, 4, 4)  # groups of 2 channels x 2 positions
        mu = xr.mean(2, keepdim=True)
        var = ((xr - mu) ** 2).mean(2, keepdim=True)
        want = ((xr - mu) / torch.sqrt(var + 1e-5)).reshape(2, 8, 2) * gnl.weight[:, None] + gnl.bias[:, None]
        self.assertLess((gnl(xg) - want.reshape(2, -1)).abs().max().item(), 1e-12)
        cat = M.ConcatLayer((3, 2, 2)).double()(x[:, :12])
        xr = x[:, :12].reshape(3, 3, 2, 2)
        self.assertTrue(torch.equal(cat, torch.cat([xr, torch.nn.functional.silu(xr)], 1).reshape(3, -1)))
        up = M.UpsampleLayer((2, 2, 2), conv_resample=0).double()
        xu = torch.arange(8, dtype=torch.float64).reshape(1, 8)
        self.assertEqual(up(xu).reshape(2, 4, 4)[0].tolist(),
                         [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
        down = M.DownsampleLayer((1, 4, 4), conv_resample=0).double()
        self.assertEqual(down(torch.arange(16, dtype=torch.float64)[None]).tolist(),
                         [[2.5, 4.5, 10.5, 12.5]])
        te = M.randomize_(M.TimeEmbeddingLayer((12,), 16, 12), 6).double()
        emb = M.sinusoidal(torch.tensor([37.5], dtype=torch.float64), 16, dtype=torch.float64)
        mlp = te.time_embed[2](torch.nn.functional.silu(te.time_embed[0](emb)))
        self.assertLess((te(x[:, :12], 37.5) - (x[:, :12] + mlp)).abs().max().item(), 1e-13)

    def test_temporal_unet_is_time_major(self):
        m = M.randomize_(M.LgdUNet(dims=1, in_channels=2, out_channels=2, horizon=8,
                                   model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                   attention_levels=(1,), num_heads=2, num_groups=4,
                                   kernel_size=5), 7).double()
        x_ct = torch.randn(2, 2, 8, dtype=torch.float64)   # [B][C][T]
        x_flat = x_ct.transpose(1, 2).reshape(2, -1)         # rows [T][C]
        got = m(x_flat, 10.0)
        # the same network applied to [C][T] by hand
        emb = m.time_embed(M.sinusoidal(torch.tensor([10.0], dtype=torch.float64), 8, dtype=torch.float64))
        h, hs = x_ct, []
        for blk in m.input_blocks:
            h = blk(h, emb)
            hs.append(h)
        h = m.middle_block(h, emb)
        for blk in m.output_blocks:
            h = blk(torch.cat([h, hs.pop()], 1), emb)
        want = m.out(h).transpose(1, 2).reshape(2, -1)
        self.assertTrue(torch.equal(got, want))

    # guided-diffusion UNetModel(image_size=8, in_channels=3, model_channels=16,
    # out_channels=3, num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 2),
    # num_heads=2) has these modules (read off guided_diffusion/unet.py):
    GD_LAYOUT = [
        ("time_embed.0", "linear", 16, 64), ("time_embed.2", "linear", 64, 64),
        ("input_blocks.0.0", "conv", 3, 16),
        ("input_blocks.1.0", "res", 16, 16),
        ("input_blocks.2.0.op", "conv", 16, 16),
        ("input_blocks.3.0", "res", 16, 32), ("input_blocks.3.1", "attn", 32, 32),
        ("middle_block.0", "res", 32, 32), ("middle_block.1", "attn", 32, 32),
        ("middle_block.2", "res", 32, 32),
        ("output_blocks.0.0", "res", 64, 32), ("output_blocks.0.1", "attn", 32, 32),
        ("output_blocks.1.0", "res", 48, 32), ("output_blocks.1.1", "attn", 32, 32),
        ("output_blocks.1.2.conv", "conv", 32, 32),
        ("output_blocks.2.0", "res", 48, 16),
        ("output_blocks.3.0", "res", 32, 16),
        ("out.0", "gn", 16, 16), ("out.2", "conv", 16, 3),
    ]

    def _gd_expected(self, E=64):
        exp = {}
        for prefix, kind, cin, cout in self.GD_LAYOUT:
            if kind == "linear":
                exp[prefix + ".weight"] = (cout, cin)
                exp[prefix + ".bias"] = (cout,)
            elif kind == "conv":
                exp[prefix + ".weight"] = (cout, cin, 3, 3)
                exp[prefix + ".bias"] = (cout,)
            elif kind == "gn":
                exp[prefix + ".weight"] = exp[prefix + ".bias"] = (cin,)
            elif kind == "attn":
                exp.update({prefix + ".norm.weight": (cin,), prefix + ".norm.bias": (cin,),
                            prefix + ".qkv.weight": (3 * cin, cin, 1), prefix + ".qkv.bias": (3 * cin,),
                            prefix + ".proj_out.weight": (cin, cin, 1),
                            prefix + ".proj_out.bias": (cin,)})
            elif kind == "res":
                exp.update({prefix + ".in_layers.0.weight": (cin,), prefix + ".in_layers.0.bias": (cin,),
                            prefix + ".in_layers.2.weight": (cout, cin, 3, 3),
                            prefix + ".in_layers.2.bias": (cout,),
                            prefix + ".emb_layers.1.weight": (cout, E),
                            prefix + ".emb_layers.1.bias": (cout,),
                            prefix + ".out_layers.0.weight": (cout,), prefix + ".out_layers.0.bias": (cout,),
                            prefix + ".out_layers.3.weight": (cout, cout, 3, 3),
                            prefix + ".out_layers.3.bias": (cout,)})
                if cin != cout:
                    exp[prefix + ".skip_connection.weight"] = (cout, cin, 1, 1)
                    exp[prefix + ".skip_connection.bias"] = (cout,)
        return exp

    def test_unet_names_are_guided_diffusion_names(self):
        m, _, _, _ = _fixture_module("unet")
        got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        self.assertEqual(got, self._gd_expected())

    def test_guided_diffusion_state_dict_map(self):
        m, _, _, _ = _fixture_module("unet")
        sd = m.state_dict()
        # a learn_sigma checkpoint saved from DataParallel: module. prefix, 6 output channels
        gd = {"module." + k: v.clone() for k, v in sd.items()}
        gd["module.out.2.weight"] = torch.cat([sd["out.2.weight"], -sd["out.2.weight"]])
        gd["module.out.2.bias"] = torch.cat([sd["out.2.bias"], sd["out.2.bias"] + 1])
        mapped = C.guided_diffusion_state_dict_to_lgd(gd, drop_learned_sigma=True)
        self.assertEqual(set(mapped), set(sd))
        for k in sd:
            self.assertTrue(torch.equal(mapped[k], sd[k]), k)
        plain = C.guided_diffusion_state_dict_to_lgd(sd)
        self.assertEqual(list(plain), list(sd))  # identity on names, same order
        cfg = C.lgd_config_from_guided_diffusion(
            image_size=8, num_channels=16, num_res_blocks=1, attention_resolutions="4",
            channel_mult="1,2", num_heads=2, learn_sigma=True)
        self.assertEqual(cfg["attention_levels"], [1])
        cfg["num_groups"] = 4
        dims = cfg.pop("dims")
        M.LgdUNet(dims=dims, **cfg).load_state_dict(mapped)
        cfg64 = C.lgd_config_from_guided_diffusion(
            image_size=64, num_channels=64, num_res_blocks=3,
            attention_resolutions="32,16,8", num_head_channels=64,
            channel_mult="1,1,1,1", class_cond=True)
        self.assertEqual(cfg64["channel_mult"], [1, 1, 1, 1])
        self.assertEqual(cfg64["attention_levels"], [1, 2, 3])
        self.assertEqual(cfg64["num_heads"], 1)
        self.assertEqual(cfg64["num_head_channels"], 0)
        self.assertEqual(cfg64["num_classes"], 1000)
        # per-level head counts (128, 192, 256 channels): lgd.num_head_channels
        cfg_nhc = C.lgd_config_from_guided_diffusion(
            image_size=64, num_channels=64, num_res_blocks=3, num_head_channels=64,
            attention_resolutions="32,16,8")
        self.assertEqual(cfg_nhc["num_head_channels"], 64)
        cfg_nhc.pop("dims")
        meta = M.LgdUNet(dims=2, **cfg_nhc).lgd_metadata()
        self.assertEqual(meta["lgd.num_head_channels"], "64")
        self.assertNotIn("lgd.num_heads", meta)
        with self.assertRaises(ValueError):  # 48 does not divide 64
            C.lgd_config_from_guided_diffusion(image_size=64, num_channels=64, num_res_blocks=3,
                                               num_head_channels=48, attention_resolutions="32,16,8")
        with self.assertRaises(ValueError):
            C.lgd_config_from_guided_diffusion(image_size=64, num_channels=64, num_res_blocks=3,
                                               resblock_updown=True)

    def test_metadata_roundtrip_all_fixtures(self):
        for name, _, build, _, _ in MF.FIXTURES:
            m = build()
            meta = m.lgd_metadata()
            m2 = M.build_from_metadata(meta)
            self.assertEqual(m2.lgd_metadata(), meta, name)
            self.assertEqual({k: v.shape for k, v in m2.state_dict().items()},
                             {k: v.shape for k, v in m.state_dict().items()}, name)

    def test_mlp_out_dim_classifier(self):
        # lgd.out_dim (liblgd 0.5.0): a classifier's logits; absent when out_dim == dim
        m = M.LgdMLP(6, 16, 1, 8, out_dim=4)
        meta = m.lgd_metadata()
        self.assertEqual(meta["lgd.out_dim"], "4")
        self.assertNotIn("lgd.out_dim", M.LgdMLP(6, 16, 1, 8).lgd_metadata())
        m2 = M.build_from_metadata(meta)
        self.assertEqual((m2.in_dim, m2.out_dim), (6, 4))
        self.assertEqual(tuple(m2.output.weight.shape), (4, 16))
        self.assertEqual(tuple(m2(torch.zeros(3, 6), 0.5).shape), (3, 4))


@unittest.skipIf(torch is None, NO_TORCH)
class TestReferences(unittest.TestCase):
    NAMES = ("linear", "conv2d_stride2", "group_norm", "gelu", "attention", "attention_1d",
             "resblock", "resblock_scale_shift", "upsample", "downsample_avgpool",
             "time_embedding", "mlp_cond", "mlp_bf16", "unet_cond_ss", "temporal_unet")

    def test_vjp_autograd_and_finite_differences(self):
        for name in self.NAMES:
            m, save_opts, ref_opts, rseed = _fixture_module(name)
            dtype = save_opts.get("dtype", "F32")
            ref = C.compute_reference(m, ref_opts.get("batch", 2), rseed,
                                      ref_opts.get("t", MF.T_DISCRETE), dtype=dtype,
                                      x_scale=ref_opts.get("x_scale", 1.0))
            m64 = C.round_weights(m, dtype).double()
            x = ref["x_in"].double()
            t = ref["t"].double()
            cond = ref["cond"].double() if "cond" in ref else None
            cot = ref["cotangent"].double()

            def f(v):
                return m64(v, t, cond)

            xg = x.clone().requires_grad_(True)
            out = f(xg)
            (vjp,) = torch.autograd.grad(out, xg, cot)
            self.assertTrue(torch.equal(out.detach().float(), ref["out"]), name)
            self.assertTrue(torch.equal(vjp.float(), ref["vjp"]), name)
            g = torch.Generator().manual_seed(17)
            for _ in range(2):
                d = torch.randn(x.shape, generator=g, dtype=torch.float64)
                h = 1e-5
                with torch.no_grad():
                    fd = ((cot * f(x + h * d)).sum() - (cot * f(x - h * d)).sum()) / (2 * h)
                an = (vjp * d).sum()
                scale = max(1.0, an.abs().item())
                self.assertLess(abs(fd.item() - an.item()) / scale, 1e-6, name)
                an32 = (ref["vjp"].double() * d).sum()
                self.assertLess(abs(fd.item() - an32.item()) / scale, 1e-5, name)

    def test_low_precision_variants_share_mlp_data(self):
        base = C.compute_reference(_fixture_module("mlp")[0], 3, _fixture_module("mlp")[3], 37.5)
        for name, dt, tol in (("mlp_f16", "F16", 2e-2), ("mlp_bf16", "BF16", 1e-1)):
            m, save_opts, _, rseed = _fixture_module(name)
            self.assertEqual(save_opts["dtype"], dt)
            ref = C.compute_reference(m, 3, rseed, 37.5, dtype=dt)
            self.assertTrue(torch.equal(ref["x_in"], base["x_in"]))
            self.assertTrue(torch.equal(ref["cotangent"], base["cotangent"]))
            diff = (ref["out"] - base["out"]).abs().max().item()
            self.assertGreater(diff, 0.0, name)
            self.assertLess(diff, tol, name)

    def test_reference_file_layout_and_loaded_network(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("mlp_f16", "unet_cond_ss", "concat", "mlp_cond"):
                m, save_opts, ref_opts, _ = _fixture_module(name)
                net = os.path.join(d, name + ".safetensors")
                refp = os.path.join(d, name + ".ref.safetensors")
                C.save_network(m, net, **save_opts)
                B = ref_opts.get("batch", 2)
                C.write_reference(m, refp, B, 5, ref_opts.get("t", 37.5),
                                  dtype=save_opts.get("dtype", "F32"))
                meta, ref = C.read_safetensors(refp)
                self.assertEqual(meta, {})
                keys = {"x_in", "t", "out", "cotangent", "vjp"}
                if m.cond_dim:
                    keys.add("cond")
                self.assertEqual(set(ref), keys, name)
                for k, v in ref.items():
                    self.assertEqual(v.dtype, torch.float32, k)
                self.assertEqual(tuple(ref["x_in"].shape), (B, m.in_dim))
                self.assertEqual(tuple(ref["t"].shape), (1,))
                self.assertEqual(tuple(ref["out"].shape), (B, m.out_dim))
                self.assertEqual(tuple(ref["cotangent"].shape), (B, m.out_dim))
                self.assertEqual(tuple(ref["vjp"].shape), (B, m.in_dim))
                if "cond" in ref:
                    self.assertEqual(tuple(ref["cond"].shape), (B, m.cond_dim))
                if name == "unet_cond_ss":
                    self.assertTrue(torch.equal(ref["cond"].sum(1), torch.ones(B)))
                # the network as loaded from its file reproduces the reference
                loaded, lmeta, _ = C.load_network(net)
                l64 = loaded.double()
                x = ref["x_in"].double().requires_grad_(True)
                out = l64(x, ref["t"].double(), ref["cond"].double() if "cond" in ref else None)
                (vjp,) = torch.autograd.grad(out, x, ref["cotangent"].double())
                self.assertTrue(torch.equal(out.detach().float(), ref["out"]), name)
                self.assertTrue(torch.equal(vjp.float(), ref["vjp"]), name)
                if name == "mlp_f16":
                    # not the F32 weights: the reference differs from one made from them
                    r32 = C.compute_reference(m, B, 5, 37.5, dtype="F32")
                    self.assertFalse(torch.equal(r32["out"], ref["out"]))


@unittest.skipIf(torch is None, NO_TORCH)
class TestFixturesAndCLI(unittest.TestCase):
    def _run(self, *args):
        return subprocess.run([sys.executable] + list(args), cwd=ROOT, check=True,
                              capture_output=True, text=True)

    def test_make_fixtures_deterministic(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            self._run(os.path.join(HERE, "make_fixtures.py"), "--out", a)
            self._run(os.path.join(HERE, "make_fixtures.py"), "--out", b)
            names = sorted(os.listdir(a))
            self.assertEqual(names, sorted(os.listdir(b)))
            self.assertEqual(len(names), 2 * len(MF.FIXTURES) + 1)
            total = 0
            for n in names:
                with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
                    da, db = fa.read(), fb.read()
                self.assertEqual(da, db, n)
                if n.endswith(".safetensors"):
                    total += len(da)
            self.assertLess(total, SIZE_CAP)
            if not os.path.isdir(FIXTURE_DIR):
                return
            # the committed fixtures are these files: network files byte for byte,
            # references to float32 rounding (float64 sums may differ by CPU)
            for n in names:
                path = os.path.join(FIXTURE_DIR, n)
                self.assertTrue(os.path.exists(path), "missing committed fixture " + n)
                with open(os.path.join(a, n), "rb") as fa, open(path, "rb") as fc:
                    da, dc = fa.read(), fc.read()
                if n.endswith(".ref.safetensors"):
                    _, ra, _ = C.parse_safetensors(da)
                    _, rc, _ = C.parse_safetensors(dc)
                    self.assertEqual(set(ra), set(rc), n)
                    for k in ra:
                        self.assertTrue(torch.allclose(ra[k], rc[k], rtol=1e-5, atol=1e-6), n + ":" + k)
                else:
                    self.assertEqual(da, dc, n + " differs from tools/make_fixtures.py output")

    def test_cli(self):
        r = self._run(os.path.join(HERE, "lgd_convert.py"), "--help")
        self.assertIn("export", r.stdout)
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "cfg.json")
            with open(cfg, "w") as f:
                json.dump({"dim": 4, "hidden": 8, "depth": 1, "time_embed_dim": 6}, f)
            out = os.path.join(d, "m.safetensors")
            self._run(os.path.join(HERE, "lgd_convert.py"), "export", "--arch", "mlp",
                      "--config", cfg, "--random-init", "--seed", "3", "--out", out,
                      "--prediction", "v", "--alphas-cumprod", "cosine:100",
                      "--reference", os.path.join(d, "m.ref.safetensors"))
            m, meta, alphas = C.load_network(out)
            self.assertEqual(meta["lgd.prediction"], "v")
            self.assertEqual(alphas.shape, (100,))
            ref_m = M.randomize_(M.LgdMLP(4, 8, 1, 6), 3)
            for k, v in ref_m.state_dict().items():
                self.assertTrue(torch.equal(m.state_dict()[k], v), k)
            # weights from a torch state_dict file
            pt = os.path.join(d, "w.pt")
            torch.save(ref_m.state_dict(), pt)
            out2 = os.path.join(d, "m2.safetensors")
            self._run(os.path.join(HERE, "lgd_convert.py"), "export", "--arch", "mlp",
                      "--config", cfg, "--weights", pt, "--out", out2, "--dtype", "BF16",
                      "--time-input", "sigma")
            meta2, t2 = C.read_safetensors(out2)
            self.assertEqual(meta2["lgd.time_input"], "sigma")
            self.assertNotIn("lgd.alphas_cumprod", t2)
            self.assertEqual(t2["input.weight"].dtype, torch.bfloat16)
            r = self._run(os.path.join(HERE, "lgd_convert.py"), "info", out2)
            self.assertIn("lgd.architecture = mlp", r.stdout)
            # a layer config
            lcfg = os.path.join(d, "l.json")
            with open(lcfg, "w") as f:
                json.dump({"layer": "conv1d", "input_shape": [3, 8], "out_channels": 2,
                           "kernel_size": 3, "padding": 1}, f)
            out3 = os.path.join(d, "l.safetensors")
            self._run(os.path.join(HERE, "lgd_convert.py"), "export", "--arch", "layer",
                      "--config", lcfg, "--random-init", "--out", out3)
            self._run(os.path.join(HERE, "lgd_convert.py"), "reference", out3)
            self.assertTrue(os.path.exists(os.path.join(d, "l.ref.safetensors")))


if __name__ == "__main__":
    if torch is None:
        print("test_convert.py: " + NO_TORCH)
    unittest.main()
