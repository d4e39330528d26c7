"""Exceptions from Python callbacks, Ctrl-C, cancellation, and lifetimes."""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import traceback
import weakref

import numpy as np
import pytest

import lgd
from conftest import bits

VAR = np.float32(0.04)


class Boom(Exception):
    pass


def prior(ctx):
    return lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [VAR, VAR])


def good_loss(x):
    z = -50.0 * x[..., 0].astype(np.float64)
    return np.logaddexp(0, -z), (50.0 / (1 + np.exp(z)))[..., None]


# ---- exceptions come back as themselves ----

def test_loss_exception_is_the_same_object(ctx):
    raised = []

    def bad(x):
        e = Boom("label 7 out of range")
        raised.append(e)
        raise e

    s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.from_callable(ctx, 1, bad), 10),
                    steps=4)
    with pytest.raises(Boom) as info:
        s.run(batch=8)
    e = info.value
    assert e is raised[0]
    assert e.lgd_status == lgd.CallbackError.status
    assert isinstance(e.lgd_error, lgd.CallbackError)
    assert "label 7 out of range" in e.lgd_error.message
    assert "callback loss: eval returned 1" in e.lgd_error.message
    assert any(f.name == "bad" for f in traceback.extract_tb(e.__traceback__))
    # nothing stale: the next call works
    ok = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.from_callable(ctx, 1, good_loss), 10),
                     steps=4)
    assert np.isfinite(ok.run(batch=8)).all()


@pytest.mark.parametrize("where", ["denoise", "vjp"])
def test_model_exceptions(ctx, where):
    def denoise(x, sigma, cond):
        if where == "denoise":
            raise Boom("in denoise")
        return 0.5 * x

    def vjp(x, sigma, cond, v):
        raise Boom("in vjp")

    m = lgd.Model.from_callables(ctx, 1, denoise, vjp)
    g = lgd.Guidance.dps(m, lgd.Loss.squared_error(ctx, [0.0]))
    with pytest.raises(Boom, match=f"in {where}") as info:
        g.term(np.ones((3, 1)), 1.0)
    assert info.value.lgd_status == -5
    assert f"callback model: {where}" in info.value.lgd_error.message or \
        where in info.value.lgd_error.message


def test_network_callable_exception(ctx):
    def forward(x, t, cond):
        raise KeyError("no such layer")

    m = lgd.Model.from_network_callables(ctx, 2, forward, adapter=lgd.Adapter("x0", "sigma"))
    with pytest.raises(KeyError) as info:
        m.denoise(np.zeros((2, 2)), 1.0)
    assert info.value.lgd_status == -5


def test_progress_radius_exceptions(ctx):
    s = lgd.Sampler(lgd.Guidance.none(prior(ctx)), steps=5)

    def progress(k, n, sigma, rep):
        if k == 3:
            raise Boom("progress")

    with pytest.raises(Boom, match="progress") as info:
        s.run(batch=4, progress=progress)
    assert info.value.lgd_status == lgd.AbortedError.status
    assert s.step_index == 3

    def radius(sigma):
        raise Boom("radius")

    g = lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0), 4, radius=radius)
    with pytest.raises(Boom, match="radius") as info:
        g.term(np.zeros((2, 1)), 1.0)
    assert info.value.lgd_status == lgd.InvalidArgumentError.status
    with pytest.raises(Boom):
        g.radius(1.0)


