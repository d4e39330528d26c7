"""The machinery every wrapper shares: handles and their lifetimes, statuses to
exceptions, numpy arrays to tensors, Python callbacks behind C function pointers, and
Ctrl-C.

Lifetimes. A wrapper (Context, Tensor, Model, ...) owns one reference to its C object
and drops it in close() (or `with`, or when the wrapper is garbage collected: a
weakref.finalize, which also runs at interpreter exit). The C objects keep what they use
alive (reference counts), so wrappers may be closed in any order. A Python callable
handed to the library (a loss, a model, a wrapped numpy array) is kept in a registry
until the library calls the object's destroy (or release) callback, i.e. until the last
C reference is gone, however long after the Python wrapper.

Callbacks never unwind through C: every exception (KeyboardInterrupt included) is caught
at the boundary, its message given to lgd_context_set_callback_error(), and the callback
returns 1; the exception is kept in the context's state and re-raised by the wrapper
that made the C call, once it has returned.
"""
from __future__ import annotations

import itertools
import os
import select
import signal
import sys
import threading
import weakref
from ctypes import byref, c_int64, c_void_p
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _lib as L
from .errors import Error, error_for

BACKEND_CPU = 1

# ---------------------------------------------------------------------------------------
# numpy arrays
# ---------------------------------------------------------------------------------------


def as_f32(a: Any, name: str, ndims: Optional[Sequence[int]] = None) -> np.ndarray:
    """`a` as a C-contiguous, aligned float32 array (a copy when it is not one already).

    Real numbers of any dtype convert (float64, ints); complex, object, string and bool
    arrays raise TypeError; a number of dimensions outside `ndims` raises ValueError."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise TypeError(f"{name}: expected an array of real numbers (float32; other real "
                        f"dtypes are converted), got dtype {arr.dtype}")
    if ndims is not None and arr.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name}: expected a {want}-D array, got shape {arr.shape}")
    if not (arr.dtype == np.float32 and arr.dtype.isnative and arr.flags.c_contiguous
            and arr.flags.aligned):
        arr = np.array(arr, dtype=np.float32, order="C")
    return arr


def check_inplace(a: Any, name: str) -> np.ndarray:
    """An array the library writes into in place: it must already be a writable,
    C-contiguous, aligned, native float32 numpy array (a converted copy would not be
    the caller's array)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy float32 array to write into, got "
                        f"{type(a).__name__}")
    if a.dtype != np.float32 or not a.dtype.isnative:
        raise TypeError(f"{name}: written in place, so it must be float32 (native byte "
                        f"order), not {a.dtype}; convert it first (x.astype(np.float32))")
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise ValueError(f"{name}: written in place, so it must be C-contiguous and aligned "
                         f"(np.ascontiguousarray(x) gives such a copy)")
    if not a.flags.writeable:
        raise ValueError(f"{name}: written in place, but the array is read-only")
    return a


class _Iface:
    __slots__ = ("__array_interface__",)


def view(addr: int, shape: Tuple[int, ...], writable: bool) -> np.ndarray:
    """A numpy array over `addr` (float32, C order), without a copy."""
    o = _Iface()
    setattr(o, "__array_interface__", {"data": (addr, not writable), "shape": shape,
                                       "typestr": "<f4", "version": 3})
    return np.asarray(o)


# ---------------------------------------------------------------------------------------
# The state a context shares with its objects: pending exceptions of callbacks, the log
# callback, where tensors live.
# ---------------------------------------------------------------------------------------


class ContextState:
    """Shared by a Context wrapper and every object made from it (each holds a
    reference, so that the log callback lives as long as any object of the context)."""

    __slots__ = ("pending", "host", "log_cb", "log_fn", "__weakref__")

    def __init__(self) -> None:
        self.pending: Optional[BaseException] = None
        self.host = True
        self.log_cb: Any = None
        self.log_fn: Optional[Callable[[int, str], Any]] = None

    def record(self, exc: BaseException) -> None:
        """Keeps the first exception of a call; a later KeyboardInterrupt or SystemExit
        replaces an ordinary exception."""
        if self.pending is None or (isinstance(self.pending, Exception)
                                    and not isinstance(exc, Exception)):
            self.pending = exc


def _context_message(ctxp: Optional[int], status: int) -> str:
    if ctxp:
        msg = L.lgd_context_last_error(ctxp)
        if msg:
            return msg.decode("utf-8", "replace")
    return L.lgd_status_string(status).decode("utf-8", "replace")


