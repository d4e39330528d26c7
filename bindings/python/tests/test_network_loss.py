"""Network losses (lgd.Loss.network, liblgd >= 0.5) and classifier guidance
(lgd.Model.classifier_guided) on the fixture networks of tests/fixtures/nn: the `linear`
layer (f = W x + b, 6 -> 5) against numpy in closed form (cross-entropy, squared error,
a scalar network made from it, clean and noisy inputs), the `mlp` (8 -> 8, time input)
against its PyTorch reference output and finite differences; errors with the library's
messages."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import lgd
from conftest import FIXTURES, read_safetensors

RNG = np.random.default_rng(14)
LIN = read_safetensors(FIXTURES / "linear.ref.safetensors")
LINW = read_safetensors(FIXTURES / "linear.safetensors")
W = LINW["weight"].astype(np.float64)    # [5][6]
B = LINW["bias"].astype(np.float64)      # [5]


def logits(x, c_in=1.0):
    return (c_in * np.asarray(x, np.float64)) @ W.T + B


def cross_entropy(f, labels):
    f = np.asarray(f, np.float64)
    mx = f.max(axis=-1, keepdims=True)
    lse = (mx + np.log(np.exp(f - mx).sum(axis=-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(f, np.asarray(labels)[..., None], axis=-1)[..., 0]


def softmax(f):
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fd_grad(f, x, h):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for j in range(x.shape[-1]):
        e = np.zeros_like(x)
        e[..., j] = h
        g[..., j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def linear_network_bytes(weight, bias):
    """A network file (docs/network-format.md) of one linear layer, as the `linear`
    fixture but with these weights: 8-byte header length, JSON header, data."""
    weight = np.ascontiguousarray(weight, "<f4")
    bias = np.ascontiguousarray(bias, "<f4")
    meta = {"lgd.architecture": "layer", "lgd.layer": "linear", "lgd.bias": "1",
            "lgd.format": "1", "lgd.input_shape": str(weight.shape[1]),
            "lgd.out_features": str(weight.shape[0]), "lgd.prediction": "eps",
            "lgd.time_input": "sigma"}
    header = {"__metadata__": meta,
              "bias": {"dtype": "F32", "shape": list(bias.shape),
                       "data_offsets": [0, bias.nbytes]},
              "weight": {"dtype": "F32", "shape": list(weight.shape),
                         "data_offsets": [bias.nbytes, bias.nbytes + weight.nbytes]}}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + bias.tobytes() + weight.tobytes()


@pytest.fixture
def linear(ctx):
    net = lgd.Network.load(ctx, FIXTURES / "linear.safetensors")
    assert (net.dim, net.out_dim) == (6, 5)
    # the fixture's reference output confirms f = W x + b
    np.testing.assert_allclose(logits(LIN["x_in"]), LIN["out"], rtol=1e-5, atol=1e-6)
    return net


def test_cross_entropy_clean_against_numpy(ctx, linear):
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    labels = np.array([0, 3, 4, 1])
    loss = lgd.Loss.network(linear, "cross_entropy", scale=0.5, labels=labels)
    assert loss.dim == 6
    val, grad = loss.eval(x)
    f = logits(x)
    np.testing.assert_allclose(val, 0.5 * cross_entropy(f, labels), rtol=1e-5, atol=1e-6)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(grad, 0.5 * (softmax(f) - onehot) @ W, rtol=1e-5, atol=1e-6)
    fd = fd_grad(lambda z: 0.5 * cross_entropy(logits(z), labels), x, 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5)
    # one label for every sample, and draws [batch][n][dim] taking their sample's label
    loss.set_labels(2)
    np.testing.assert_allclose(loss(x), 0.5 * cross_entropy(f, [2] * 4), rtol=1e-5)
    loss.set_labels([1, 4])
    xd = RNG.standard_normal((2, 3, 6)).astype(np.float32)
    np.testing.assert_allclose(loss(xd), 0.5 * cross_entropy(logits(xd), [[1] * 3, [4] * 3]),
                               rtol=1e-5, atol=1e-6)
    # max_rows only splits the network calls
    small = lgd.Loss.network(linear, scale=0.5, max_rows=1, labels=[1, 4])
    np.testing.assert_allclose(small(xd), loss(xd), rtol=1e-6)


def test_noisy_input_and_eval_sigma(ctx, linear):
    # the file's adapter is eps prediction: c_in(sigma) = 1 / sqrt(1 + sigma^2); a linear
    # layer ignores its time input
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    labels = np.array([4, 0, 2])
    loss = lgd.Loss.network(linear, input="noisy", sigma=0.3, labels=labels)
    for sigma, (val, grad) in ((0.3, loss.eval(x)), (2.0, loss.eval_sigma(x, 2.0))):
        c = 1 / np.sqrt(1 + sigma ** 2)
        f = logits(x, c)
        np.testing.assert_allclose(val, cross_entropy(f, labels), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, c * (softmax(f) - np.eye(5)[labels]) @ W,
                                   rtol=1e-5, atol=1e-6)
    vals = loss.eval_sigma(x, 2.0, grad=False)
    np.testing.assert_array_equal(vals, loss.eval_sigma(x, 2.0)[0])
    # an explicit EDM adapter: c_in = 1 / sqrt(sigma^2 + sigma_data^2)
    edm = lgd.Loss.network(linear, input="noisy", labels=labels,
                           adapter=lgd.Adapter("edm", "log_sigma", sigma_data=0.5))
    c = 1 / np.sqrt(1.0 + 0.25)
    np.testing.assert_allclose(edm.eval_sigma(x, 1.0, grad=False),
                               cross_entropy(logits(x, c), labels), rtol=1e-5)


def test_squared_error_targets(ctx, linear):
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    loss = lgd.Loss.network(linear, "squared_error", scale=4.0)
    f = logits(x)
    val, grad = loss.eval(x)      # zero target: |f|^2 / 2
    np.testing.assert_allclose(val, 4.0 * (f ** 2).sum(1) / 2, rtol=1e-5)
    np.testing.assert_allclose(grad, 4.0 * f @ W, rtol=1e-5, atol=1e-5)
    y = RNG.standard_normal((3, 5)).astype(np.float32)
    loss.set_targets(y)
    val, grad = loss.eval(x)
    np.testing.assert_allclose(val, 2.0 * ((f - y) ** 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(grad, 4.0 * (f - y) @ W, rtol=1e-5, atol=1e-5)
    loss.set_targets(y[0])        # shared
    np.testing.assert_allclose(loss(x), 2.0 * ((f - y[0]) ** 2).sum(1), rtol=1e-5)
    loss.set_targets(None)
    np.testing.assert_allclose(loss(x), 2.0 * (f ** 2).sum(1), rtol=1e-5)
    with pytest.raises(lgd.ShapeMismatchError) as e:
        loss.set_targets(np.zeros((3, 4)))
    assert "lgd_loss_network_set_targets" in e.value.message
    with pytest.raises(lgd.InvalidArgumentError):
        loss.set_targets([np.nan, 0, 0, 0, 0])
    lgd.Loss.network(linear, "squared_error", targets=y).eval(x)


def test_scalar_network(ctx):
    w = RNG.standard_normal((1, 6)).astype(np.float32)
    net = lgd.Network.from_bytes(ctx, linear_network_bytes(w, [0.25]))
    loss = lgd.Loss.network(net, "scalar", scale=-2.0)
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    val, grad = loss.eval(x)
    np.testing.assert_allclose(val, -2.0 * (x.astype(np.float64) @ w[0] + 0.25), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(grad, np.broadcast_to(-2.0 * w, (5, 6)), rtol=1e-6)


def test_mlp_fixture_against_its_reference(ctx):
    net = lgd.Network.load(ctx, FIXTURES / "mlp.safetensors")
    ref = read_safetensors(FIXTURES / "mlp.ref.safetensors")
    x, t = ref["x_in"], float(ref["t"][0])
    labels = np.array([7, 0, 3])
    loss = lgd.Loss.network(net, t=t, labels=labels)
    val, grad = loss.eval(x)
    # the value of the PyTorch reference output (float64 from the stored weights)
    np.testing.assert_allclose(val, cross_entropy(ref["out"], labels), rtol=1e-4, atol=1e-5)
    # the gradient: the network's own VJP of softmax(f) - onehot, and finite differences
    f = net.forward(x, t).astype(np.float64)
    v = (softmax(f) - np.eye(8)[labels]).astype(np.float32)
    np.testing.assert_allclose(grad, net.vjp(x, t, v), rtol=1e-4, atol=1e-5)
    fd = fd_grad(lambda z: loss(z.astype(np.float32)).astype(np.float64), x, 1e-2)
    assert np.abs(grad - fd).max() < 2e-3 * max(1.0, np.abs(grad).max()), \
        np.abs(grad - fd).max()


def test_classifier_guided_denoiser(ctx, linear):
    prior = lgd.Model.gmm(ctx, [0.3, 0.7], RNG.standard_normal((2, 6)), [0.5, 0.2])
    loss = lgd.Loss.network(linear, input="noisy", labels=[3])
    cg = lgd.Model.classifier_guided(prior, loss, scale=1.5)
    assert (cg.dim, cg.cond_dim) == (6, 0)
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    for sigma in (0.1, 1.0, 3.0):
        _, g = loss.eval_sigma(x, sigma)
        want = prior.denoise(x, sigma).astype(np.float64) - 1.5 * sigma ** 2 * g
        np.testing.assert_allclose(cg.denoise(x, sigma), want, rtol=1e-5, atol=1e-5)
    # runs with guidance "none" (CG alone); DPS on it has no VJP
    xs = lgd.Sampler(lgd.Guidance(cg, None, "none"), "ddim", steps=5).run(batch=3)
    assert xs.shape == (3, 6) and np.isfinite(xs).all()
    with pytest.raises(lgd.UnsupportedError):
        cg.vjp(x, 1.0, x)
    # the dims must agree
    other = lgd.Model.gmm(ctx, [1.0], [[0.0, 0.0]], [1.0])
    with pytest.raises(lgd.ShapeMismatchError) as e:
        lgd.Model.classifier_guided(other, loss)
    assert "lgd_model_create_classifier_guided" in e.value.message


def test_network_loss_errors(ctx, linear):
    x = np.zeros((2, 6), np.float32)
    with pytest.raises(lgd.StateError) as e:
        lgd.Loss.network(linear).eval(x)                       # no labels yet
    assert "set_labels" in e.value.message
    loss = lgd.Loss.network(linear, labels=[1])
    with pytest.raises(lgd.InvalidArgumentError) as e:
        loss.set_labels([0, 5])
    assert "labels[1] = 5" in e.value.message
    with pytest.raises(lgd.ShapeMismatchError) as e:
        loss.eval(np.zeros((2, 5), np.float32))
    assert e.value.message.startswith("lgd_loss_eval")
    loss.set_labels([1, 2, 3])
    with pytest.raises(lgd.ShapeMismatchError):              # 3 labels, batch 2
        loss.eval(x)
    with pytest.raises(lgd.ShapeMismatchError) as e:
        lgd.Loss.network(linear, "scalar")                    # out_dim 5
    assert "out_dim 1" in e.value.message
    with pytest.raises(lgd.UnsupportedError) as e:
        loss.eval_sigma(x, 1.0)                               # a clean-input loss
    assert "lgd_loss_network_eval_sigma" in e.value.message
    with pytest.raises(lgd.UnsupportedError):
        lgd.Loss.network(linear, "squared_error").set_labels([0])
    with pytest.raises(lgd.UnsupportedError):
        lgd.Loss.logistic(ctx, [1.0] * 6, 0.0).set_labels([0])
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Loss.network(linear, max_rows=0)
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Loss.network(linear, input="noisy", sigma=-1.0)
    with pytest.raises(ValueError, match="kind"):
        lgd.Loss.network(linear, "hinge")
    with pytest.raises(TypeError, match="labels"):
        loss.set_labels([0.5])
