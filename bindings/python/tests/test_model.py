"""Models: the Gaussian mixture against its closed forms, networks from files against
their PyTorch references, models written in Python, adapters."""
from __future__ import annotations

import numpy as np
import pytest

import lgd
from conftest import FIXTURES, read_safetensors

W = np.array([0.3, 0.7])
MU = np.array([[-1.0, 0.5], [1.5, -0.5]])
VAR = np.array([0.2, 0.4])  # isotropic variances


def gmm_reference(x, sigma):
    """float64 closed forms of the isotropic mixture: D(x, sigma), log p_sigma(x)."""
    x = np.asarray(x, np.float64)
    v = VAR + sigma ** 2                                      # [K]
    d = x[:, None, :] - MU[None]                              # [B][K][dim]
    logn = (np.log(W) - 0.5 * (d ** 2).sum(-1) / v - 0.5 * MU.shape[1] * np.log(2 * np.pi * v))
    m = logn.max(1, keepdims=True)
    logp = (m + np.log(np.exp(logn - m).sum(1, keepdims=True)))[:, 0]
    r = np.exp(logn - logp[:, None])                          # responsibilities
    post = MU[None] + (VAR / v)[None, :, None] * d            # posterior means per component
    return (r[..., None] * post).sum(1), logp


def fd_vjp(f, x, v, h=1e-6):
    """J^T v of f at x by central differences (float64)."""
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        for j in range(x.shape[1]):
            e = np.zeros_like(x)
            e[b, j] = h
            out[b, j] = ((f(x + e) - f(x - e))[b] @ v[b]) / (2 * h)
    return out


@pytest.fixture
def mixture(ctx):
    return lgd.Model.gmm(ctx, W, MU, VAR)