def finish(state: Optional[ContextState], status: int, ctxp: Optional[int]) -> None:
    """After a C call: re-raises a callback's exception (with the status attached) or
    raises the status's lgd.Error; nothing when both are clear."""
    exc = None
    if state is not None and state.pending is not None:
        exc, state.pending = state.pending, None
    if exc is None and _LOST:
        exc = _take_lost()
    if exc is not None:
        err = error_for(status, _context_message(ctxp, status)) if status else None
        try:
            exc.lgd_status = status  # type: ignore[attr-defined]
            exc.lgd_error = err      # type: ignore[attr-defined]
            if err is not None and hasattr(exc, "add_note"):
                exc.add_note(f"(raised in a callback; the liblgd call failed with: {err})")
        except (AttributeError, TypeError):
            pass
        raise exc
    if status:
        raise error_for(status, _context_message(ctxp, status))


def check_plain(status: int, what: str = "") -> None:
    """A status of a call without a context (schedules, *_init): the status's text."""
    if status:
        text = L.lgd_status_string(status).decode()
        raise error_for(status, f"{what}: {text}" if what else text)


# ---------------------------------------------------------------------------------------
# Exceptions raised where no try can catch them: at the entry of a callback, a pending
# signal's handler may raise before the trampoline's `try` (CPython checks pending calls
# when a frame starts). ctypes then reports it through sys.unraisablehook; ours keeps it
# when it comes from one of our trampolines, and the wrapper raises it after the C call.
# ---------------------------------------------------------------------------------------

_LOST: List[BaseException] = []
_previous_hook = sys.unraisablehook


def _take_lost() -> Optional[BaseException]:
    return _LOST.pop(0) if _LOST else None


def _unraisable_hook(unraisable: Any) -> None:
    obj = getattr(unraisable, "object", None)
    if getattr(obj, "__func__", obj) in _TRAMPOLINE_FUNCS and unraisable.exc_value is not None:
        _LOST.append(unraisable.exc_value)
        return
    _previous_hook(unraisable)


sys.unraisablehook = _unraisable_hook

# ---------------------------------------------------------------------------------------
# Ctrl-C. While a wrapper runs a C call that may take long (guided denoising, sampler
# steps, runs), SIGINT asks the context to stop (lgd_context_cancel(), liblgd >= 0.4)
# instead of raising at a point where no Python frame can catch it; the call returns
# LGD_ERR_ABORTED at its next check point (before a step, between chunks of draws), and
# the wrapper raises KeyboardInterrupt. Inside a Python callback's own code SIGINT
# raises KeyboardInterrupt there at once (the callback fails; the exception comes back).
# For runs, a watcher thread reads the signal wake-up fd, so the request reaches the
# library even while it is busy in C and no Python code runs.
# ---------------------------------------------------------------------------------------


_MAIN_THREAD = threading.main_thread().ident


class _Interrupts:
    """The stack of guarded calls of the main thread, and what SIGINT did meanwhile
    (Python runs signal handlers in the main thread only; other threads' callbacks
    leave this alone)."""
    contexts: List[int] = []
    interrupted = False     # Ctrl-C under Python's default handler
    deferred: List[int] = []  # signals for the program's own handler, run at a safe point
    in_callback = 0
    old_handler: Any = None


def _sigint(signum: int, frame: Any) -> None:
    if _Interrupts.old_handler is not signal.default_int_handler:
        # the program's own handler: run it inside a callback's code, where what it
        # raises is caught and comes back; else at the next safe point
        if _Interrupts.in_callback:
            _Interrupts.old_handler(signum, frame)
        else:
            _Interrupts.deferred.append(signum)
        return
    _Interrupts.interrupted = True
    if L.has("lgd_context_cancel"):
        for c in _Interrupts.contexts:
            L.lgd_context_cancel(c)
    if _Interrupts.in_callback:
        raise KeyboardInterrupt


def _run_deferred() -> None:
    """Runs the program's own SIGINT handler for the signals that came while no Python
    code could safely run it (its exception propagates)."""
    while _Interrupts.deferred:
        signum = _Interrupts.deferred.pop(0)
        handler = _Interrupts.old_handler
        if callable(handler):
            handler(signum, None)


