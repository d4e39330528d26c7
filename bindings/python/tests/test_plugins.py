"""Plugins (liblgd >= 0.4): the build's C++ example plugin loaded as a loss and a model."""
from __future__ import annotations

import numpy as np
import pytest

import lgd

from conftest import build_dir


def cxx_plugin():
    b = build_dir()
    p = b / "plugins" / "cxx_example" / "cxx_example.so" if b else None
    if p is None or not p.exists():
        pytest.skip("the build's C++ example plugin is not available (set LGD_BUILD_DIR)")
    return p


def huber(x, target, delta):
    d = np.asarray(x, np.float64) - target
    a = np.abs(d)
    loss = np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta)).sum(axis=1)
    grad = np.clip(d, -delta, delta)
    return loss, grad


def test_plugin_loss_equals_its_formula(ctx):
    path = cxx_plugin()
    x = np.array([[0.1, 2.0, -3.0], [0.5, 0.4, 1.7]], np.float32)
    with lgd.Loss.load_plugin(ctx, path, "huber", 3, "target=0.5,delta=1") as loss:
        value, grad = loss.eval(x, grad=True)
    want_l, want_g = huber(x, 0.5, 1.0)
    np.testing.assert_allclose(value, want_l, rtol=1e-6)
    np.testing.assert_allclose(grad, want_g, rtol=1e-6)


def test_plugin_errors_are_exceptions(ctx):
    path = cxx_plugin()
    with pytest.raises(lgd.Error) as e:
        lgd.Loss.load_plugin(ctx, path, "no_such_loss", 3)
    assert "huber" in str(e.value)  # the message lists the plugin's losses
    with pytest.raises(lgd.Error) as e:
        lgd.Loss.load_plugin(ctx, path, "huber", 3, "delta=-1")
    assert "delta" in str(e.value)
    with pytest.raises(lgd.Error):
        lgd.Loss.load_plugin(ctx, path.parent / "missing.so", "huber", 3)


def test_plugin_model(ctx):
    path = cxx_plugin()
    x = np.array([[1.0, -2.0], [0.0, 3.0]], np.float32)
    with lgd.Model.load_plugin(ctx, path, "gaussian", "dim=2,mean=0.5,var=0.25") as m:
        assert m.dim == 2
        d = m.denoise(x, 0.5)
    # the posterior mean of N(0.5, 0.25) observed with noise 0.5^2
    want = 0.5 + 0.25 / (0.25 + 0.25) * (x.astype(np.float64) - 0.5)
    np.testing.assert_allclose(d, want, rtol=1e-6, atol=1e-6)
