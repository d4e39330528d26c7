"""Operator: the matrix-free linear operators H of image inverse problems (lgd/operator.h,
liblgd >= 0.5): average pooling, antialiased bicubic downsampling, an inpainting mask and
a Gaussian blur, on images laid out [channels][height][width] (CHW, flat and row-major,
as the networks lay them out).

An :class:`Operator` is a plain description (no C object): :meth:`Operator.dims` gives
the lengths of x and y = H x, :meth:`Operator.apply` computes H x or H^T y with the
library's kernels (the same H as the loss), and :meth:`lgd.Loss.operator` makes the
inverse-problem loss |y - H x|^2 / (2 s2) over it.

    op = lgd.Operator.avg_pool(3, 64, 64, factor=4)         # 3x64x64 -> 3x16x16
    y = op.apply(ctx, x0) + 0.05 * rng.standard_normal(...)   # a measurement
    loss = lgd.Loss.operator(ctx, op, y, s2=0.25 ** 2)
"""
from __future__ import annotations

import enum
from ctypes import POINTER, byref, c_float, c_int64, sizeof
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _core
from . import _lib as L
from .context import Context, _enum


class OperatorKind(enum.IntEnum):
    """Which linear operator H (lgd_operator_kind)."""
    AVG_POOL = 0       #: means of non-overlapping factor x factor blocks
    BICUBIC_DOWN = 1   #: antialiased bicubic downsampling (Keys, a = -0.5), PyTorch's
    MASK = 2           #: y = mask * x elementwise
    BLUR = 3           #: separable Gaussian blur, reflect padding


