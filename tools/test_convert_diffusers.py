#!/usr/bin/env python3
"""Tests of the Hugging Face diffusers converter (tools/lgd_convert.py `diffusers`).

    LGD_BUILD_DIR=BUILD python3 tools/test_convert_diffusers.py [-v]

(tests/check_converter_diffusers.sh under meson.)  Small randomly initialised
diffusers UNet2DModels are saved with save_pretrained (with a scheduler config
beside them), converted by the command-line tool, loaded in liblgd through the
Python package (bindings/python) and compared with the diffusers module run in
float64 by PyTorch: the raw network F(x_in, t), the denoiser D(x, sigma)
through the file's adapter at several sigmas, and the input VJP J^T v against
autograd.  The mapping itself is checked exactly (float64 against float64,
where the time embedding is exact), the schedules bit for bit against the
diffusers schedulers, and the refusals by the field they name.

Skips what it cannot run: everything without PyTorch; the tests that build
diffusers modules without diffusers; the liblgd comparisons without numpy or
a loadable liblgd (a failure instead when LGD_BUILD_DIR is set, as under
meson, and the library does not load).
"""

import contextlib
import io
import json
import math
import os
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
    import diffusers
except Exception:  # ImportError, or a diffusers that does not import with this torch
    diffusers = None

NO_TORCH = "PyTorch is not installed (pip install torch): skipping the diffusers converter tests"
NO_DIFFUSERS = "diffusers is not installed (pip install diffusers)"

if torch is not None:
    import lgd_convert as C

lgd = None
LGD_PROBLEM = None
if torch is not None:
    try:
        import numpy  # noqa: F401  (the lgd package needs it)
        sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "src"))
        import lgd
    except Exception as e:  # numpy missing, or the library not found
        LGD_PROBLEM = "%s: %s" % (type(e).__name__, e)
        if os.environ.get("LGD_BUILD_DIR"):
            raise  # under meson the build must load

SIGMAS = (0.05, 1.0, 20.0)
# float32 liblgd against float64 PyTorch, errors relative to the largest
# magnitude of the reference (measured maxima are printed; about 1e-6)
TOL = 2e-5


def randomize(module, seed):
    """Every parameter random (GroupNorm weights 1 + 0.25 N(0,1), biases 0.2 N(0,1),
    weights N(0,1)/sqrt(fan_in)), so that a tensor mapped to the wrong place shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if "norm" in name and name.endswith(".weight") and p.dim() == 1:
                v = 1.0 + 0.25 * r
            elif name.endswith(".bias"):
                v = 0.2 * r
            elif "class_embedding" in name:
                v = 0.5 * r
            else:
                v = r / math.sqrt(max(1, p[0].numel()))
            p.copy_(v.to(p.dtype))
    return module


def unet_config(**kw):
    cfg = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64),
               down_block_types=("DownBlock2D", "AttnDownBlock2D"),
               up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
               attention_head_dim=8, norm_num_groups=8)
    cfg.update(kw)
    return cfg


# name: (UNet2DModel arguments, scheduler class, scheduler arguments)
CONFIGS = {
    # 1 channel, 8x8; attention at level 1 and in the middle, one head count (8)
    "c1_8_attn_eps": (unet_config(), "DDPMScheduler", {}),
    # 3 channels, 16x16, scale-shift (norm-free middle attention); attention on
    # one side of levels 0, 1, 2 only (zero-filled twins); 2 and 4 heads
    # (lgd.num_head_channels); [sin, cos] embedding; v prediction, scaled_linear
    "c3_16_scaleshift_v": (unet_config(
        sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32, 32),
        down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), layers_per_block=2,
        norm_num_groups=4, resnet_time_scale_shift="scale_shift", flip_sin_to_cos=False),
        "DDIMScheduler", dict(prediction_type="v_prediction", beta_schedule="scaled_linear",
                              beta_start=0.00085, beta_end=0.012)),
    # 3 channels, 32x32, 4 levels, no attention (add_attention=False: a zero middle
    # attention), one head (attention_head_dim None), 4 classes, cosine schedule
    "c3_32_noattn_classes": (unet_config(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 32),
        down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4,
        attention_head_dim=None, norm_num_groups=4, add_attention=False, num_class_embeds=4),
        "DDPMScheduler", dict(beta_schedule="squaredcos_cap_v2")),
    # 1 channel, 16x16, scale-shift with attn_norm_num_groups (middle GroupNorm of 2
    # groups, the rest 8); x0 ("sample") prediction; Euler's config
    "c1_16_scaleshift_x0": (unet_config(
        sample_size=16, block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=16,
        resnet_time_scale_shift="scale_shift", attn_norm_num_groups=2),
        "EulerDiscreteScheduler", dict(prediction_type="sample")),
    # 3 channels, 8x8, no middle block (zero ResBlocks and attention), learned
    # variance (6 outputs; the file keeps eps), [sin, cos]
    "c3_8_nomid_learnedvar": (unet_config(
        in_channels=3, out_channels=6, block_out_channels=(16, 16), norm_num_groups=4,
        mid_block_type=None, flip_sin_to_cos=False),
        "DDPMScheduler", dict(variance_type="learned_range")),
}

# the largest errors measured, per configuration (printed at the end)
MEASURED = {}


def make_model(name, seed=0):
    cfg, scls, skw = CONFIGS[name]
    unet = randomize(diffusers.UNet2DModel(**cfg), 100 + seed).eval()
    sched = getattr(diffusers, scls)(**skw)
    return unet, sched


def save_pretrained_pair(unet, sched, root, **kw):
    unet.save_pretrained(os.path.join(root, "unet"), **kw)
    sched.save_pretrained(os.path.join(root, "scheduler"))
    return os.path.join(root, "unet")


def run_cli(*args):
    """lgd_convert.py's main() in this process (no second PyTorch import): None on
    success, else the message it exits with."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            C.main(list(args))
    except SystemExit as e:
        return str(e.code)
    return None


