"""lgd.torch: PyTorch modules as models (skipped when PyTorch is not installed)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lgd  # noqa: E402
import lgd.torch as lt  # noqa: E402


class EpsNet(torch.nn.Module):
    """F(x_in, t) = tanh(W x_in) + 0.01 t, a smooth eps-prediction network."""

    def __init__(self, dim: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(dim, dim, generator=g) / dim ** 0.5)

    def forward(self, x, t, cond=None):
        y = torch.tanh(x @ self.w.T) + 0.01 * t[:, None]
        return y if cond is None else y * cond[:, :1]


def numpy_net(w):
    def forward(x_in, t, cond):
        return np.tanh(x_in.astype(np.float64) @ w.T) + 0.01 * t

    def vjp(x_in, t, cond, v):
        d = 1 - np.tanh(x_in.astype(np.float64) @ w.T) ** 2
        return (v * d) @ w

    return forward, vjp


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_module_matches_the_same_network_in_numpy(ctx, dtype):
    """A float32 module, and a float64 one (the adapter hands it float64 inputs: its
    parameters' dtype)."""
    net = EpsNet(4).to(dtype)
    w = net.w.detach().double().numpy()
    adapter = dict(prediction="eps", time_input="sigma")
    m = lt.from_module(ctx, net, dim=4, **adapter)
    f, v = numpy_net(w)
    ref = lgd.Model.from_network_callables(ctx, 4, f, v, adapter=lgd.Adapter(**adapter))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    vv = rng.standard_normal((5, 4)).astype(np.float32)
    for sigma in (0.3, 2.0):
        np.testing.assert_allclose(m.denoise(x, sigma), ref.denoise(x, sigma), rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(m.vjp(x, sigma, vv), ref.vjp(x, sigma, vv), rtol=1e-5,
                                   atol=1e-5)


def test_module_in_guided_sampling_and_errors(ctx):
    net = EpsNet(3)
    ac = lgd.schedule.vp_alphas_cumprod("vp_linear", 1000)
    m = lt.from_module(ctx, net, input_shape=(3,), alphas_cumprod=ac)
    loss = lgd.Loss.squared_error(ctx, [0.5, 0.0, -0.5])
    s = lgd.Sampler(lgd.Guidance.mc(m, loss, 4), "ddim", steps=5)
    x = s.run(batch=6, seed=1)
    assert x.shape == (6, 3) and np.isfinite(x).all()

    class Broken(torch.nn.Module):
        def forward(self, x, t):
            raise RuntimeError("CUDA out of memory (pretend)")

    b = lt.from_module(ctx, Broken(), dim=3, prediction="x0", time_input="sigma")
    with pytest.raises(RuntimeError, match="pretend") as info:
        b.denoise(np.zeros((2, 3)), 1.0)
    assert info.value.lgd_status == lgd.CallbackError.status
    with pytest.raises(ValueError, match="dim"):
        lt.from_module(ctx, net)


def test_conditional_module_and_denoiser(ctx):
    net = EpsNet(2)
    m = lt.from_module(ctx, net, dim=2, cond_dim=1, prediction="x0", time_input="sigma")
    cond = np.array([[2.0], [0.5]], np.float32)
    x = np.ones((2, 2), np.float32)
    out = m.denoise(x, 1.0, cond)
    # the module's input x_in = x / sqrt(sigma^2 + 1) in the module's dtype (float32): under
    # numpy 2's promotion (NEP 50) float32 / np.float64 is float64, so cast it back
    x_in = (x / np.sqrt(2.0)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x_in), torch.ones(2), torch.from_numpy(cond)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)

    class Shrink(torch.nn.Module):
        def forward(self, x, sigma):
            return x / (1 + sigma[:, None] ** 2)

    d = lt.from_denoiser(ctx, Shrink(), dim=2)
    np.testing.assert_allclose(d.denoise(x, 1.0), x / 2, rtol=1e-6)
    np.testing.assert_allclose(d.vjp(x, 1.0, x), x / 2, rtol=1e-6)