@dataclass
class Operator:
    """A linear operator H on images [channels][height][width] (lgd_operator_options).

    kind: ``"avg_pool"`` (default), ``"bicubic_down"``, ``"mask"`` or ``"blur"`` (or an
    :class:`OperatorKind`). factor: AVG_POOL and BICUBIC_DOWN (>= 1, dividing height and
    width; default 2). blur_sigma (pixels, > 0; default 1) and blur_radius (taps each
    side, 1 to 4096, or 0 for ceil(3 blur_sigma)): BLUR. mask: MASK, the per-pixel
    weights, shaped like an image [channels][height][width] (or flat, channels * height *
    width values), or [height][width] shared by the channels (repeated here, as the
    library wants one value per pixel of every channel). The fields a kind does not use
    are ignored. The constructors :meth:`avg_pool`, :meth:`bicubic_down`,
    :meth:`inpainting` and :meth:`blur` set the fields of each kind; the library checks
    the values (:class:`lgd.InvalidArgumentError` with its message)."""

    kind: Union[str, int, OperatorKind] = OperatorKind.AVG_POOL
    channels: int = 0
    height: int = 0
    width: int = 0
    factor: int = 2
    blur_sigma: float = 1.0
    blur_radius: int = 0
    mask: Optional[Any] = None

    # --- constructors ---

    @classmethod
    def avg_pool(cls, channels: int, height: int, width: int, factor: int = 2) -> "Operator":
        """y[c][i][j] = the mean of the factor x factor block of x at (f i, f j):
        [channels][height / factor][width / factor]."""
        return cls(OperatorKind.AVG_POOL, channels, height, width, factor=factor)

    @classmethod
    def bicubic_down(cls, channels: int, height: int, width: int,
                     factor: int = 2) -> "Operator":
        """Antialiased bicubic downsampling by factor, as PyTorch's
        ``F.interpolate(x, scale_factor=1/factor, mode='bicubic', antialias=True)``."""
        return cls(OperatorKind.BICUBIC_DOWN, channels, height, width, factor=factor)

    @classmethod
    def inpainting(cls, mask: Any, channels: Optional[int] = None) -> "Operator":
        """y = mask * x (H^T = H): mask [channels][height][width], or [height][width]
        shared by `channels` channels (default 1)."""
        m = _core.as_f32(mask, "mask", (2, 3))
        if m.ndim == 3:
            c, h, w = m.shape
            if channels is not None and int(channels) != c:
                raise ValueError(f"mask: {c} channels, but channels = {channels}")
        else:
            (h, w), c = m.shape, 1 if channels is None else int(channels)
        return cls(OperatorKind.MASK, c, h, w, mask=m)

    @classmethod
    def blur(cls, channels: int, height: int, width: int, sigma: float = 1.0,
             radius: int = 0) -> "Operator":
        """Separable Gaussian blur of standard deviation sigma (pixels) and `radius` taps
        each side (0: ceil(3 sigma)), reflect padding; y is shaped like x."""
        return cls(OperatorKind.BLUR, channels, height, width, blur_sigma=sigma,
                   blur_radius=radius)

    # --- the C struct ---

    def _kind(self) -> OperatorKind:
        return OperatorKind(_enum(OperatorKind, self.kind, "kind"))

    def to_c(self) -> Tuple[L.OperatorOptions, Optional[np.ndarray]]:
        """The C struct, and the mask array it points into (keep it alive during the
        call; the library copies the mask)."""
        o = L.OperatorOptions()
        _core.check_plain(L.lgd_operator_options_init(byref(o), sizeof(o)),
                          "lgd_operator_options_init")
        o.kind = int(self._kind())
        o.channels, o.height, o.width = int(self.channels), int(self.height), int(self.width)
        o.factor = int(self.factor)
        o.blur_sigma = float(self.blur_sigma)
        o.blur_radius = int(self.blur_radius)
        mask = None
        if self.mask is not None:
            mask = _core.as_f32(self.mask, "mask")
            c, h, w = int(self.channels), int(self.height), int(self.width)
            if c > 1 and mask.size == h * w and mask.size != c * h * w:
                mask = np.ascontiguousarray(np.broadcast_to(mask.reshape(1, h, w), (c, h, w)))
            if mask.size != c * h * w:
                # the library reads dim values at the pointer and cannot check the length
                raise ValueError(f"mask: {mask.size} values for an image of {c} x {h} x {w} "
                                 f"= {c * h * w} (or {h * w} shared by the channels)")
            o.mask = mask.ctypes.data_as(POINTER(c_float))
        return o, mask

    # --- sizes and application ---

    def dims(self, ctx: Context) -> Tuple[int, int]:
        """(dim, m): the length of x (channels * height * width) and of y = H x
        (lgd_operator_dims, which checks the options)."""
        o, keep = self.to_c()
        dim, m = c_int64(), c_int64()
        st = L.lgd_operator_dims(ctx.ptr, byref(o), byref(dim), byref(m))
        del keep
        _core.finish(ctx._state, st, ctx.ptr)
        return int(dim.value), int(m.value)

    def image_shapes(self) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
        """The shapes of x and of y = H x as images: ((C, H, W), (C, H', W'))."""
        c, h, w = int(self.channels), int(self.height), int(self.width)
        if self._kind() in (OperatorKind.AVG_POOL, OperatorKind.BICUBIC_DOWN):
            f = max(int(self.factor), 1)
            return (c, h, w), (c, h // f, w // f)
        return (c, h, w), (c, h, w)

    def apply(self, ctx: Context, x: Any, adjoint: bool = False) -> np.ndarray:
        """H x (or H^T x with ``adjoint=True``) for every row of x, with the library's
        kernels (lgd_operator_apply).

        x holds whole rows of the input length (dim for H, m for H^T): images
        [..., C, H, W] (or [..., C, H', W'] for H^T) give images of the output shape,
        rows [..., len] give rows [..., out_len], anything else of a multiple of the
        input length gives [rows][out_len]. Statuses as lgd_operator_apply (e.g.
        :class:`lgd.ShapeMismatchError` when x's size is not a multiple of the input
        length)."""
        dim, m = self.dims(ctx)
        n_in, n_out = (m, dim) if adjoint else (dim, m)
        img_x, img_y = self.image_shapes()
        img_in, img_out = (img_y, img_x) if adjoint else (img_x, img_y)
        arr = _core.as_f32(x, "x")
        if arr.size == 0:
            raise ValueError(f"x: empty array (shape {arr.shape})")
        rows = max(1, arr.size // n_in)
        if arr.ndim >= 3 and tuple(arr.shape[-3:]) == img_in and \
                img_out[0] * img_out[1] * img_out[2] == n_out:
            shape: Tuple[int, ...] = tuple(arr.shape[:-3]) + img_out
        elif arr.ndim >= 1 and arr.shape[-1] == n_in:
            shape = tuple(arr.shape[:-1]) + (n_out,)
        else:
            shape = (rows, n_out)
        o, keep = self.to_c()
        with _core.CallTensors(ctx.ptr, ctx._state.host) as ct:
            tx = ct.input(arr.reshape(-1), "x")
            to = ct.output((rows * n_out,))
            st = L.lgd_operator_apply(ctx.ptr, byref(o), 1 if adjoint else 0, tx, to)
            del keep
            _core.finish(ctx._state, st, ctx.ptr)
            ct.fetch()
            return ct.array(to).reshape(shape)