def run_cli_process(*args):
    return subprocess.run([sys.executable, os.path.join(HERE, "lgd_convert.py")] + list(args),
                          capture_output=True, text=True)


def rel_err(a, b):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def diffusers_f(unet64, x_in, t, labels, keep):
    """F(x_in, t): the diffusers module in float64 (its time embedding is float32
    by construction, as liblgd's), the first `keep` output channels, flat."""
    B = x_in.shape[0]
    size = unet64.config.sample_size
    ch = unet64.config.in_channels
    tt = torch.full((B,), float(t), dtype=torch.float64)
    out = unet64(x_in.reshape(B, ch, size, size), tt, class_labels=labels).sample
    return out[:, :keep].reshape(B, -1)


def time_of_sigma(alphas, sigma):
    """k-diffusion's t(sigma): linear interpolation of the timestep index in log sigma."""
    a = torch.as_tensor(alphas, dtype=torch.float64)
    ls = torch.log(((1 - a) / a).sqrt())
    ln = math.log(sigma)
    if ln <= ls[0]:
        return 0.0
    if ln >= ls[-1]:
        return float(len(ls) - 1)
    hi = int(torch.searchsorted(ls, torch.tensor([ln], dtype=torch.float64), right=True))
    lo = hi - 1
    return lo + (ln - float(ls[lo])) / float(ls[hi] - ls[lo])


def coefficients(prediction, s):
    if prediction == "eps":
        return 1 / math.sqrt(1 + s * s), 1.0, -s
    if prediction == "v":
        return 1 / math.sqrt(1 + s * s), 1 / (1 + s * s), -s / math.sqrt(1 + s * s)
    assert prediction == "x0"
    return 1 / math.sqrt(1 + s * s), 0.0, 1.0