class Guard:
    """Context manager around a C call on context `ctxp`: see the section above.
    Does nothing outside the main thread, or when SIGINT is ignored or has the system's
    default action. A program's own Python handler is kept: it runs inside a callback's
    code, or after the call (not in the middle of the library)."""

    __slots__ = ("ctxp", "watch", "active", "outer", "cancelled", "wake", "thread",
                 "old_wakeup", "stop_w")

    def __init__(self, ctxp: int, watch: bool = False):
        self.ctxp, self.watch = ctxp, watch
        self.active = self.outer = self.cancelled = False
        self.thread: Optional[threading.Thread] = None
        self.wake: Optional[Tuple[int, int]] = None
        self.old_wakeup = -1
        self.stop_w = -1

    def __enter__(self) -> "Guard":
        if threading.get_ident() != _MAIN_THREAD:
            return self
        if not _Interrupts.contexts:
            handler = signal.getsignal(signal.SIGINT)
            if not callable(handler):
                return self
            _Interrupts.old_handler = handler
            _Interrupts.interrupted = False
            _Interrupts.deferred = []
            signal.signal(signal.SIGINT, _sigint)
            self.outer = True
        _Interrupts.contexts.append(self.ctxp)
        self.active = True
        if (self.watch and self.outer and L.has("lgd_context_cancel")
                and _Interrupts.old_handler is signal.default_int_handler):
            self._start_watcher()
        return self

    def _start_watcher(self) -> None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return
        if old != -1:  # someone else (asyncio) uses it: leave it theirs
            signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            return
        stop_r, stop_w = os.pipe()
        self.wake, self.stop_w, self.old_wakeup = (r, w), stop_w, old
        ctxp = self.ctxp

        def watch() -> None:
            try:
                while True:
                    ready, _, _ = select.select([r, stop_r], [], [])
                    if stop_r in ready:
                        return
                    data = os.read(r, 64)
                    if signal.SIGINT in data:
                        L.lgd_context_cancel(ctxp)
            finally:
                os.close(stop_r)

        self.thread = threading.Thread(target=watch, name="lgd-sigint-watch", daemon=True)
        self.thread.start()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if not self.active:
            return
        _Interrupts.contexts.pop()
        if self.thread is not None:
            signal.set_wakeup_fd(self.old_wakeup)
            os.write(self.stop_w, b"x")
            self.thread.join()
            os.close(self.stop_w)
            assert self.wake is not None
            os.close(self.wake[0])
            os.close(self.wake[1])
        if _Interrupts.interrupted and L.has("lgd_context_reset_cancel"):
            L.lgd_context_reset_cancel(self.ctxp)  # this guard's context, alive here
        if not self.outer:
            return
        signal.signal(signal.SIGINT, _Interrupts.old_handler)
        if _Interrupts.deferred:
            _run_deferred()
        if _Interrupts.interrupted:
            _Interrupts.interrupted = False
            if et is None or isinstance(ev, Error):
                # the call was stopped (LGD_ERR_ABORTED, or a callback's failure), or it
                # finished before it saw the request: Ctrl-C wins either way
                raise KeyboardInterrupt from (ev if isinstance(ev, Error) else None)


# ---------------------------------------------------------------------------------------
# Callbacks: a registry of what the library holds, and one trampoline per C signature.
# `user` is a registry key; the entry lives until the library's destroy / release.
# ---------------------------------------------------------------------------------------

_REGISTRY: Dict[int, Any] = {}
_ids = itertools.count(1)


def register(entry: Any) -> int:
    key = next(_ids)
    _REGISTRY[key] = entry
    return key


def unregister(key: int) -> None:
    _REGISTRY.pop(key, None)


def registry_size() -> int:
    """Number of callables the library currently holds (for tests)."""
    return len(_REGISTRY)


def _fail(entry: Any, exc: BaseException) -> int:
    """A callback failed: keep the exception for the caller and leave its message."""
    try:
        entry.state.record(exc)
        msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        L.lgd_context_set_callback_error(entry.ctxp, msg.encode("utf-8", "replace"))
    except BaseException:  # noqa: BLE001 - nothing may leave a callback
        pass
    return 1


def _tramp_release(user: Optional[int]) -> None:
    try:
        _REGISTRY.pop(user or 0, None)
    except BaseException:  # noqa: BLE001
        pass


def _trampoline(method: str) -> Callable[..., int]:
    """The Python side of a C callback: calls registry[user].<method>(*args); 0 when it
    returns, 1 (and the exception kept for the caller) when it raises."""

    def tramp(user: Optional[int], *args: Any) -> int:
        try:
            entry = _REGISTRY[user or 0]
        except BaseException:  # noqa: BLE001
            return 1
        try:
            if threading.get_ident() != _MAIN_THREAD:
                getattr(entry, method)(*args)
                return 0
            if _Interrupts.interrupted:  # Ctrl-C came while the library was busy
                raise KeyboardInterrupt
            _Interrupts.in_callback += 1
            try:
                if _Interrupts.deferred:
                    _run_deferred()
                getattr(entry, method)(*args)
            finally:
                _Interrupts.in_callback -= 1
            return 0
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller after the call
            return _fail(entry, e)

    tramp.__name__ = f"lgd_{method}_trampoline"
    return tramp


