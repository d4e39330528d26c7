"""Loading, versions, errors, contexts and tensors."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lgd
from lgd import _lib

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env)
    e["PYTHONPATH"] = SRC
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)


# ---- loading and versions ----

def test_version_matches_library():
    assert lgd.version_string() == "%d.%d.%d" % lgd.library_version
    major, minor, _ = lgd.library_version
    assert major == _lib.REQUIRED_VERSION[0] and minor >= _lib.REQUIRED_VERSION[1]


@pytest.mark.parametrize("number,ok", [(300, True), (301, True), (400, True), (1200, True),
                                       (200, False), (10300, False), (299, False)])
def test_check_version(number, ok):
    problem = _lib.check_version(number, (0, 3))
    assert (problem is None) == ok
    if not ok:
        assert "needs 0.x with x >= 3" in problem


def test_import_error_for_a_missing_library(tmp_path):
    r = run_python("import lgd", LGD_LIBRARY=str(tmp_path / "nope.so"))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "cannot load liblgd" in r.stderr
    assert "LGD_LIBRARY=" in r.stderr


def test_import_error_for_a_library_that_is_not_lgd():
    libm = "libm.so.6"
    r = run_python("import lgd", LGD_LIBRARY=libm)
    assert r.returncode != 0 and "is not liblgd" in r.stderr


def test_build_dir_lookup():
    lib = Path(lgd.library_path).resolve()
    r = run_python("import lgd; print(lgd.library_path)", LGD_LIBRARY="",
                   LGD_BUILD_DIR=str(lib.parent.parent))
    if (lib.parent.parent / "lib" / "liblgd.so").exists():
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("lib/liblgd.so")


def test_status_strings_and_error_classes():
    assert lgd.status_string(0) == "ok"
    assert lgd.status_string(-3) == "shape mismatch"
    assert lgd.status_string(-100) == "unknown status"
    for status, cls in [(-1, lgd.InvalidArgumentError), (-2, lgd.OutOfMemoryError),
                        (-3, lgd.ShapeMismatchError), (-4, lgd.NonFiniteError),
                        (-5, lgd.CallbackError), (-6, lgd.UnsupportedError),
                        (-7, lgd.BackendUnavailableError), (-8, lgd.AbortedError),
                        (-9, lgd.StateError), (-10, lgd.LgdIOError), (-11, lgd.FormatError),
                        (-12, lgd.InternalError)]:
        e = lgd.errors.error_for(status, "msg")
        assert type(e) is cls and e.status == status and isinstance(e, lgd.Error)
        assert e.status_name.startswith("LGD_ERR_") and "msg" in str(e)
    assert isinstance(lgd.errors.error_for(-3, ""), ValueError)
    assert isinstance(lgd.errors.error_for(-99, "x"), lgd.Error)


# ---- contexts ----

def test_context_basics():
    with lgd.Context(num_threads=1) as ctx:
        assert ctx.backend == lgd.Backend.CPU
        assert ctx.backend_name.startswith("cpu")
        assert ctx.is_host and ctx.native_stream is None
        ctx.synchronize()
        cur, peak = ctx.memory_usage()
        assert cur >= 0 and peak >= cur
        t = lgd.Tensor.zeros(ctx, (100, 10))
        assert ctx.memory_usage()[0] >= 4000
        t.close()
        ctx.reset_peak_memory()
        ctx.clear_error()
        assert ctx.last_error == ""
    assert ctx.closed
    with pytest.raises(ValueError, match="closed"):
        ctx.backend_name  # noqa: B018


def test_context_bad_options():
    with pytest.raises(ValueError, match="backend"):
        lgd.Context("tpu")
    with pytest.raises(lgd.InvalidArgumentError, match="num_threads"):
        lgd.Context(num_threads=-1)


def test_context_cuda_unavailable_or_working():
    try:
        ctx = lgd.Context("cuda", cuda_module_path="/nonexistent/liblgd-cuda.so")
    except lgd.BackendUnavailableError as e:
        assert e.status == -7 and "lgd_context_create" in str(e)
    else:  # pragma: no cover - a machine where the path exists
        ctx.close()
    with lgd.Context("auto", cuda_module_path="/nonexistent/liblgd-cuda.so") as ctx:
        assert ctx.backend == lgd.Backend.CPU


def test_log_callback_receives_messages():
    msgs = []
    with lgd.Context("auto", log=lambda lvl, m: msgs.append((lvl, m)), log_level="info",
                     cuda_module_path="/nonexistent/liblgd-cuda.so") as ctx:
        assert ctx.backend == lgd.Backend.CPU
    assert any(lvl == lgd.LogLevel.INFO and "cuda" in m.lower() for lvl, m in msgs), msgs


def test_log_callback_exception_comes_back():
    class LogBoom(Exception):
        pass

    def log(level, message):
        raise LogBoom(message)

    with pytest.raises(LogBoom):
        lgd.Context("auto", log=log, log_level="info",
                    cuda_module_path="/nonexistent/liblgd-cuda.so")


# ---- tensors ----

def test_tensor_zeros_upload_download(ctx):
    t = lgd.Tensor.zeros(ctx, (3, 4))
    assert t.shape == (3, 4) and t.ndim == 2 and t.numel == 12 and len(t) == 3
    np.testing.assert_array_equal(t.download(), np.zeros((3, 4), np.float32))
    a = np.arange(12, dtype=np.float64).reshape(3, 4)  # float64 converts
    t.upload(a)
    np.testing.assert_array_equal(t.download(), a.astype(np.float32))
    t.fill(2.5)
    assert (t.numpy() == 2.5).all()
    u = lgd.Tensor.from_array(ctx, np.ones((2, 6)))
    t.copy_from(u)  # same number of elements, other shape
    assert (t.download() == 1).all()
    with pytest.raises(lgd.ShapeMismatchError, match="12|count"):
        t.upload(np.zeros(5))
    with pytest.raises(ValueError, match="dimensions"):
        lgd.Tensor.zeros(ctx, (1, 1, 1, 1, 1))
    with pytest.raises(lgd.InvalidArgumentError):
        lgd.Tensor.zeros(ctx, (0, 3))


def test_tensor_view_keeps_the_tensor_alive(ctx):
    t = lgd.Tensor.from_array(ctx, np.arange(6.0).reshape(2, 3))
    v = t.numpy()
    t.close()  # the view holds its own reference
    del t
    gc.collect()
    np.testing.assert_array_equal(v, np.arange(6.0).reshape(2, 3))
    v[0, 0] = 7  # writable view of the tensor's memory
    assert v[0, 0] == 7


def test_tensor_wrap_is_zero_copy(ctx):
    a = np.zeros((4, 2), np.float32)
    t = lgd.Tensor.wrap(ctx, a)
    t.fill(3.0)
    assert (a == 3).all()
    assert t.data_ptr == a.ctypes.data
    assert t.numpy() is a
    before = lgd._registry_size()
    del a
    t.close()  # the release callback drops the array
    assert lgd._registry_size() == before - 1


def test_tensor_wrap_refuses_what_it_cannot_share(ctx):
    with pytest.raises(TypeError, match="float32"):
        lgd.Tensor.wrap(ctx, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="contiguous"):
        lgd.Tensor.wrap(ctx, np.zeros((4, 4), np.float32)[:, ::2])
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        lgd.Tensor.wrap(ctx, ro)
    with pytest.raises(TypeError):
        lgd.Tensor.wrap(ctx, [1.0, 2.0])


def test_inputs_convert_or_raise(ctx):
    m = lgd.Model.gmm(ctx, [1], [[0.0, 0.0]], [1.0])
    x32 = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    ref = m.denoise(x32, 1.0)
    np.testing.assert_array_equal(m.denoise(x32.astype(np.float64), 1.0), ref)
    np.testing.assert_array_equal(m.denoise(x32.tolist(), 1.0), ref)
    big = np.zeros((2, 4), np.float32)
    big[:, ::2] = x32  # a non-contiguous view
    np.testing.assert_array_equal(m.denoise(big[:, ::2], 1.0), ref)
    np.testing.assert_array_equal(m.denoise(x32.astype(">f4"), 1.0), ref)
    np.testing.assert_array_equal(m.denoise(np.array([[1, -2]]), 1.0), ref[:1])  # ints
    with pytest.raises(TypeError, match="complex"):
        m.denoise(x32.astype(np.complex64), 1.0)
    with pytest.raises(TypeError, match="dtype"):
        m.denoise(np.array([["a", "b"]]), 1.0)
    with pytest.raises(ValueError, match="2 or 3-D"):
        m.denoise(np.zeros(2), 1.0)
    with pytest.raises(lgd.ShapeMismatchError, match="dim|shape"):
        m.denoise(np.zeros((3, 5)), 1.0)
    with pytest.raises(lgd.InvalidArgumentError, match="sigma"):
        m.denoise(x32, -1.0)
    with pytest.raises(ValueError, match="empty"):
        m.denoise(np.zeros((0, 2)), 1.0)