@unittest.skipIf(torch is None, NO_TORCH)
class TestPlanAndRefusals(unittest.TestCase):
    """Configs alone (no diffusers needed)."""

    def refused(self, field, **kw):
        cfg = unet_config(**kw)
        with self.assertRaises(C.DiffusersError) as cm:
            C.diffusers_unet_plan(cfg)
        self.assertIn(field, str(cm.exception))
        return str(cm.exception)

    def test_refusals_name_the_field(self):
        self.refused("freq_shift", freq_shift=1)
        self.refused("time_embedding_type", time_embedding_type="fourier")
        self.refused("time_embedding_type", time_embedding_type="learned",
                     num_train_timesteps=10)
        self.refused("center_input_sample", center_input_sample=True)
        self.refused("act_fn", act_fn="gelu")
        self.refused("norm_eps", norm_eps=1e-6)
        self.refused("downsample_padding", downsample_padding=0)
        self.refused("mid_block_scale_factor", mid_block_scale_factor=2.0)
        self.refused("block_out_channels", block_out_channels=(32, 48))
        self.refused("block_out_channels", block_out_channels=(15, 30), norm_num_groups=5,
                     attention_head_dim=None)  # an odd sinusoid width
        self.refused("norm_num_groups", block_out_channels=(32, 48 + 16), norm_num_groups=24)
        self.refused("down_block_types", down_block_types=("DownBlock2D",
                                                           "ResnetDownsampleBlock2D"))
        self.refused("down_block_types", down_block_types=("DownBlock2D",))
        self.refused("up_block_types", up_block_types=("SkipUpBlock2D", "UpBlock2D"))
        self.refused("upsample_type", upsample_type="resnet")
        # no upsampler after the last up block: its type does not matter
        C.diffusers_unet_plan(unet_config(up_block_types=("UpBlock2D", "AttnUpBlock2D"),
                                          upsample_type="resnet"))
        self.refused("downsample_type", down_block_types=("AttnDownBlock2D", "DownBlock2D"),
                     downsample_type="resnet")
        self.refused("mid_block_type", mid_block_type="UNetMidBlock2DCrossAttn")
        self.refused("class_embed_type", class_embed_type="timestep")
        self.refused("attention_head_dim", attention_head_dim=12)
        self.refused("out_channels", out_channels=2)
        self.refused("resnet_time_scale_shift", resnet_time_scale_shift="spatial")
        self.refused("layers_per_block", layers_per_block=0)
        self.refused("sample_size", sample_size=(8, 16))
        self.refused("sample_size", sample_size=None)
        self.refused("image size 10", sample_size=10, block_out_channels=(32, 64, 64),
                     down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3)
        self.refused("_class_name", _class_name="UNet2DConditionModel")
        self.refused("cross_attention_dim", cross_attention_dim=768)
        # a learned variance needs 2 in_channels outputs
        with self.assertRaises(C.DiffusersError):
            C.diffusers_unet_plan(unet_config(), learned_variance=True)

    def test_plan(self):
        kw, plan = C.diffusers_unet_plan(CONFIGS["c3_16_scaleshift_v"][0])
        self.assertEqual(kw["channel_mult"], [1, 2, 2])
        self.assertEqual(kw["attention_levels"], [0, 1, 2])
        self.assertEqual(kw["num_head_channels"], 8)  # 2, 4, 4 heads
        self.assertEqual(kw["middle_attention_groups"], 0)  # scale-shift: no norm
        self.assertEqual(plan["attn_down"], [True, False, True])
        self.assertEqual(plan["attn_up"], [False, True, False])
        self.assertFalse(plan["flip"])
        kw, _ = C.diffusers_unet_plan(CONFIGS["c1_8_attn_eps"][0])
        self.assertEqual((kw["num_heads"], kw["num_head_channels"]), (8, 0))
        self.assertEqual(kw["middle_attention_groups"], 8)
        kw, _ = C.diffusers_unet_plan(CONFIGS["c1_16_scaleshift_x0"][0])
        self.assertEqual(kw["middle_attention_groups"], 2)
        kw, _ = C.diffusers_unet_plan(unet_config(sample_size=None), image_size=16)
        self.assertEqual(kw["image_size"], 16)
        kw, _ = C.diffusers_unet_plan(unet_config(sample_size=[8, 8]))
        self.assertEqual(kw["image_size"], 8)
        kw, _ = C.diffusers_unet_plan(unet_config(class_embed_type="identity"))
        self.assertEqual(kw["num_classes"], kw["time_embed_dim"])
        # the default config of UNet2DModel converts (224, 448, 672, 896: mult 1..4)
        kw, _ = C.diffusers_unet_plan({"sample_size": 64})
        self.assertEqual(kw["channel_mult"], [1, 2, 3, 4])
        self.assertEqual(kw["num_head_channels"], 8)

    def test_scheduler_refusals(self):
        def refused(field, **kw):
            with self.assertRaises(C.DiffusersError) as cm:
                C.diffusers_scheduler_adapter(kw)
            self.assertIn(field, str(cm.exception))
        refused("prediction_type", prediction_type="flow")
        refused("rescale_betas_zero_snr", rescale_betas_zero_snr=True)
        refused("_class_name", _class_name="ScoreSdeVeScheduler")
        refused("_class_name", _class_name="CMStochasticIterativeScheduler")
        refused("beta_schedule", beta_schedule="exp")
        refused("beta_schedule", _class_name="DDIMScheduler", beta_schedule="sigmoid")
        refused("trained_betas", trained_betas=[0.1, 0.2], num_train_timesteps=3)
        refused("num_train_timesteps", num_train_timesteps=1)
        refused("timestep_type", timestep_type="other")
        # betas of 1: alphas_cumprod reaches 0
        refused("beta_schedule", trained_betas=[0.5, 1.0], num_train_timesteps=2)

    def test_scheduler_adapter(self):
        a = C.diffusers_scheduler_adapter({"_class_name": "DDPMScheduler"})
        self.assertEqual((a["prediction"], a["time_input"], a["learned_variance"]),
                         ("eps", "discrete", False))
        ref = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32), 0)
        self.assertTrue(torch.equal(a["alphas_cumprod"], ref))
        a = C.diffusers_scheduler_adapter({"prediction_type": "v_prediction",
                                           "_class_name": "EulerDiscreteScheduler",
                                           "timestep_type": "continuous"})
        self.assertEqual((a["prediction"], a["time_input"]), ("v", "log_sigma"))
        a = C.diffusers_scheduler_adapter({"prediction_type": "sample",
                                           "variance_type": "learned"})
        self.assertEqual((a["prediction"], a["learned_variance"]), ("x0", True))