X = np.array([[0.3, -0.2], [-1.2, 0.9], [2.0, 1.0]], np.float32)
V = np.array([[1.0, -0.5], [0.25, 2.0], [-1.0, 0.0]], np.float32)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 5.0])
def test_gmm_denoiser_score_density(mixture, sigma):
    d_ref, logp_ref = gmm_reference(X, sigma)
    assert mixture.dim == 2 and mixture.cond_dim == 0 and mixture.has_exact_posterior
    np.testing.assert_allclose(mixture.denoise(X, sigma), d_ref, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(mixture.score(X, sigma), (d_ref - X) / sigma ** 2, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(mixture.log_density(X, sigma), logp_ref, rtol=1e-5, atol=1e-5)
    ref = fd_vjp(lambda x: gmm_reference(x, sigma)[0], X.astype(np.float64), V)
    np.testing.assert_allclose(mixture.vjp(X, sigma, V), ref, rtol=1e-4, atol=1e-4)


def test_gmm_layouts_agree(ctx):
    iso = lgd.Model.gmm(ctx, W, MU, VAR)
    diag = lgd.Model.gmm(ctx, W, MU, np.stack([VAR, VAR], 1))
    full = lgd.Model.gmm(ctx, W, MU, np.stack([v * np.eye(2) for v in VAR]))
    for m in (diag, full):
        np.testing.assert_allclose(m.denoise(X, 0.7), iso.denoise(X, 0.7), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="covariances"):
        lgd.Model.gmm(ctx, W, MU, VAR, covariance="diagonal")
    with pytest.raises(ValueError, match="weights"):
        lgd.Model.gmm(ctx, [1.0], MU, VAR)
    with pytest.raises(lgd.InvalidArgumentError, match="weight"):
        lgd.Model.gmm(ctx, [-1.0, 1.0], MU, VAR)


def test_out_arrays_and_tensors(mixture, ctx):
    out = np.empty((3, 2), np.float32)
    r = mixture.denoise(X, 1.0, out=out)
    assert r is out
    np.testing.assert_array_equal(out, mixture.denoise(X, 1.0))
    tx = lgd.Tensor.from_array(ctx, X)
    to = lgd.Tensor.zeros(ctx, (3, 2))
    assert mixture.denoise(tx, 1.0, out=to) is to
    np.testing.assert_array_equal(to.download(), out)
    with pytest.raises(ValueError, match="shape"):
        mixture.denoise(X, 1.0, out=np.empty((2, 2), np.float32))
    with pytest.raises(TypeError, match="float32"):
        mixture.denoise(X, 1.0, out=np.empty((3, 2)))


def test_sample_posterior(mixture):
    x = X[:2]
    d = mixture.sample_posterior(x, 0.8, n=20000, seed=3)
    assert d.shape == (2, 20000, 2)
    mean = mixture.denoise(x, 0.8)
    se = d.std(1) / np.sqrt(20000)
    assert (np.abs(d.mean(1) - mean) < 5 * se + 1e-6).all()
    # rows are keyed by first_row: a split batch gives the same draws
    a = mixture.sample_posterior(X, 0.8, n=4, seed=9)
    b = mixture.sample_posterior(X[1:], 0.8, n=4, seed=9, first_row=1)
    np.testing.assert_array_equal(a[1:], b)
    np.testing.assert_array_equal(mixture.sample_posterior(x, 0.0, n=2)[:, 0], x)


def test_trajectory_prior(ctx):
    m = lgd.Model.trajectory_prior(ctx, frames=8, headings=2, turns=1)
    assert m.dim == 16 and m.has_exact_posterior
    assert np.isfinite(m.denoise(np.zeros((2, 16)), 1.0)).all()
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Model.trajectory_prior(ctx, frames=0)


# ---- models written in Python ----

def np_denoise(x, sigma, cond):
    return gmm_reference(x, sigma)[0]


def np_vjp(x, sigma, cond, v):
    return fd_vjp(lambda y: gmm_reference(y, sigma)[0], x.astype(np.float64), v, h=1e-5)


def test_callable_model_matches_the_mixture(ctx, mixture):
    m = lgd.Model.from_callables(ctx, 2, np_denoise, np_vjp)
    assert m.dim == 2 and not m.has_exact_posterior
    np.testing.assert_allclose(m.denoise(X, 0.5), mixture.denoise(X, 0.5), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m.vjp(X, 0.5, V), mixture.vjp(X, 0.5, V), rtol=1e-3, atol=1e-4)
    with pytest.raises(lgd.UnsupportedError):
        m.log_density(X, 0.5)
    with pytest.raises(lgd.UnsupportedError):
        m.sample_posterior(X, 0.5)


def test_callable_model_inplace_and_views(ctx):
    seen = {}

    def denoise(x, sigma, cond, out):
        seen["x"] = (x.shape, x.dtype, x.flags.writeable, sigma, cond)
        out[:] = 0.5 * x

    def vjp(x, sigma, cond, v, out):
        out[:] = 0.5 * v

    m = lgd.Model.from_callables(ctx, 2, denoise, vjp, inplace=True)
    np.testing.assert_array_equal(m.denoise(X, 2.0), 0.5 * X)
    assert seen["x"] == ((3, 2), np.float32, False, 2.0, None)
    np.testing.assert_array_equal(m.vjp(X, 2.0, V), 0.5 * V)
    # a model without a VJP: denoising works, the VJP is unsupported
    m2 = lgd.Model.from_callables(ctx, 2, lambda x, s, c: x)
    with pytest.raises(lgd.UnsupportedError):
        m2.vjp(X, 1.0, V)


def test_callable_model_wrong_results(ctx):
    m = lgd.Model.from_callables(ctx, 2, lambda x, s, c: x[:, :1])
    with pytest.raises(ValueError, match=r"shape \(3, 1\); expected \(3, 2\)") as e:
        m.denoise(X, 1.0)
    assert e.value.lgd_status == lgd.CallbackError.status
    m = lgd.Model.from_callables(ctx, 2, lambda x, s, c: None)
    with pytest.raises(ValueError, match="returned None"):
        m.denoise(X, 1.0)
    m = lgd.Model.from_callables(ctx, 2, lambda x, s, c, out: None, inplace=True)
    with pytest.raises(lgd.CallbackError, match="unwritten"):
        m.denoise(X, 1.0)  # check_callback_outputs is on in the fixture
    m = lgd.Model.from_callables(ctx, 2, lambda x, s, c: x * np.nan)
    with pytest.raises(lgd.NonFiniteError):
        m.denoise(X, 1.0)
    with pytest.raises(TypeError):
        lgd.Model.from_callables(ctx, 2, "not callable")
    with pytest.raises(lgd.InvalidArgumentError, match="dim"):
        lgd.Model.from_callables(ctx, 0, np_denoise)


def test_conditional_callable_model(ctx):
    def denoise(x, sigma, cond):
        assert cond is not None and cond.shape == (x.shape[0], 1)
        return x * cond

    m = lgd.Model.from_callables(ctx, 2, denoise, lambda x, s, c, v: v * c, cond_dim=1)
    assert m.cond_dim == 1
    cond = np.array([[1.0], [2.0], [3.0]], np.float32)
    np.testing.assert_array_equal(m.denoise(X, 1.0, cond), X * cond)
    with pytest.raises(lgd.ShapeMismatchError):
        m.denoise(X, 1.0, cond[:2])
    # through guidance: the condition rows given to set_condition reach the model
    loss = lgd.Loss.squared_error(ctx, [0.0, 0.0])
    g = lgd.Guidance.dps(m, loss)
    g.set_condition(cond)
    _, xhat = g.term(X, 1.0, xhat=True)
    np.testing.assert_array_equal(xhat, X * cond)
    g.set_condition(None)


# ---- networks from files ----

@pytest.mark.parametrize("name", ["mlp", "mlp_cond", "unet"])
def test_network_against_pytorch_reference(ctx, name):
    net = lgd.Network.load(ctx, FIXTURES / f"{name}.safetensors")
    ref = read_safetensors(FIXTURES / f"{name}.ref.safetensors")
    x, t = ref["x_in"].reshape(ref["x_in"].shape[0], -1), float(ref["t"][0])
    cond = ref.get("cond")
    assert net.dim == x.shape[1] and net.cond_dim == (0 if cond is None else cond.shape[1])
    assert net.parameter_count > 0
    assert net.metadata("lgd.architecture") in ("mlp", "unet")
    assert net.metadata("no.such.key") is None
    out = net.forward(x, t, cond)
    cot = ref["cotangent"].reshape(x.shape[0], -1)
    vjp, fwd = net.vjp(x, t, cot, cond, return_forward=True)
    scale = np.abs(ref["out"]).max()
    assert np.abs(out - ref["out"].reshape(out.shape)).max() / scale < 1e-4
    np.testing.assert_array_equal(fwd, out)
    assert np.abs(vjp - ref["vjp"].reshape(vjp.shape)).max() / np.abs(ref["vjp"]).max() < 1e-4


def test_model_load_and_adapters(ctx):
    path = FIXTURES / "mlp.safetensors"
    m = lgd.Model.load(ctx, path)
    net = lgd.Network.load(ctx, path)
    ad = net.adapter()
    assert ad.prediction == lgd.Prediction.EPS and ad.time_input == lgd.TimeInput.DISCRETE
    assert ad.alphas_cumprod is not None and ad.alphas_cumprod.shape == (1000,)
    # the converter's DDPM schedule (PyTorch) and the library's agree to float rounding
    np.testing.assert_allclose(ad.alphas_cumprod,
                               lgd.schedule.vp_alphas_cumprod("vp_linear", 1000), rtol=1e-6)
    m2 = lgd.Model.from_network(net)
    net.close()  # the model keeps the network
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(3, 8)
    np.testing.assert_array_equal(m.denoise(x, 2.0), m2.denoise(x, 2.0))
    # eps adapter: D(x, sigma) = x - sigma F(c_in x, t(sigma))
    t = m.network_time(2.0)
    assert 0 < t < 1000
    net2 = lgd.Network.load(ctx, path)
    f = net2.forward(x / np.sqrt(1 + 4.0), t)
    np.testing.assert_allclose(m.denoise(x, 2.0), x - 2.0 * f, rtol=1e-5, atol=1e-5)
    # another adapter: x0 prediction with sigma as the time input
    m3 = lgd.Model.from_network(net2, lgd.Adapter("x0", "sigma"))
    assert m3.network_time(2.0) == pytest.approx(2.0)
    np.testing.assert_allclose(m3.denoise(x, 2.0), net2.forward(x / np.sqrt(5.0), 2.0),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(lgd.UnsupportedError):
        lgd.Model.gmm(ctx, [1], [[0.0]], [1.0]).network_time(1.0)


def test_network_load_errors(ctx, tmp_path):
    with pytest.raises(lgd.LgdIOError) as e:
        lgd.Network.load(ctx, tmp_path / "missing.safetensors")
    assert isinstance(e.value, OSError) and "missing.safetensors" in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(lgd.FormatError):
        lgd.Network.load(ctx, bad)
    with pytest.raises(lgd.FormatError):
        lgd.Network.from_bytes(ctx, b"garbage")
    raw = (FIXTURES / "linear.safetensors").read_bytes()
    assert lgd.Network.from_bytes(ctx, raw).dim == 6
    with pytest.raises(lgd.LgdIOError):
        lgd.Model.load(ctx, tmp_path / "missing.safetensors")


def test_network_callables_with_adapter(ctx):
    rng = np.random.default_rng(0)
    Wn = rng.standard_normal((3, 3)).astype(np.float32)

    def forward(x_in, t, cond):
        return x_in @ Wn.T + np.float32(t)

    def vjp(x_in, t, cond, v):
        return v @ Wn

    m = lgd.Model.from_network_callables(ctx, 3, forward, vjp,
                                         adapter=lgd.Adapter("eps", "sigma"))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    sigma = 1.5
    cin = 1 / np.sqrt(1 + sigma ** 2)
    ref = x - sigma * (cin * x @ Wn.T.astype(np.float64) + sigma)
    np.testing.assert_allclose(m.denoise(x, sigma), ref, rtol=1e-5, atol=1e-5)
    v = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(m.vjp(x, sigma, v), v - sigma * cin * (v @ Wn), rtol=1e-5,
                               atol=1e-5)
    # the default adapter needs alphas_cumprod
    with pytest.raises(lgd.InvalidArgumentError, match="alphas_cumprod"):
        lgd.Model.from_network_callables(ctx, 3, forward, vjp)
    ac = lgd.schedule.vp_alphas_cumprod("vp_cosine", 100)
    m2 = lgd.Model.from_network_callables(ctx, 3, forward, vjp, adapter=lgd.Adapter(
        "v", "discrete_round", alphas_cumprod=ac))
    t = m2.network_time(0.5)
    assert t == round(t) and 0 <= t < 100
    with pytest.raises(ValueError, match="prediction"):
        lgd.Adapter("nope").to_c()
