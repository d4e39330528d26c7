"""Loss: a differentiable l(x0) that guidance steers samples to minimise.

Built-in losses: squared error, linear inverse problem, logistic, weighted sums, and the
paper's trajectory losses (path following, obstacle avoidance); and losses written in
Python (:meth:`Loss.from_callable`).
"""
from __future__ import annotations

from ctypes import byref, c_void_p, sizeof
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _lib as L
from ._callables import LossEntry
from .context import Context


@dataclass
class TrajectoryLayout:
    """Where a trajectory's root lives in a sample (lgd_trajectory_layout): frame t's
    root is x[root_offset + t * frame_stride + {0, 1}], velocities (integrated, scaled by
    velocity_scale) or positions."""

    frames: int
    frame_stride: int = 2
    root_offset: int = 0
    velocities: bool = True
    velocity_scale: float = 1.0

    def to_c(self) -> L.TrajectoryLayout:
        o = L.TrajectoryLayout()
        _core.check_plain(L.lgd_trajectory_layout_init(byref(o), sizeof(o)),
                          "lgd_trajectory_layout_init")
        o.frames = int(self.frames)
        o.frame_stride = int(self.frame_stride)
        o.root_offset = int(self.root_offset)
        o.velocities = 1 if self.velocities else 0
        o.velocity_scale = float(self.velocity_scale)
        return o


def _rows(a: Any, name: str, width: int) -> Tuple[np.ndarray, int]:
    """[width] or [rows][width] as (array, rows)."""
    arr = _core.as_f32(a, name, (1, 2))
    if arr.shape[-1] != width:
        raise ValueError(f"{name}: the last dimension must be {width}, got shape {arr.shape}")
    return arr, (1 if arr.ndim == 1 else arr.shape[0])


