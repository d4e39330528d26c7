"""Tensor: float32 data on a context's backend (1 to 4 dimensions, C order)."""
from __future__ import annotations

from ctypes import byref, c_int64, c_void_p
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _core
from . import _lib as L
from .context import Context

MAX_DIMS = 4


class _DataView:
    """Owner of a numpy view over a created tensor's memory: holds a reference to the
    tensor (lgd_tensor_retain) until the view, and every array derived from it, is gone."""

    __slots__ = ("__array_interface__", "_tensor", "__weakref__")

    def __init__(self, tensor: int, addr: int, shape: Tuple[int, ...]):
        self._tensor = L.lgd_tensor_retain(tensor)
        self.__array_interface__ = {"data": (addr, False), "shape": shape, "typestr": "<f4",
                                    "version": 3}

    def __del__(self) -> None:
        t, self._tensor = self._tensor, None
        if t:
            try:
                L.lgd_tensor_destroy(t)
            except Exception:  # noqa: BLE001 - interpreter shutdown: nothing to do
                pass


class Tensor(_core.Handle):
    """A float32 tensor of a context, 1 to 4 dimensions (the first is the batch).

    Make one with :meth:`zeros` (created on the backend), :meth:`from_array` (created and
    filled with a copy) or :meth:`wrap` (over a numpy array's memory without a copy; CPU
    backend only). Every function of the package that takes an array also takes a Tensor,
    which it uses as is.
    """

    _destroy = staticmethod(L.lgd_tensor_destroy)
    _kind = "tensor"

    def __init__(self, ptr: int, ctx_state: _core.ContextState, ctxp: int,
                 array: Optional[np.ndarray] = None):
        super().__init__(ptr, ctx_state, ctxp)
        self._array = array  # a wrapped array (also held by the library's registry)

    # --- construction ---

    @classmethod
    def zeros(cls, ctx: Context, shape: Sequence[int]) -> "Tensor":
        """A zero-filled tensor of `shape` on the context's backend."""
        shape = tuple(int(s) for s in shape)
        if not 1 <= len(shape) <= MAX_DIMS:
            raise ValueError(f"shape: 1 to {MAX_DIMS} dimensions, got {shape}")
        dims = (c_int64 * len(shape))(*shape)
        out = c_void_p()
        st = L.lgd_tensor_create(ctx.ptr, len(shape), dims, byref(out))
        _core.finish(ctx._state, st, ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr)

    @classmethod
    def from_array(cls, ctx: Context, array: Any) -> "Tensor":
        """A tensor created on the backend holding a copy of `array` (converted to
        float32; 1 to 4 dimensions)."""
        arr = _core.as_f32(array, "array", range(1, MAX_DIMS + 1))
        t = cls.zeros(ctx, arr.shape)
        t.upload(arr)
        return t

    @classmethod
    def wrap(cls, ctx: Context, array: np.ndarray) -> "Tensor":
        """A tensor over `array`'s memory, without a copy (lgd_tensor_wrap): the library
        reads and writes the array in place. The array must be a writable, C-contiguous,
        aligned float32 numpy array of 1 to 4 dimensions; it is kept alive until the
        tensor is freed (by the library's release callback, after the last reference
        goes). Host memory on a device backend raises :class:`lgd.UnsupportedError`."""
        arr = _core.check_inplace(array, "array")
        if not 1 <= arr.ndim <= MAX_DIMS:
            raise ValueError(f"array: 1 to {MAX_DIMS} dimensions, got shape {arr.shape}")
        dims = (c_int64 * arr.ndim)(*arr.shape)
        key = _core.register(arr)
        out = c_void_p()
        st = L.lgd_tensor_wrap(ctx.ptr, L.MEMORY_HOST, arr.ndim, dims, arr.ctypes.data,
                               _core.RELEASE, key, byref(out))
        if st:
            _core.unregister(key)  # not taken over on failure
        _core.finish(ctx._state, st, ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr, arr)

    # --- shape ---

    @property
    def ndim(self) -> int:
        return int(L.lgd_tensor_ndim(self.ptr))

    @property
    def shape(self) -> Tuple[int, ...]:
        p = self.ptr
        return tuple(int(L.lgd_tensor_dim(p, i)) for i in range(L.lgd_tensor_ndim(p)))

    @property
    def numel(self) -> int:
        return int(L.lgd_tensor_numel(self.ptr))

    def __len__(self) -> int:
        return self.shape[0]

    # --- data ---

    def upload(self, array: Any) -> None:
        """Copies `array` (as many elements as the tensor, converted to float32; its
        shape may differ) into the tensor."""
        arr = _core.as_f32(array, "array")
        self._finish(L.lgd_tensor_upload(self.ptr, arr.ctypes.data, arr.size))

    def download(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """A copy of the data as a numpy array of the tensor's shape (into `out` when
        given: float32, C-contiguous, of the tensor's shape)."""
        shape = self.shape
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        else:
            _core.check_inplace(out, "out")
            if out.shape != shape:
                raise ValueError(f"out: expected shape {shape}, got {out.shape}")
        self._finish(L.lgd_tensor_download(self.ptr, out.ctypes.data, out.size))
        return out

    def numpy(self) -> np.ndarray:
        """The data as numpy: without a copy on the CPU backend (a view that keeps the
        tensor alive; writes go to the tensor), a downloaded copy on a device backend."""
        if not self._state.host:
            return self.download()
        if self._array is not None:
            return self._array
        addr = L.lgd_tensor_data(self.ptr)
        owner = _DataView(self.ptr, addr, self.shape)
        return np.asarray(owner)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.download() if copy or not self._state.host else self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def fill(self, value: float) -> None:
        """Sets every element to `value`."""
        self._finish(L.lgd_tensor_fill(self.ptr, float(value)))

    def copy_from(self, src: "Tensor") -> None:
        """Copies `src` (same context, same number of elements) into this tensor."""
        self._finish(L.lgd_tensor_copy(self.ptr, src.ptr))

    @property
    def data_ptr(self) -> int:
        """The backend pointer to the data (host memory on the CPU, device memory on
        CUDA), valid while the tensor is."""
        return int(L.lgd_tensor_data(self.ptr) or 0)

    def __repr__(self) -> str:
        if self.closed:
            return "<lgd.Tensor closed>"
        return f"<lgd.Tensor shape={self.shape}{' wrapped' if self._array is not None else ''}>"