def test_exception_in_a_worker_thread(ctx):
    """Off the main thread nothing is installed for Ctrl-C; exceptions still come back."""
    result = {}

    def work():
        with lgd.Context() as c:
            loss = lgd.Loss.from_callable(c, 1, lambda x: 1 / 0)
            try:
                loss.eval(np.zeros((2, 1)))
            except ZeroDivisionError as e:
                result["e"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert isinstance(result.get("e"), ZeroDivisionError) and result["e"].lgd_status == -5


# ---- Ctrl-C ----

@pytest.fixture
def sigint_default():
    """Python's own SIGINT handler for the test (a process started with SIGINT ignored,
    e.g. in the background of a non-interactive shell, would not get KeyboardInterrupt)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_keyboard_interrupt_inside_a_callback(ctx, sigint_default):
    calls = []

    def loss(x):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs in here
        return good_loss(x)

    s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.from_callable(ctx, 1, loss), 10),
                    steps=10)
    with pytest.raises(KeyboardInterrupt):
        s.run(batch=16)
    assert len(calls) == 3  # stopped there, not at the end of the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert np.isfinite(s.run(batch=16)).all()  # the context is not left cancelled


def test_keyboard_interrupt_during_a_long_c_step(ctx, sigint_default):
    """No Python code runs during the step: the signal reaches the library through the
    wake-up fd and lgd_context_cancel(), which stops between chunks of draws.

    The built-in logistic loss runs in the fused CPU loop, which looks at cancellation
    every 64 chunks of draws (chunk_size x 64 = 1024 draws here). The run is one step of
    12 such spans, so an AbortedError can only come from inside that step (not from a check
    between steps), and its batch is scaled until one run takes >= 0.5 s (at most 2^16
    rows), so that the SIGINT at 0.05 s lands early in it on any machine."""
    if not lgd._lib.has("lgd_context_cancel"):
        pytest.skip("liblgd < 0.4 has no lgd_context_cancel")
    chunk, spans, max_batch = 16, 12, 1 << 16
    s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0),
                                    chunk * 64 * spans, chunk_size=chunk), "ddim", steps=1)
    batch = 256
    while True:
        t0 = time.monotonic()
        s.run(batch=batch)
        one_run = time.monotonic() - t0
        if one_run >= 0.5 or batch == max_batch:
            break
        # at least double, at most x8 per measurement, aiming at 0.6 s
        batch = min(max_batch, batch * min(8, max(2, int(0.6 / max(one_run, 1e-3)) + 1)))
    if one_run < 0.2:
        pytest.skip(f"one run of {batch} rows takes {one_run:.3f} s: too fast to interrupt")
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt) as info:
        s.run(batch=batch)
    elapsed = time.monotonic() - t0
    timer.join()
    assert isinstance(info.value.__cause__, lgd.AbortedError)
    assert elapsed < 0.05 + 0.5 * one_run, (elapsed, one_run, batch)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert np.isfinite(s.run(batch=10)).all()


def test_keyboard_interrupt_between_steps(ctx, sigint_default):
    s = lgd.Sampler(lgd.Guidance.none(prior(ctx)), steps=50)
    done = []
    with pytest.raises(KeyboardInterrupt):
        for st in s.steps(batch=4):
            done.append(st.step)
            if st.step == 5:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
    assert done[-1] == 5


def test_interrupt_with_a_custom_handler(ctx):
    """A program with its own SIGINT handler keeps it; an exception that handler raises
    where no trampoline can catch it (at a callback's entry) still comes back."""

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop()

    old = signal.signal(signal.SIGINT, handler)
    try:
        s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0), 200),
                        "ddim", steps=20)
        timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(Stop):
            s.run(batch=2000, progress=lambda *a: None)
        timer.join()
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, old)


def test_exception_raised_at_a_callback_entry(ctx, monkeypatch):
    """A signal handler that raises (here SIGUSR1's) runs when the next Python frame
    starts: at a trampoline's entry, before its try. ctypes reports that exception as
    unraisable; the package's hook keeps it and the call raises it when it returns.
    (pytest replaces sys.unraisablehook during tests, so the package's is put back.)"""

    class Alarm(Exception):
        pass

    def handler(signum, frame):
        raise Alarm()

    monkeypatch.setattr(sys, "unraisablehook", lgd._core._unraisable_hook)
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0), 200),
                        "ddim", steps=20)
        timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        timer.start()
        with pytest.raises(Alarm):
            s.run(batch=2000, progress=lambda *a: None)
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert not lgd._core._LOST


