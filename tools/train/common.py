"""What the training scripts of tools/train/ share.

  * setup(): OMP_WAIT_POLICY=passive (set before torch is imported: on a shared
    2-core machine OpenMP threads that spin while waiting make every op ~10x slower),
    2 intra-op threads, every seed;
  * the digit split of data/digits/ (tools/train/make_digits_split.py);
  * EDM preconditioning (Karras et al. 2022), the parameterisation of liblgd's
    LGD_PREDICT_EDM adapter with LGD_TIME_LOG_SIGMA: D(x, sigma) = c_skip x + c_out
    F(c_in x, ln(sigma) / 4), c_in = 1 / sqrt(sigma^2 + sd^2), c_skip = sd^2 / (sigma^2 +
    sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2) (src/models/model_network.c);
  * an exponential moving average of the weights;
  * the Karras sigma grid and EDM's Heun sampler (for the quality checks in PyTorch);
  * export: the converter's save_network() plus `train.*` metadata (ignored by liblgd),
    and NAME.ref.safetensors, the reference the shipped-model test checks;
  * the parity check of an exported file in liblgd (the Python package `lgd`, with
    LGD_BUILD_DIR or LGD_LIBRARY naming the library) against PyTorch;
  * a CSV writer for the training curves.
"""

import csv
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import lgd_convert as C  # noqa: E402
import lgd_torch_models as M  # noqa: E402

DATA_DIR = os.path.join(ROOT, "data", "digits")
MODEL_DIR = os.path.join(ROOT, "models")
CURVE_DIR = os.path.join(ROOT, "docs", "training")

# The sampler's sigma range (lgd_sampler_options defaults: Karras 80 -> 0.002).
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0


def setup(seed, threads=2):
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % (2 ** 32))
    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------------------
# data

def load_digits_split(split):
    """(images float32 [N][64] in [-1, 1], labels int64 [N]) of data/digits/."""
    x = np.load(os.path.join(DATA_DIR, "%s_images.npy" % split), allow_pickle=False)
    y = np.load(os.path.join(DATA_DIR, "%s_labels.npy" % split), allow_pickle=False)
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 64 or y.shape != (x.shape[0],):
        raise ValueError("data/digits/%s_*.npy: unexpected shapes %s %s"
                         % (split, x.shape, y.shape))
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


# ---------------------------------------------------------------------------
# EDM

def edm_coeffs(sigma, sigma_data):
    """(c_in, c_skip, c_out, c_noise) of EDM for a tensor of sigmas."""
    s2, sd2 = sigma * sigma, sigma_data * sigma_data
    c_in = 1.0 / torch.sqrt(s2 + sd2)
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / torch.sqrt(s2 + sd2)
    c_noise = 0.25 * torch.log(sigma)
    return c_in, c_skip, c_out, c_noise


def edm_denoise(net, x, sigma, sigma_data):
    """D(x, sigma) for x [B][dim] and sigma [B] (or a float)."""
    if not torch.is_tensor(sigma):
        sigma = torch.full((x.shape[0],), float(sigma), dtype=x.dtype)
    c_in, c_skip, c_out, c_noise = edm_coeffs(sigma, sigma_data)
    f = net(c_in[:, None] * x, c_noise)
    return c_skip[:, None] * x + c_out[:, None] * f


def edm_loss(net, x0, sigma, eps, sigma_data):
    """EDM's weighted loss lambda(sigma) |D - x0|^2 = |F - F_target|^2, per row (mean
    over the dimensions)."""
    c_in, c_skip, c_out, c_noise = edm_coeffs(sigma, sigma_data)
    x = x0 + sigma[:, None] * eps
    f = net(c_in[:, None] * x, c_noise)
    target = (x0 - c_skip[:, None] * x) / c_out[:, None]
    return ((f - target) ** 2).mean(dim=1)


def sample_sigma_lognormal(n, gen, p_mean=-1.2, p_std=1.2):
    """EDM's training distribution ln(sigma) ~ N(p_mean, p_std^2)."""
    return torch.exp(p_mean + p_std * torch.randn(n, generator=gen))


def sample_sigma_loguniform(n, gen, lo=SIGMA_MIN, hi=SIGMA_MAX):
    u = torch.rand(n, generator=gen)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def karras_sigmas(steps, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=7.0):
    """out[steps + 1]: the Karras grid, last entry 0 (lgd_schedule_karras)."""
    i = torch.arange(steps, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    s = (a + i / max(steps - 1, 1) * (b - a)) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


@torch.no_grad()
def heun_sample(denoise, n, dim, steps, gen):
    """EDM's deterministic Heun sampler (Algorithm 1) from sigma_max noise; denoise(x,
    sigma float) -> D. Returns float32 [n][dim]."""
    sig = karras_sigmas(steps)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64) * sig[0]
    for i in range(steps):
        s, s_next = float(sig[i]), float(sig[i + 1])
        d = (x - denoise(x.float(), s).double()) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = (x_next - denoise(x_next.float(), s_next).double()) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)
        x = x_next
    return x.float()