class Loss(_core.Handle):
    """A loss l(x0) on samples of `dim` floats (see the module's docstring)."""

    _destroy = staticmethod(L.lgd_loss_destroy)
    _kind = "loss"

    def __init__(self, ptr: int, state: _core.ContextState, ctxp: int, keep: Any = None):
        super().__init__(ptr, state, ctxp)
        self._keep = keep

    @classmethod
    def _made(cls, ctx: Context, status: int, out: c_void_p, keep: Any = None) -> "Loss":
        _core.finish(ctx._state, status, ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr, keep)

    # --- built-in losses ---

    @classmethod
    def squared_error(cls, ctx: Context, target: Any, weights: Any = None) -> "Loss":
        """l(x) = sum_j w_j (x_j - y_j)^2; target [dim] (shared) or [batch][dim] (row b
        for sample b); weights [dim] (>= 0) or None for ones."""
        y = _core.as_f32(target, "target", (1, 2))
        dim = y.shape[-1]
        rows = 1 if y.ndim == 1 else y.shape[0]
        w = None
        if weights is not None:
            w = _core.as_f32(weights, "weights", (1,))
            if w.shape != (dim,):
                raise ValueError(f"weights: expected shape ({dim},), got {w.shape}")
        out = c_void_p()
        st = L.lgd_loss_create_squared_error(ctx.ptr, dim, y.ctypes.data, rows,
                                             _core.f32_pointer(w), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def linear(cls, ctx: Context, H: Any, y: Any, noise_sigma: float) -> "Loss":
        """l(x) = |y - H x|^2 / (2 s^2): H [m][dim], y [m] or [batch][m], s = noise_sigma."""
        h = _core.as_f32(H, "H", (2,))
        m, dim = h.shape
        yy, rows = _rows(y, "y", m)
        out = c_void_p()
        st = L.lgd_loss_create_linear(ctx.ptr, dim, m, h.ctypes.data, yy.ctypes.data, rows,
                                      float(noise_sigma), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def load_plugin(cls, ctx: Context, path: Union[str, "os.PathLike[str]"], name: str,
                    dim: int, config: str = "") -> "Loss":
        """The loss `name` of dimension dim from the plugin at path (a shared object,
        docs/plugins.md), made from its configuration string; the plugin stays loaded
        while the loss lives (lgd_loss_load_plugin, liblgd >= 0.4)."""
        out = c_void_p()
        st = L.lgd_loss_load_plugin(ctx.ptr, os.fsencode(path), name.encode(), int(dim),
                                    config.encode(), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def logistic(cls, ctx: Context, a: Any, b: float) -> "Loss":
        """l(x) = -log sigmoid(a . x + b) = softplus(-(a . x + b)); a [dim]."""
        aa = _core.as_f32(a, "a", (1,))
        out = c_void_p()
        st = L.lgd_loss_create_logistic(ctx.ptr, aa.size, aa.ctypes.data, float(b), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def sum(cls, terms: Sequence["Loss"], weights: Any = None) -> "Loss":
        """l(x) = sum_k weights[k] terms[k](x) (weights None: ones). The sum keeps its
        own references to the terms."""
        terms = list(terms)
        if not terms:
            raise ValueError("terms: at least one loss")
        for t in terms:
            if not isinstance(t, Loss):
                raise TypeError(f"terms: expected lgd.Loss objects, got {type(t).__name__}")
        w = None
        if weights is not None:
            w = _core.as_f32(weights, "weights", (1,))
            if w.size != len(terms):
                raise ValueError(f"weights: {w.size} values for {len(terms)} terms")
        arr = (c_void_p * len(terms))(*[t.ptr for t in terms])
        first = terms[0]
        out = c_void_p()
        st = L.lgd_loss_create_sum(first._ctxp, len(terms), arr, _core.f32_pointer(w),
                                   byref(out))
        _core.finish(first._state, st, first._ctxp)
        return cls(_core.handle_value(out), first._state, first._ctxp)

    @classmethod
    def path(cls, ctx: Context, dim: int, layout: TrajectoryLayout, path: Any) -> "Loss":
        """Path following (the paper's Eq. 14): l(x) = sum_t |y_t - p_t|^2 with path
        [frames][2] (shared) or [batch][frames][2]."""
        p = _core.as_f32(path, "path", (2, 3))
        rows = 1 if p.ndim == 2 else p.shape[0]
        lay = layout.to_c()
        out = c_void_p()
        st = L.lgd_loss_create_path(ctx.ptr, int(dim), byref(lay), p.ctypes.data, rows,
                                    byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def obstacle(cls, ctx: Context, dim: int, layout: TrajectoryLayout, *, goal: Any = None,
                 obstacles: Any = None, sharpness: float = 50.0, obstacle_weight: float = 100.0,
                 goal_weight: float = 1.0) -> "Loss":
        """Obstacle avoidance (the paper's Eq. 15 and 20): goal [2] or [batch][2] (or None),
        obstacles [count][3] (centre x, centre y, radius) (or None); the weights default to
        the paper's constants."""
        g, rows = (None, 1) if goal is None else _rows(goal, "goal", 2)
        obs = None
        count = 0
        if obstacles is not None:
            obs = _core.as_f32(obstacles, "obstacles", (1, 2))
            if obs.ndim == 1 and obs.size == 3:
                obs = obs.reshape(1, 3)
            if obs.ndim != 2 or obs.shape[1] != 3:
                raise ValueError(f"obstacles: expected shape [count][3], got {obs.shape}")
            count = obs.shape[0]
        lay = layout.to_c()
        o = L.ObstacleOptions()
        _core.check_plain(L.lgd_obstacle_options_init(byref(o), sizeof(o)),
                          "lgd_obstacle_options_init")
        o.sharpness, o.obstacle_weight, o.goal_weight = (float(sharpness),
                                                         float(obstacle_weight),
                                                         float(goal_weight))
        out = c_void_p()
        st = L.lgd_loss_create_obstacle_avoidance(ctx.ptr, int(dim), byref(lay),
                                                  _core.f32_pointer(g), rows,
                                                  _core.f32_pointer(obs), count, byref(o),
                                                  byref(out))
        return cls._made(ctx, st, out)

    # --- losses written in Python ---

    @classmethod
    def from_callable(cls, ctx: Context, dim: int, fn: Callable[..., Any], *,
                      inplace: bool = False, draws: bool = False) -> "Loss":
        """A loss written in Python.

        ``fn(x) -> (loss, grad)`` with x [batch][n][dim] (n draws per sample: a chunk of
        the guidance's Monte Carlo draws), loss [batch][n] and grad [batch][n][dim]; when
        the library needs no gradient (exact guidance, values only) fn may return the loss
        alone and a returned gradient is ignored. With ``inplace=True``:
        ``fn(x, loss, grad)`` writes every element of loss, and of grad unless it is None.
        With ``draws=True`` fn also gets which draws it receives:
        ``fn(x, first_draw, total_draws)`` (or ``fn(x, first_draw, total_draws, loss,
        grad)``): row (b, i) is draw first_draw + i of total_draws.

        x is a read-only view, valid during the call. An exception raised by fn comes
        back from the call that evaluated the loss (the same exception, with
        ``lgd_status`` attached). fn is kept until the library frees the loss."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        entry = LossEntry(fn, inplace, ctx._state, ctx.ptr)
        key = _core.register(entry)
        cb = L.LossCallbacks()
        _core.check_plain(L.lgd_loss_callbacks_init(byref(cb), sizeof(cb)),
                          "lgd_loss_callbacks_init")
        cb.memory = L.MEMORY_HOST
        cb.dim = int(dim)
        if draws:
            cb.eval_draws = _core.LOSS_DRAWS
        else:
            cb.eval = _core.LOSS
        cb.destroy = _core.DESTROY
        cb.user = key
        out = c_void_p()
        st = L.lgd_loss_create_callbacks(ctx.ptr, byref(cb), byref(out))
        if st:
            _core.unregister(key)
        return cls._made(ctx, st, out)

    # --- use ---

    @property
    def dim(self) -> int:
        return int(L.lgd_loss_dim(self.ptr))

    def eval(self, x: Any, grad: bool = True) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """The loss of x [batch][dim] (loss [batch]) or [batch][n][dim] (loss [batch][n]);
        with grad (default), (loss, grad) with grad shaped like x."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2, 3))
            nd = int(L.lgd_tensor_ndim(tx))
            xshape = tuple(int(L.lgd_tensor_dim(tx, i)) for i in range(nd))
            tl = ct.output(xshape[:-1])
            tg = ct.output(xshape) if grad else None
            self._call(L.lgd_loss_eval, self.ptr, tx, tl, tg)
            ct.fetch()
            if grad:
                assert tg is not None
                return ct.array(tl), ct.array(tg)
            return ct.array(tl)

    def __call__(self, x: Any) -> np.ndarray:
        """The loss values of x (no gradient)."""
        res = self.eval(x, grad=False)
        assert isinstance(res, np.ndarray)
        return res