def test_cancel_from_another_thread(ctx):
    s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0), 400),
                    steps=50)
    timer = threading.Timer(0.05, ctx.cancel)
    timer.start()
    with pytest.raises(lgd.AbortedError, match="cancel"):
        s.run(batch=2000)
    timer.join()
    with pytest.raises(lgd.AbortedError):
        s.run(batch=10)  # the request stays
    ctx.reset_cancel()
    assert np.isfinite(s.run(batch=10)).all()


# ---- lifetimes ----

def test_context_closed_before_its_objects():
    gc.collect()
    base = lgd._registry_size()
    ctx = lgd.Context()
    m = prior(ctx)
    loss = lgd.Loss.from_callable(ctx, 1, good_loss)
    builtin = lgd.Loss.logistic(ctx, [-50.0], 0.0)
    ctx.close()  # the objects keep the C context
    s = lgd.Sampler(lgd.Guidance.mc(m, loss, 10), "ddim", steps=5)
    s2 = lgd.Sampler(lgd.Guidance.mc(m, builtin, 10), "ddim", steps=5)
    a, b = s.run(batch=50, seed=1), s2.run(batch=50, seed=1)
    assert np.abs(a - b).max() < 1e-3
    x = np.zeros((50, 1), np.float32)
    for _ in s.steps(x, seed=1):  # iteration wraps x on the closed context's C object
        pass
    np.testing.assert_array_equal(bits(x), bits(a))
    del m, loss, builtin, s, s2
    gc.collect()
    assert lgd._registry_size() == base


def test_objects_closed_in_any_order(ctx):
    m = prior(ctx)
    loss = lgd.Loss.from_callable(ctx, 1, good_loss)
    g = lgd.Guidance.mc(m, loss, 10)
    s = lgd.Sampler(g, steps=4)
    ref = s.run(batch=20, seed=2)
    for obj in (m, loss, g):
        obj.close()
    with pytest.raises(ValueError, match="closed"):
        m.denoise(np.zeros((1, 1)), 1.0)
    np.testing.assert_array_equal(bits(s.run(batch=20, seed=2)), bits(ref))
    s.close()
    s.close()  # idempotent


def test_callables_live_while_the_library_holds_them(ctx):
    """Dropping the last Python reference to a loss, its callable and its wrapper does
    not free them while a guidance uses the loss; the library's destroy callback does."""
    gc.collect()
    base = lgd._registry_size()

    class LossFn:
        def __call__(self, x):
            return good_loss(x)

    fn = LossFn()
    ref = weakref.ref(fn)
    loss = lgd.Loss.from_callable(ctx, 1, fn)
    s = lgd.Sampler(lgd.Guidance.mc(prior(ctx), loss, 10), steps=4)
    del fn, loss
    gc.collect()
    assert ref() is not None
    assert np.isfinite(s.run(batch=10)).all()
    assert lgd._registry_size() == base + 1
    del s
    gc.collect()
    assert ref() is None
    assert lgd._registry_size() == base


def test_wrapped_arrays_stay_alive(ctx):
    a = np.zeros((4, 1), np.float32)
    ref = weakref.ref(a) if hasattr(a, "__weakref__") else None
    t = lgd.Tensor.wrap(ctx, a)
    del a
    gc.collect()
    t.fill(1.5)
    assert (t.numpy() == 1.5).all()
    del t
    gc.collect()
    if ref is not None:
        assert ref() is None


def test_guidance_keeps_its_radius_function(ctx):
    g = lgd.Guidance.mc(prior(ctx), lgd.Loss.logistic(ctx, [-50.0], 0.0), 4,
                        radius=lambda s: 0.1 * s)
    s = lgd.Sampler(g, steps=3)
    del g
    gc.collect()
    assert np.isfinite(s.run(batch=5)).all()
    assert s.guidance.radius(2.0) == pytest.approx(0.2)