def _tramp_progress(user: Optional[int], step: int, num_steps: int, sigma: float,
                    report: Any) -> int:
    try:
        entry = _REGISTRY[user or 0]
    except BaseException:  # noqa: BLE001
        return 1
    try:
        if threading.get_ident() != _MAIN_THREAD:
            return 1 if entry(step, num_steps, sigma, report) else 0
        if _Interrupts.interrupted:
            raise KeyboardInterrupt
        _Interrupts.in_callback += 1
        try:
            if _Interrupts.deferred:
                _run_deferred()
            stop = entry(step, num_steps, sigma, report)
        finally:
            _Interrupts.in_callback -= 1
        return 1 if stop else 0
    except BaseException as e:  # noqa: BLE001
        try:
            entry.state.record(e)
        except BaseException:  # noqa: BLE001
            pass
        return 1


_T = {m: _trampoline(m) for m in ("denoise", "vjp", "eval", "eval_draws", "forward",
                                 "network_vjp")}
RELEASE = L.RELEASE_FN(_tramp_release)
DESTROY = L.DESTROY_FN(_tramp_release)
DENOISE = L.DENOISE_FN(_T["denoise"])
VJP = L.VJP_FN(_T["vjp"])
LOSS = L.LOSS_FN(_T["eval"])
LOSS_DRAWS = L.LOSS_DRAWS_FN(_T["eval_draws"])
NET_FORWARD = L.NETWORK_FORWARD_FN(_T["forward"])
NET_VJP = L.NETWORK_VJP_FN(_T["network_vjp"])
PROGRESS = L.PROGRESS_FN(_tramp_progress)
NO_PROGRESS = L.PROGRESS_FN()
_TRAMPOLINE_FUNCS = {_tramp_release, _tramp_progress, *_T.values()}


def radius_callback(state: ContextState, fn: Callable[[float], float]) -> Any:
    """A C radius function over fn(sigma) -> r. The library keeps no destroy for it, so
    the Guidance wrapper keeps the returned object (see Guidance)."""

    def tramp(user: Optional[int], sigma: float) -> float:
        try:
            if threading.get_ident() != _MAIN_THREAD:
                return float(fn(float(sigma)))
            _Interrupts.in_callback += 1
            try:
                return float(fn(float(sigma)))
            finally:
                _Interrupts.in_callback -= 1
        except BaseException as e:  # noqa: BLE001
            try:
                state.record(e)
            except BaseException:  # noqa: BLE001
                pass
            return float("nan")

    _TRAMPOLINE_FUNCS.add(tramp)
    return L.RADIUS_FN(tramp)


def log_callback(state: ContextState, fn: Callable[[int, str], Any]) -> Any:
    def tramp(user: Optional[int], level: int, message: Optional[bytes]) -> None:
        try:
            fn(int(level), (message or b"").decode("utf-8", "replace"))
        except BaseException as e:  # noqa: BLE001
            try:
                state.record(e)
            except BaseException:  # noqa: BLE001
                pass

    _TRAMPOLINE_FUNCS.add(tramp)
    return L.LOG_FN(tramp)


# ---------------------------------------------------------------------------------------
# Handles
# ---------------------------------------------------------------------------------------


def _release(destroy: Callable[[int], None], ptr: int) -> None:
    destroy(ptr)


