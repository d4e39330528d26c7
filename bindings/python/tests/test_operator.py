"""Operators (lgd.Operator, liblgd >= 0.5) against numpy references: average pooling by
reshape-mean, the mask, the Gaussian blur with reflect padding, the bicubic weights of
lgd/operator.h; adjoints by <H x, y> = <x, H^T y>; the operator loss (value and gradient
against its formula and finite differences); errors with the library's messages."""
from __future__ import annotations

import math

import numpy as np
import pytest

import lgd

RNG = np.random.default_rng(5)


def avg_pool_ref(x, f):
    *lead, c, h, w = x.shape
    return x.reshape(*lead, c, h // f, f, w // f, f).mean(axis=(-3, -1))


def blur_matrix(n, sigma, r):
    """The 1-D blur along an axis of n pixels: reflect padding without repeating the edge
    pixel, folded again when the radius exceeds the image (numpy.pad's 'reflect')."""
    k = np.arange(-r, r + 1)
    w = np.exp(-k.astype(np.float64) ** 2 / (2 * sigma ** 2))
    w /= w.sum()
    idx = np.pad(np.arange(n), r, mode="reflect")
    A = np.zeros((n, n))
    for i in range(n):
        for j, wk in enumerate(w):
            A[i, idx[i + j]] += wk
    return A


def keys(t):
    t = abs(t)
    if t < 1:
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
    if t < 2:
        return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
    return 0.0


def bicubic_matrix(n, f):
    """The 1-D antialiased bicubic downsampling of lgd/operator.h: output i centred at
    f (i + 1/2), weights k((p + 1/2 - c) / f) over the pixels inside, renormalised."""
    A = np.zeros((n // f, n))
    for i in range(n // f):
        c = f * (i + 0.5)
        w = np.array([keys((p + 0.5 - c) / f) for p in range(n)])
        A[i] = w / w.sum()
    return A


def separable(x, Ah, Aw):
    return np.einsum("ih,...hw,jw->...ij", Ah, x.astype(np.float64), Aw)


def test_avg_pool_apply_and_adjoint(ctx):
    op = lgd.Operator.avg_pool(3, 4, 6, factor=2)
    assert op.dims(ctx) == (72, 18)
    x = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
    y = op.apply(ctx, x)
    assert y.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(y, avg_pool_ref(x.astype(np.float64), 2), rtol=1e-6, atol=1e-6)
    # rows [batch][dim] give rows [batch][m], the same values
    yr = op.apply(ctx, x.reshape(2, 72))
    assert yr.shape == (2, 18)
    np.testing.assert_array_equal(yr, y.reshape(2, 18))
    # H^T y: each value spread over its block, divided by f^2
    v = RNG.standard_normal((2, 3, 2, 3)).astype(np.float32)
    xt = op.apply(ctx, v, adjoint=True)
    assert xt.shape == (2, 3, 4, 6)
    ref = np.repeat(np.repeat(v.astype(np.float64), 2, axis=-2), 2, axis=-1) / 4
    np.testing.assert_allclose(xt, ref, rtol=1e-6, atol=1e-7)


def test_mask_shared_by_channels(ctx):
    mask = (RNG.random((5, 4)) > 0.4).astype(np.float32)
    op = lgd.Operator.inpainting(mask, channels=2)
    assert (op.channels, op.height, op.width) == (2, 5, 4)
    assert op.dims(ctx) == (40, 40)
    x = RNG.standard_normal((3, 2, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(op.apply(ctx, x), x * mask)
    np.testing.assert_array_equal(op.apply(ctx, x, adjoint=True), x * mask)
    # a mask per channel, with weights that are not 0/1
    m3 = RNG.random((2, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(lgd.Operator.inpainting(m3).apply(ctx, x), x * m3)


@pytest.mark.parametrize("sigma,radius", [(1.0, 2), (0.7, 0), (1.5, 6)])
def test_blur_against_reflect_padding(ctx, sigma, radius):
    c, h, w = 2, 5, 7
    op = lgd.Operator.blur(c, h, w, sigma=sigma, radius=radius)
    r = radius or math.ceil(3 * sigma)
    x = RNG.standard_normal((2, c, h, w)).astype(np.float32)
    ref = separable(x, blur_matrix(h, sigma, r), blur_matrix(w, sigma, r))
    np.testing.assert_allclose(op.apply(ctx, x), ref, rtol=1e-5, atol=1e-6)


def test_bicubic_against_the_headers_weights(ctx):
    op = lgd.Operator.bicubic_down(1, 8, 12, factor=4)
    assert op.dims(ctx) == (96, 6)
    x = RNG.standard_normal((3, 1, 8, 12)).astype(np.float32)
    ref = separable(x, bicubic_matrix(8, 4), bicubic_matrix(12, 4))
    np.testing.assert_allclose(op.apply(ctx, x), ref, rtol=1e-5, atol=1e-6)
    # factor 1 is the identity (the kernel at the pixel centres: 1, 0, 0)
    np.testing.assert_allclose(lgd.Operator.bicubic_down(1, 8, 12, 1).apply(ctx, x), x,
                               atol=1e-7)


@pytest.mark.parametrize("op", [
    lgd.Operator.avg_pool(2, 6, 4, 2),
    lgd.Operator.bicubic_down(2, 6, 9, 3),
    lgd.Operator.blur(2, 6, 5, 1.3),
    lgd.Operator.inpainting(np.arange(30, dtype=np.float32).reshape(6, 5) % 3, channels=2),
], ids=["avg_pool", "bicubic_down", "blur", "mask"])
def test_adjoint_identity(ctx, op):
    dim, m = op.dims(ctx)
    x = RNG.standard_normal((4, dim)).astype(np.float32)
    y = RNG.standard_normal((4, m)).astype(np.float32)
    hx = op.apply(ctx, x).astype(np.float64)
    hty = op.apply(ctx, y, adjoint=True).astype(np.float64)
    lhs = (hx * y).sum(axis=1)
    rhs = (x * hty).sum(axis=1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_operator_loss_value_gradient_and_rows(ctx):
    op = lgd.Operator.avg_pool(1, 4, 4, factor=2)
    s2 = 0.25 ** 2
    y = RNG.standard_normal((1, 2, 2)).astype(np.float32)        # an image, shared
    loss = lgd.Loss.operator(ctx, op, y, s2)
    assert loss.dim == 16
    x = RNG.standard_normal((3, 16)).astype(np.float32)

    def ref(xx):
        r = avg_pool_ref(np.asarray(xx, np.float64).reshape(-1, 1, 4, 4), 2).reshape(-1, 4) \
            - y.reshape(1, 4)
        return (r ** 2).sum(axis=1) / (2 * s2)

    val, grad = loss.eval(x)
    np.testing.assert_allclose(val, ref(x), rtol=1e-5)
    # H^T (H x - y) / s2 in closed form
    r = avg_pool_ref(x.astype(np.float64).reshape(3, 1, 4, 4), 2) - y
    g_ref = np.repeat(np.repeat(r, 2, axis=-2), 2, axis=-1).reshape(3, 16) / 4 / s2
    np.testing.assert_allclose(grad, g_ref, rtol=1e-5, atol=1e-5)
    # finite differences of the float64 reference
    h = 1e-6
    fd = np.stack([(ref(x + h * e) - ref(x - h * e)) / (2 * h)
                   for e in np.eye(16)], axis=1)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4)
    # one measurement per sample ([batch][m]); another batch is refused by the library
    ys = RNG.standard_normal((3, 4)).astype(np.float32)
    per = lgd.Loss.operator(ctx, op, ys, s2)
    r3 = avg_pool_ref(x.astype(np.float64).reshape(3, 1, 4, 4), 2).reshape(3, 4) - ys
    np.testing.assert_allclose(per(x), (r3 ** 2).sum(axis=1) / (2 * s2), rtol=1e-5)
    with pytest.raises(lgd.ShapeMismatchError) as e:
        per(x[:2])
    assert "3 target rows" in e.value.message


def test_operator_loss_equals_the_dense_linear_loss(ctx):
    op = lgd.Operator.blur(1, 4, 5, sigma=0.8, radius=2)
    dim, m = op.dims(ctx)
    H = op.apply(ctx, np.eye(dim, dtype=np.float32)).T      # column j = H e_j
    y = RNG.standard_normal(m).astype(np.float32)
    x = RNG.standard_normal((4, dim)).astype(np.float32)
    a = lgd.Loss.operator(ctx, op, y, 0.09).eval(x)
    b = lgd.Loss.linear(ctx, H, y, 0.3).eval(x)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-5)


def test_operator_errors_carry_the_librarys_message(ctx):
    with pytest.raises(lgd.InvalidArgumentError) as e:
        lgd.Operator.avg_pool(1, 5, 6, factor=2).dims(ctx)
    assert "lgd_operator_dims" in e.value.message and "divide" in e.value.message
    with pytest.raises(lgd.InvalidArgumentError) as e:
        lgd.Operator(kind="mask", channels=1, height=2, width=2).dims(ctx)   # no mask
    assert "mask" in e.value.message
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Operator.blur(1, 4, 4, sigma=-1.0).dims(ctx)
    op = lgd.Operator.avg_pool(1, 4, 4)
    with pytest.raises(lgd.ShapeMismatchError) as e:
        op.apply(ctx, np.zeros(7, np.float32))
    assert e.value.message.startswith("lgd_operator_apply")
    with pytest.raises(lgd.InvalidArgumentError) as e:
        lgd.Operator.inpainting([[1.0, np.nan]]).apply(ctx, np.zeros(2, np.float32))
    assert "lgd_operator_apply" in e.value.message
    with pytest.raises(ValueError, match="y: expected"):
        lgd.Loss.operator(ctx, op, np.zeros(5, np.float32), 1.0)
    with pytest.raises(lgd.InvalidArgumentError) as e:
        lgd.Loss.operator(ctx, op, np.zeros(4, np.float32), 0.0)
    assert "lgd_loss_create_operator" in e.value.message
    with pytest.raises(ValueError, match="mask: 3 values"):
        lgd.Operator(kind="mask", channels=1, height=2, width=2, mask=[1, 0, 1]).dims(ctx)
    with pytest.raises(ValueError, match="kind"):
        lgd.Operator(kind="no_such_kind", channels=1, height=2, width=2).dims(ctx)