@unittest.skipIf(torch is None, NO_TORCH)
@unittest.skipIf(diffusers is None, NO_DIFFUSERS)
class TestAgainstDiffusers(unittest.TestCase):
    def test_alphas_cumprod_bit_for_bit(self):
        """The schedule the converter computes is the scheduler's own, for every
        scheduler class it accepts and every beta schedule."""
        n = 0
        for cls in sorted(C.DIFFUSERS_SCHEDULERS):
            scls = getattr(diffusers, cls, None)
            if scls is None:
                continue
            variants = [{}, {"beta_schedule": "scaled_linear"},
                        {"beta_schedule": "squaredcos_cap_v2"},
                        {"num_train_timesteps": 37, "beta_start": 0.001, "beta_end": 0.1},
                        {"trained_betas": [0.01 * (i + 1) for i in range(20)],
                         "num_train_timesteps": 20}]
            if cls in ("DDPMScheduler", "DDPMParallelScheduler"):
                variants += [{"beta_schedule": "sigmoid"}, {"beta_schedule": "laplace"}]
            for kw in variants:
                try:
                    sched = scls(**kw)
                except Exception:  # e.g. a class without trained_betas
                    continue
                mine = C.diffusers_scheduler_adapter(dict(sched.config))["alphas_cumprod"]
                theirs = sched.alphas_cumprod.to(torch.float32)
                self.assertTrue(torch.equal(mine, theirs), (cls, kw))
                n += 1
        self.assertGreater(n, 40)

    def test_mapping_exact_in_float64(self):
        """The LgdUNet of the conversion is the diffusers module: float64 against
        float64 at t = 0 (where the sinusoids are exact in both), to 1e-12."""
        for name in CONFIGS:
            unet, sched = make_model(name)
            module, adapter, prov = C.convert_diffusers(unet, sched)
            self.assertEqual(json.loads(prov["diffusers.unet_config"])["in_channels"],
                             unet.config.in_channels)
            u64, m64 = unet.double(), module.double()
            g = torch.Generator().manual_seed(5)
            B = 2
            x = torch.randn(B, module.in_dim, generator=g, dtype=torch.float64)
            labels, cond = None, None
            if module.num_classes:
                labels = torch.tensor([1, 3])
                cond = torch.nn.functional.one_hot(labels, module.num_classes).double()
            with torch.no_grad():
                ref = diffusers_f(u64, x, 0.0, labels, module.out_channels)
                out = m64(x, torch.tensor([0.0], dtype=torch.float64), cond)
                self.assertLess(rel_err(out, ref), 1e-12, name)
                # any t: the float32 time embedding of diffusers against float64 here
                ref = diffusers_f(u64, x, 417.25, labels, module.out_channels)
                out = m64(x, torch.tensor([417.25], dtype=torch.float64), cond)
                self.assertLess(rel_err(out, ref), 1e-5, name)

    def test_identity_class_embedding(self):
        """class_embed_type identity: the condition is the [E] vector added to the
        time embedding (label_emb = the identity)."""
        unet = randomize(diffusers.UNet2DModel(**unet_config(class_embed_type="identity")),
                         3).eval().double()
        module = C.diffusers_unet_to_lgd(unet.config, unet.state_dict()).double()
        E = module.time_embed_dim
        self.assertEqual(module.cond_dim, E)
        g = torch.Generator().manual_seed(9)
        x = torch.randn(2, module.in_dim, generator=g, dtype=torch.float64)
        c = torch.randn(2, E, generator=g, dtype=torch.float64)
        with torch.no_grad():
            ref = unet(x.reshape(2, 1, 8, 8), torch.zeros(2, dtype=torch.float64),
                       class_labels=c).sample.reshape(2, -1)
            out = module(x, torch.tensor([0.0], dtype=torch.float64), c)
        self.assertLess(rel_err(out, ref), 1e-12)

    def test_legacy_attention_names(self):
        """Checkpoints of diffusers < 0.14 (query/key/value/proj_attn) convert alike."""
        unet, sched = make_model("c1_8_attn_eps")
        sd = unet.state_dict()
        old = {}
        for k, v in sd.items():
            for new, legacy in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"),
                                ("to_out.0", "proj_attn")):
                if ".%s." % new in k:
                    k = k.replace(".%s." % new, ".%s." % legacy)
            old[k] = v
        self.assertIn("mid_block.attentions.0.proj_attn.weight", old)
        a = C.diffusers_unet_to_lgd(unet.config, sd).state_dict()
        b = C.diffusers_unet_to_lgd(unet.config, old).state_dict()
        self.assertEqual(set(a), set(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)

    def test_weight_mismatches_refused(self):
        unet, _ = make_model("c1_8_attn_eps")
        sd = dict(unet.state_dict())
        cfg = unet.config
        bad = dict(sd)
        del bad["mid_block.resnets.1.conv2.bias"]
        with self.assertRaisesRegex(C.DiffusersError, "mid_block.resnets.1.conv2.bias"):
            C.diffusers_unet_to_lgd(cfg, bad)
        bad = dict(sd)
        bad["extra.weight"] = torch.zeros(3)
        with self.assertRaisesRegex(C.DiffusersError, "extra.weight"):
            C.diffusers_unet_to_lgd(cfg, bad)
        bad = dict(sd)
        bad["conv_in.weight"] = torch.zeros(32, 1, 5, 5)
        with self.assertRaisesRegex(C.DiffusersError, "input_blocks.0.0.weight"):
            C.diffusers_unet_to_lgd(cfg, bad)
        # a config that does not match the weights (other channels)
        other = dict(cfg)
        other["block_out_channels"] = [32, 32]
        with self.assertRaises(C.DiffusersError):
            C.diffusers_unet_to_lgd(other, sd)

    def test_cli_layouts_and_refusal(self):
        """.bin weights, a variant, a pipeline directory, --scheduler; a refused
        config exits non-zero with the field named."""
        unet, sched = make_model("c1_8_attn_eps")
        ref = C.convert_diffusers(unet, sched)[0].state_dict()
        with tempfile.TemporaryDirectory() as d:
            def same(path):
                module, meta, alphas = C.load_network(path)
                for k, v in module.state_dict().items():
                    self.assertTrue(torch.equal(v, ref[k]), k)
                self.assertTrue(torch.equal(alphas, sched.alphas_cumprod))
                return meta
            udir = os.path.join(d, "bin", "unet")
            unet.save_pretrained(udir, safe_serialization=False)
            sched.save_pretrained(os.path.join(d, "bin", "scheduler"))
            self.assertTrue(os.path.isfile(os.path.join(udir, "diffusion_pytorch_model.bin")))
            out = os.path.join(d, "a.safetensors")
            r = run_cli_process("diffusers", udir, out)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("wrote %s: unet 8x8" % out, r.stdout)
            meta = same(out)
            self.assertEqual(meta["lgd.prediction"], "eps")
            self.assertEqual(json.loads(meta["diffusers.scheduler_config"])["_class_name"],
                             "DDPMScheduler")
            # a variant in a directory of its own, the scheduler given explicitly
            vdir = os.path.join(d, "variant")
            unet.save_pretrained(vdir, variant="fp16")
            r = run_cli("diffusers", vdir, out, "--variant", "fp16", "--scheduler",
                        os.path.join(d, "bin", "scheduler", "scheduler_config.json"),
                        "--time-input", "discrete_round")
            self.assertIsNone(r)
            self.assertEqual(same(out)["lgd.time_input"], "discrete_round")
            # no scheduler anywhere: refused, the paths named
            r = run_cli("diffusers", vdir, out, "--variant", "fp16")
            self.assertIn("no scheduler config", r)
            # a pipeline directory
            pdir = os.path.join(d, "pipe")
            diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(pdir)
            self.assertIsNone(run_cli("diffusers", pdir, out))
            same(out)
            # a refused configuration
            bad = diffusers.UNet2DModel(**unet_config(freq_shift=1))
            bdir = save_pretrained_pair(bad, sched, os.path.join(d, "bad"))
            r = run_cli_process("diffusers", bdir, out)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot convert %s: freq_shift = 1" % bdir, r.stderr)


NO_LGD = ("the lgd Python package cannot load liblgd (%s); set LGD_BUILD_DIR to a build"
          % LGD_PROBLEM)


@unittest.skipIf(torch is None, NO_TORCH)
@unittest.skipIf(lgd is None, NO_LGD)
class TestLiblgdKeys(unittest.TestCase):
    """The two keys liblgd 0.5.0 reads for diffusers models, on the committed fixture
    unet_head_channels (whose values the C tests check against PyTorch)."""

    def load(self, ctx, edit):
        meta, tensors = C.read_safetensors(os.path.join(ROOT, "tests", "fixtures", "nn",
                                                        "unet_head_channels.safetensors"))
        meta, tensors = edit(dict(meta), dict(tensors))
        return lgd.Network.from_bytes(ctx, C.serialize_safetensors(tensors, meta))

    def test_keys(self):
        with lgd.Context() as ctx:
            self.load(ctx, lambda m, t: (m, t))

            def both(m, t):
                m["lgd.num_heads"] = "2"
                return m, t
            with self.assertRaisesRegex(lgd.FormatError, "not both"):
                self.load(ctx, both)

            def odd(m, t):
                m["lgd.num_head_channels"] = "3"
                return m, t
            with self.assertRaisesRegex(lgd.FormatError, "num_head_channels = 3"):
                self.load(ctx, odd)

            def normed(m, t):  # a middle GroupNorm asked for, its tensors absent
                m["lgd.middle_attention_groups"] = "2"
                return m, t
            with self.assertRaisesRegex(lgd.FormatError, "middle_block.1.norm.weight"):
                self.load(ctx, normed)

            def with_norm(m, t):  # ... and present: loads
                m["lgd.middle_attention_groups"] = "4"
                t["middle_block.1.norm.weight"] = torch.ones(8)
                t["middle_block.1.norm.bias"] = torch.zeros(8)
                return m, t
            self.load(ctx, with_norm)


@unittest.skipIf(torch is None, NO_TORCH)
@unittest.skipIf(diffusers is None, NO_DIFFUSERS)
@unittest.skipIf(lgd is None, NO_LGD)
class TestLiblgdParity(unittest.TestCase):
    """liblgd (float32) against the diffusers module (float64 autograd)."""

    def check(self, name):
        unet, sched = make_model(name)
        with tempfile.TemporaryDirectory() as d:
            udir = save_pretrained_pair(unet, sched, d)
            path = os.path.join(d, name + ".safetensors")
            self.assertIsNone(run_cli("diffusers", udir, path))
            meta, _ = C.read_safetensors(path)
            adapter = C.diffusers_scheduler_adapter(sched.config)
            prediction = adapter["prediction"]
            keep = unet.config.in_channels
            u64 = unet.double()
            g = torch.Generator().manual_seed(7)
            B = 2
            dim = keep * unet.config.sample_size ** 2
            labels, cond = None, None
            if unet.config.num_class_embeds:
                labels = torch.tensor([2, 0])
                cond = torch.nn.functional.one_hot(labels, unet.config.num_class_embeds)
                cond = cond.to(torch.float32).numpy()
            err = {"F": 0.0, "D": 0.0, "VJP": 0.0, "t": 0.0}
            with lgd.Context() as ctx:
                net = lgd.Network.load(ctx, path)
                self.assertEqual((net.dim, net.out_dim), (dim, dim))
                model = lgd.Model.from_network(net)
                for i, s in enumerate(SIGMAS):
                    x = torch.randn(B, dim, generator=g, dtype=torch.float32)
                    v = torch.randn(B, dim, generator=g, dtype=torch.float32)
                    # the time input: liblgd's against k-diffusion's rule on the
                    # scheduler's own alphas_cumprod
                    t = model.network_time(s)
                    t_ref = time_of_sigma(sched.alphas_cumprod, s)
                    err["t"] = max(err["t"], abs(t - t_ref) / max(1.0, t_ref))
                    # the raw network at that t
                    x_in = (x.double() / math.sqrt(1 + s * s)).to(torch.float32)
                    with torch.no_grad():
                        f_ref = diffusers_f(u64, x_in.double(), t, labels, keep)
                    f = net.forward(x_in.numpy(), t, cond)
                    err["F"] = max(err["F"], rel_err(f, f_ref))
                    # the denoiser and its VJP through the file's adapter
                    c_in, c_skip, c_out = coefficients(prediction, s)
                    x64 = x.double().requires_grad_(True)
                    d_ref = c_skip * x64 + c_out * diffusers_f(u64, c_in * x64, t, labels, keep)
                    (vjp_ref,) = torch.autograd.grad(d_ref, x64, v.double())
                    d_out = model.denoise(x.numpy(), s, cond)
                    vjp = model.vjp(x.numpy(), s, v.numpy(), cond)
                    err["D"] = max(err["D"], rel_err(d_out, d_ref.detach()))
                    err["VJP"] = max(err["VJP"], rel_err(vjp, vjp_ref))
            MEASURED[name] = (meta, err)
            self.assertLess(err["t"], 1e-5, name)
            for k in ("F", "D", "VJP"):
                self.assertLess(err[k], TOL, "%s: %s relative error %.3g" % (name, k, err[k]))
            self.assertEqual(meta["lgd.prediction"], prediction)

    def test_c1_8_attn_eps(self):
        self.check("c1_8_attn_eps")

    def test_c3_16_scaleshift_v(self):
        self.check("c3_16_scaleshift_v")

    def test_c3_32_noattn_classes(self):
        self.check("c3_32_noattn_classes")

    def test_c1_16_scaleshift_x0(self):
        self.check("c1_16_scaleshift_x0")

    def test_c3_8_nomid_learnedvar(self):
        self.check("c3_8_nomid_learnedvar")

    @classmethod
    def tearDownClass(cls):
        if not MEASURED:
            return
        print("\nliblgd (float32) vs diffusers (float64), max |error| / max |reference| "
              "over sigma in %s:" % (SIGMAS,), file=sys.stderr)
        for name in CONFIGS:
            if name in MEASURED:
                meta, e = MEASURED[name]
                heads = meta.get("lgd.num_heads") or ("d=" + meta["lgd.num_head_channels"])
                print("  %-24s F %.2e  D %.2e  VJP %.2e  (t %.1e; %s, heads %s)"
                      % (name, e["F"], e["D"], e["VJP"], e["t"], meta["lgd.prediction"],
                         heads), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
