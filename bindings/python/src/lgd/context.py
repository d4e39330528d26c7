"""Context: one backend instance (CPU or CUDA), logging, the last error."""
from __future__ import annotations

import enum
from ctypes import byref, c_char_p, c_size_t, c_void_p, sizeof
from typing import Any, Callable, Optional, Tuple, Union

from . import _core
from . import _lib as L
from .errors import error_for


class Backend(enum.IntEnum):
    """lgd_backend_kind."""
    AUTO = 0
    CPU = 1
    CUDA = 2


class LogLevel(enum.IntEnum):
    """lgd_log_level."""
    ERROR = 0
    WARNING = 1
    INFO = 2
    DEBUG = 3


def _enum(cls: Any, value: Any, what: str) -> int:
    if isinstance(value, str):
        try:
            return int(cls[value.upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"{what}: {value!r} is not one of {names}") from None
    try:
        return int(cls(value))
    except ValueError:
        names = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"{what}: {value!r} is not one of {names}") from None


class Context(_core.Handle):
    """A liblgd context: the backend every object made from it runs on.

    Parameters:
        backend: ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (CUDA when usable, else
            the CPU), or a :class:`Backend`.
        device_index: CUDA device ordinal.
        num_threads: CPU threads, 0 for OpenMP's default.
        log: a callable ``log(level: int, message: str)`` receiving the library's log
            messages (the library never prints), or None.
        log_level: the most verbose level passed to `log` (default ``"warning"``).
        cuda_module_path: the CUDA backend module to load (default: the build
            directory's when the library came from ``LGD_BUILD_DIR``, else the library's
            own search).
        check_callback_outputs: fill callback outputs with NaN before each call and
            fail a callback that leaves one unwritten (a debugging and testing aid).

    Raises :class:`lgd.BackendUnavailableError` when CUDA is asked for and cannot be used,
    :class:`lgd.InvalidArgumentError` for bad options.

    The context is closed by :meth:`close` or a ``with`` block; objects made from it keep
    the C context alive, so they may outlive this wrapper.
    """

    _destroy = staticmethod(L.lgd_context_destroy)
    _kind = "context"

    def __init__(self, backend: Union[str, int, Backend] = "cpu", *, device_index: int = 0,
                 num_threads: int = 0, log: Optional[Callable[[int, str], Any]] = None,
                 log_level: Union[str, int, LogLevel] = "warning",
                 cuda_module_path: Optional[str] = None,
                 check_callback_outputs: bool = False):
        state = _core.ContextState()
        opts = L.ContextOptions()
        _core.check_plain(L.lgd_context_options_init(byref(opts), sizeof(opts)),
                          "lgd_context_options_init")
        opts.backend = _enum(Backend, backend, "backend")
        opts.device_index = int(device_index)
        opts.num_threads = int(num_threads)
        opts.log_level = _enum(LogLevel, log_level, "log_level")
        if log is not None:
            if not callable(log):
                raise TypeError("log: expected a callable log(level, message)")
            state.log_fn = log
            state.log_cb = _core.log_callback(state, log)
            opts.log = state.log_cb
        module = (cuda_module_path.encode() if isinstance(cuda_module_path, str)
                  else cuda_module_path) or L.default_cuda_module()
        opts.cuda_module_path = module
        opts.check_callback_outputs = 1 if check_callback_outputs else 0
        out = c_void_p()
        err = c_char_p()
        st = L.lgd_context_create(byref(opts), byref(out), byref(err))
        pending, state.pending = state.pending, None
        if st:
            msg = (err.value or L.lgd_status_string(st)).decode("utf-8", "replace")
            raise error_for(st, f"lgd_context_create: {msg}")
        ptr = _core.handle_value(out)
        state.host = L.lgd_context_backend(ptr) == _core.BACKEND_CPU
        super().__init__(ptr, state, ptr)
        if pending is not None:
            raise pending

    # --- getters ---

    @property
    def backend(self) -> Backend:
        """The backend in use (never AUTO)."""
        return Backend(L.lgd_context_backend(self.ptr))

    @property
    def backend_name(self) -> str:
        """E.g. ``"cpu (openblas, 2 threads)"``."""
        return (L.lgd_context_backend_name(self.ptr) or b"").decode("utf-8", "replace")

    @property
    def last_error(self) -> str:
        """The message of the last error on this context ("" if none)."""
        return (L.lgd_context_last_error(self.ptr) or b"").decode("utf-8", "replace")

    @property
    def native_stream(self) -> Optional[int]:
        """The backend's native stream (a cudaStream_t on CUDA), None on the CPU."""
        return L.lgd_context_native_stream(self.ptr)

    def memory_usage(self) -> Tuple[int, int]:
        """(current, peak) bytes of backend memory held by the context's objects."""
        cur, peak = c_size_t(), c_size_t()
        L.lgd_context_memory_usage(self.ptr, byref(cur), byref(peak))
        return int(cur.value), int(peak.value)

    # --- actions ---

    def clear_error(self) -> None:
        L.lgd_context_clear_error(self.ptr)

    def reset_peak_memory(self) -> None:
        L.lgd_context_reset_peak_memory(self.ptr)

    def synchronize(self) -> None:
        """Waits for the backend's queued work (a no-op on the CPU)."""
        self._finish(L.lgd_context_synchronize(self.ptr))

    def cancel(self) -> None:
        """Asks the calls running on this context (from another thread), and later ones,
        to stop with :class:`lgd.AbortedError` at their next check point (before each
        sampler step, between chunks of Monte Carlo draws), until :meth:`reset_cancel`.
        Any thread. Needs liblgd 0.4."""
        L.lgd_context_cancel(self.ptr)

    def reset_cancel(self) -> None:
        """Withdraws :meth:`cancel`'s request."""
        L.lgd_context_reset_cancel(self.ptr)

    @property
    def is_host(self) -> bool:
        """True when tensors live in host memory (the CPU backend): numpy arrays are
        then used without copies."""
        return self._state.host

    def __repr__(self) -> str:
        if self.closed:
            return "<lgd.Context closed>"
        return f"<lgd.Context {self.backend_name}>"