class EMA:
    """Exponential moving average of a module's parameters, with the usual warm-up: update
    n uses the decay min(decay, (1 + n) / (10 + n)), so the random initial weights do not
    linger (with a fixed 0.999 they would still weigh 0.999^3000 = 5 % after 3,000 steps)."""

    def __init__(self, module, decay):
        import copy
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module):
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        for pe, p in zip(self.module.parameters(), module.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1.0 - d)


# ---------------------------------------------------------------------------
# curves and timing

class Curve:
    """A CSV of one row per epoch (or evaluation), written as it goes."""

    def __init__(self, name, fields):
        os.makedirs(CURVE_DIR, exist_ok=True)
        self.path = os.path.join(CURVE_DIR, name)
        self.fields = list(fields)
        self._f = open(self.path, "w", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(self.fields)

    def add(self, **row):
        vals = []
        for k in self.fields:
            v = row[k]
            vals.append(("%.6g" % v) if isinstance(v, float) else str(v))
        self._w.writerow(vals)
        self._f.flush()

    def close(self):
        self._f.close()


class Timer:
    def __init__(self):
        self.t0 = time.time()
        self.cpu0 = time.process_time()

    def wall(self):
        return time.time() - self.t0

    def cpu(self):
        return time.process_time() - self.cpu0


# ---------------------------------------------------------------------------
# export and references

def export(module, name, prediction, time_input, sigma_data=None, extra=None):
    """models/NAME.safetensors: the converter's file plus `train.*` metadata (liblgd
    reads only lgd.* keys). Returns the path."""
    os.makedirs(MODEL_DIR, exist_ok=True)
    path = os.path.join(MODEL_DIR, name + ".safetensors")
    module = module.float().eval()
    C.save_network(module, path, prediction=prediction, time_input=time_input,
                   sigma_data=sigma_data)
    if extra:
        meta, tensors = C.read_safetensors(path)
        for k, v in extra.items():
            if not k.startswith("train."):
                raise ValueError("extra metadata keys start with train. (%s)" % k)
            meta[k] = str(v)
        C.write_safetensors(path, tensors, meta)
    # the file loads back into the same module (names, shapes, values)
    back, _, _ = C.load_network(path)
    for (k1, v1), (k2, v2) in zip(module.state_dict().items(), back.state_dict().items()):
        if k1 != k2 or not torch.equal(v1.float(), v2):
            raise RuntimeError("%s: %s does not round-trip" % (path, k1))
    return path


def _f64(module):
    import copy
    return copy.deepcopy(module).float().double().eval()


def reference_tensors(module, x_in, t, cot):
    """The converter's reference set (x_in, t, out, cotangent, vjp; float64 from the
    float32 weights, rounded to float32) for given inputs."""
    m64 = _f64(module)
    x64 = x_in.double().clone().requires_grad_(True)
    out = m64(x64, torch.tensor([float(t)], dtype=torch.float64))
    (vjp,) = torch.autograd.grad(out, x64, cot.double())
    return {"x_in": x_in.float().contiguous(), "t": torch.tensor([float(t)], dtype=torch.float32),
            "out": out.detach().float().contiguous(), "cotangent": cot.float().contiguous(),
            "vjp": vjp.float().contiguous()}


def denoiser_reference(module, x0, eps, sigmas, sigma_data):
    """model_sigma [S], model_x [S][B][dim] = x0 + sigma eps, model_out = D(model_x, sigma)
    [S][B][dim] by EDM's preconditioning, in float64."""
    m64 = _f64(module)
    xs, outs = [], []
    with torch.no_grad():
        for s in sigmas:
            x = (x0.double() + float(s) * eps.double()).float()      # what the test feeds
            xs.append(x)
            outs.append(edm_denoise(m64, x.double(), float(s), float(sigma_data)).float())
    return {"model_sigma": torch.tensor([float(s) for s in sigmas], dtype=torch.float32),
            "model_x": torch.stack(xs).contiguous(), "model_out": torch.stack(outs).contiguous()}


def classifier_loss_reference(module, x, labels, t=None, sigma=None, sigma_data=None):
    """loss_x [B][dim], loss_labels [B] (as floats), loss [B] = -log softmax(f)[y] and
    loss_grad [B][dim] = d loss / d x, in float64. Clean (t given): f = net(x, t). Noisy
    (sigma given): f = net(c_in(sigma) x, ln(sigma) / 4) with EDM's c_in."""
    m64 = _f64(module)
    x64 = x.double().clone().requires_grad_(True)
    if sigma is None:
        f = m64(x64, torch.tensor([float(t)], dtype=torch.float64))
    else:
        s = torch.tensor([float(sigma)], dtype=torch.float64)
        c_in, _, _, c_noise = edm_coeffs(s, float(sigma_data))
        f = m64(c_in * x64, c_noise)
    loss = torch.nn.functional.cross_entropy(f, labels, reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), x64)
    ref = {"loss_x": x.float().contiguous(), "loss_labels": labels.float(),
           "loss": loss.detach().float(), "loss_grad": g.float().contiguous()}
    if sigma is not None:
        ref["loss_sigma"] = torch.tensor([float(sigma)], dtype=torch.float32)
    else:
        ref["loss_t"] = torch.tensor([float(t)], dtype=torch.float32)
    return ref