class Handle:
    """A wrapper owning one reference to a C object; close() drops it (also `with` and
    garbage collection). The C object lives on while other objects use it."""

    _destroy: Callable[[int], None]
    _kind = "object"

    def __init__(self, ptr: int, state: ContextState, ctxp: int):
        self._ptr: Optional[int] = ptr
        self._state = state
        self._ctxp = ctxp
        self._finalizer = weakref.finalize(self, _release, type(self)._destroy, ptr)

    @property
    def ptr(self) -> int:
        """The C handle (an int), for other ctypes code; valid while this wrapper is open."""
        if self._ptr is None:
            raise ValueError(f"this lgd {self._kind} is closed")
        return self._ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Drops this wrapper's reference to the C object (idempotent). Objects that use
        it keep it alive; using this wrapper afterwards raises ValueError."""
        self._ptr = None
        self._finalizer()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _finish(self, status: int) -> None:
        finish(self._state, status, self._ctxp)

    def _call(self, fn: Callable[..., int], *args: Any, watch: bool = False) -> None:
        """Runs fn(*args), a C call that may take long or run Python callbacks, under the
        Ctrl-C guard, and raises what its status or its callbacks call for."""
        with Guard(self._ctxp, watch):
            self._state.pending = None
            finish(self._state, fn(*args), self._ctxp)

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else hex(self._ptr)
        return f"<lgd.{type(self).__name__} {state}>"


def out_handle() -> c_void_p:
    return c_void_p()


def handle_value(p: c_void_p) -> int:
    assert p.value is not None
    return int(p.value)


# ---------------------------------------------------------------------------------------
# Tensors for one call: numpy arrays in and out, zero-copy on the CPU backend
# ---------------------------------------------------------------------------------------


class CallTensors:
    """Temporary tensors of one C call over numpy arrays: wrapped without a copy on the
    CPU backend (the arrays stay referenced until the call's tensors are destroyed),
    created and uploaded / downloaded on a device backend."""

    __slots__ = ("ctxp", "host", "made", "outs")

    def __init__(self, ctxp: int, host: bool):
        self.ctxp, self.host = ctxp, host
        self.made: List[Tuple[int, Optional[np.ndarray]]] = []
        self.outs: List[Tuple[int, np.ndarray]] = []

    def __enter__(self) -> "CallTensors":
        return self

    def __exit__(self, *exc: Any) -> None:
        for t, _ in self.made:
            L.lgd_tensor_destroy(t)
        self.made.clear()

    def _make(self, arr: np.ndarray) -> int:
        shape = (c_int64 * arr.ndim)(*arr.shape)
        out = c_void_p()
        if self.host:
            st = L.lgd_tensor_wrap(self.ctxp, L.MEMORY_HOST, arr.ndim, shape, arr.ctypes.data,
                                   L.RELEASE_FN(), None, byref(out))
        else:
            st = L.lgd_tensor_create(self.ctxp, arr.ndim, shape, byref(out))
        finish(None, st, self.ctxp)
        t = handle_value(out)
        self.made.append((t, arr))
        return t

    def input(self, a: Any, name: str, ndims: Optional[Sequence[int]] = None) -> int:
        """A tensor holding `a` (an lgd.Tensor is used as is)."""
        from .tensor import Tensor
        if isinstance(a, Tensor):
            return a.ptr
        arr = as_f32(a, name, ndims)
        if arr.size == 0:
            raise ValueError(f"{name}: empty array (shape {arr.shape})")
        t = self._make(arr)
        if not self.host:
            finish(None, L.lgd_tensor_upload(t, arr.ctypes.data, arr.size), self.ctxp)
        return t

    def output(self, shape: Tuple[int, ...], out: Any = None, name: str = "out") -> int:
        """A tensor the call writes; fetch() gives its array. `out`: the caller's array
        (float32, C-contiguous, of this shape) or lgd.Tensor to write into instead."""
        from .tensor import Tensor
        if isinstance(out, Tensor):
            return out.ptr
        if out is not None:
            arr = check_inplace(out, name)
            if arr.shape != tuple(shape):
                raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
        else:
            arr = np.empty(shape, dtype=np.float32)
        t = self._make(arr)
        self.outs.append((t, arr))
        return t

    def inout(self, a: Any, name: str) -> int:
        """A tensor over the caller's array that the call updates in place."""
        from .tensor import Tensor
        if isinstance(a, Tensor):
            return a.ptr
        arr = check_inplace(a, name)
        t = self._make(arr)
        if not self.host:
            finish(None, L.lgd_tensor_upload(t, arr.ctypes.data, arr.size), self.ctxp)
        self.outs.append((t, arr))
        return t

    def fetch(self) -> None:
        """Downloads the outputs into their arrays (device backends; no-op on the CPU)."""
        if self.host:
            return
        for t, arr in self.outs:
            finish(None, L.lgd_tensor_download(t, arr.ctypes.data, arr.size), self.ctxp)

    def array(self, t: int) -> np.ndarray:
        for tt, arr in self.outs:
            if tt == t:
                return arr
        raise KeyError(t)


def f32_pointer(arr: Optional[np.ndarray]) -> Optional[int]:
    return None if arr is None else int(arr.ctypes.data)