def write_reference(name, tensors):
    path = os.path.join(MODEL_DIR, name + ".ref.safetensors")
    C.write_safetensors(path, tensors, {"train.note": "reference of %s.safetensors "
                                        "(tools/train/common.py): float64 PyTorch, "
                                        "rounded to float32" % name})
    return path


# ---------------------------------------------------------------------------
# parity in liblgd

def import_lgd():
    """The Python package `lgd` from bindings/python/src, with the library of
    LGD_BUILD_DIR / LGD_LIBRARY (docs/python.md); None when it cannot be loaded."""
    src = os.path.join(ROOT, "bindings", "python", "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    try:
        import lgd  # noqa: F401
        return lgd
    except ImportError as e:
        print("parity: cannot import lgd (%s); set LGD_BUILD_DIR to a meson build" % e)
        return None


def _rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def parity_check(name, tol=1e-4):
    """Loads models/NAME.safetensors in liblgd (one thread) and compares its forward
    pass, VJP and (denoisers) adapted D(x, sigma) with NAME.ref.safetensors. Returns
    {check: max relative error}; raises when one is above tol."""
    lgd = import_lgd()
    if lgd is None:
        raise RuntimeError("parity check needs the lgd package (LGD_BUILD_DIR)")
    path = os.path.join(MODEL_DIR, name + ".safetensors")
    _, ref = C.read_safetensors(os.path.join(MODEL_DIR, name + ".ref.safetensors"))
    ref = {k: v.numpy() for k, v in ref.items()}
    errs = {}
    with lgd.Context(num_threads=1) as ctx:
        net = lgd.Network.load(ctx, path)
        t = float(ref["t"][0])
        errs["forward"] = _rel(net.forward(ref["x_in"], t), ref["out"])
        errs["vjp"] = _rel(net.vjp(ref["x_in"], t, ref["cotangent"]), ref["vjp"])
        if "model_sigma" in ref:
            model = lgd.Model.load(ctx, path)
            e = 0.0
            for i, s in enumerate(ref["model_sigma"]):
                e = max(e, _rel(model.denoise(ref["model_x"][i], float(s)), ref["model_out"][i]))
            errs["denoise"] = e
        if "loss" in ref:
            # the cross-entropy through the raw network (liblgd's network loss is
            # checked by tests/test_shipped_models.c)
            x = ref["loss_x"].astype(np.float32)
            y = ref["loss_labels"].astype(np.int64)
            if "loss_sigma" in ref:
                s = float(ref["loss_sigma"][0])
                ad = net.adapter()
                sd = float(ad.sigma_data)
                c_in = 1.0 / math.sqrt(s * s + sd * sd)
                xin, tt = (c_in * x).astype(np.float32), 0.25 * math.log(s)
            else:
                c_in, xin, tt = 1.0, x, float(ref["loss_t"][0])
            f = net.forward(xin, np.float32(tt)).astype(np.float64)
            mx = f.max(axis=1, keepdims=True)
            lse = mx[:, 0] + np.log(np.exp(f - mx).sum(axis=1))
            loss = lse - f[np.arange(len(y)), y]
            p = np.exp(f - lse[:, None])
            p[np.arange(len(y)), y] -= 1.0
            g = c_in * net.vjp(xin, np.float32(tt), p.astype(np.float32))
            errs["loss"] = _rel(loss, ref["loss"])
            errs["loss_grad"] = _rel(g, ref["loss_grad"])
    bad = {k: v for k, v in errs.items() if not v <= tol}
    print("parity %s (liblgd %s): %s" % (name, lgd.library_path,
                                         ", ".join("%s %.2e" % kv for kv in errs.items())))
    if bad:
        raise RuntimeError("%s: parity above %g: %s" % (name, tol, bad))
    return errs


def frechet_distance(a, b):
    """Frechet distance between Gaussians fitted to the rows of a and b (float64)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(s1 s2) through the symmetric form sqrt(s1)^(1/2) s2 sqrt(s1)^(1/2)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def write_png_grid(path, images, rows, cols, size=8, scale=4, pad=1):
    """A grayscale PNG of images ([N][size*size] in [-1, 1], row-major; the first
    rows * cols) on a grid, each pixel scale x scale, pad pixels of mid grey between.
    zlib + struct only."""
    import struct as st
    import zlib
    cell = size * scale + pad
    h, w = rows * cell + pad, cols * cell + pad
    canvas = np.full((h, w), 128, dtype=np.uint8)
    imgs = np.asarray(images, dtype=np.float64)[:rows * cols].reshape(-1, size, size)
    for k, im in enumerate(imgs):
        r, c = divmod(k, cols)
        v = np.clip(np.rint((im + 1.0) * 127.5), 0, 255).astype(np.uint8)
        v = np.kron(v, np.ones((scale, scale), dtype=np.uint8))
        y0, x0 = pad + r * cell, pad + c * cell
        canvas[y0:y0 + size * scale, x0:x0 + size * scale] = v
    raw = b"".join(b"\x00" + canvas[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return (st.pack(">I", len(data)) + tag + data
                + st.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", st.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)
