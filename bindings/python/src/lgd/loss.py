"""Loss: a differentiable l(x0) that guidance steers samples to minimise.

Built-in losses: squared error, linear inverse problem, logistic, weighted sums, the
paper's trajectory losses (path following, obstacle avoidance), the inverse problems of a
matrix-free image operator (:meth:`Loss.operator`, liblgd >= 0.5) and a loaded network
as a loss (:meth:`Loss.network`: a classifier's cross-entropy, a scalar energy, a squared
error of the network's output; liblgd >= 0.5); and losses written in Python
(:meth:`Loss.from_callable`).
"""
from __future__ import annotations

import enum
import os
from ctypes import byref, c_void_p, pointer, sizeof
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _lib as L
from ._callables import LossEntry
from .context import Context, _enum
from .network import Adapter, Network
from .operator import Operator


class NetworkLossKind(enum.IntEnum):
    """How a network loss reduces the network's output row f (lgd_network_loss_kind)."""
    CROSS_ENTROPY = 0   #: -log softmax(f)[y] with y the row's label; out_dim >= 2
    SCALAR = 1          #: f_0; out_dim 1
    SQUARED_ERROR = 2   #: |f - y|^2 / 2 with y the row's target (0 until one is set)


class NetworkLossInput(enum.IntEnum):
    """What a network loss's network receives (lgd_network_input)."""
    CLEAN = 0   #: x_in = x, t = the options' t
    NOISY = 1   #: x_in = c_in(sigma) x, t = t(sigma) by the adapter


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

    @classmethod
    def operator(cls, ctx: Context, op: Operator, y: Any, s2: float) -> "Loss":
        """The inverse-problem loss l(x) = |y - H x|^2 / (2 s2) with H the matrix-free
        operator `op` (lgd_loss_create_operator, liblgd >= 0.5); gradient
        H^T (H x - y) / s2. The loss's dim is channels * height * width.

        y: the measurement, one row of m values (:meth:`Operator.dims`), as [m] or as an
        image [C][H'][W'] (shared by every sample), or one row per sample, [batch][m] or
        [batch][C][H'][W'] (row b for sample b; another batch at evaluation raises
        :class:`lgd.ShapeMismatchError`). s2 is the noise *variance* s^2 (> 0), not s
        (compare :meth:`linear`'s noise_sigma). The paper's super-resolution loss
        (App. B.2) is s = 0.25 with the guidance scaled by s2 (step rule "score" with
        scale s2)."""
        _, m = op.dims(ctx)
        yy = _core.as_f32(y, "y")
        if yy.size == m:
            rows = 1
        elif yy.ndim >= 2 and int(np.prod(yy.shape[1:])) == m:
            rows = yy.shape[0]
        else:
            raise ValueError(f"y: expected one or more rows of m = {m} values ([m], "
                             f"[batch][m] or images), got shape {yy.shape}")
        o, keep = op.to_c()
        out = c_void_p()
        st = L.lgd_loss_create_operator(ctx.ptr, byref(o), yy.ctypes.data, rows, float(s2),
                                        byref(out))
        del keep
        return cls._made(ctx, st, out)

    @classmethod
    def network(cls, network: Network,
                kind: Union[str, int, NetworkLossKind] = NetworkLossKind.CROSS_ENTROPY, *,
                scale: float = 1.0, input: Union[str, int, NetworkLossInput] = "clean",
                t: float = 0.0, sigma: float = 0.002, adapter: Optional[Adapter] = None,
                max_rows: int = 256, labels: Any = None, targets: Any = None) -> "Loss":
        """A loaded network as a loss, l(x) = scale * R(f(x_in, t))
        (lgd_loss_create_network, liblgd >= 0.5; see lgd/network_loss.h).

        kind: ``"cross_entropy"`` (default; R = -log softmax(f)[y], a classifier's
        -log p(y | x), with the labels of :meth:`set_labels`), ``"scalar"`` (R = f_0, a
        network with out_dim 1) or ``"squared_error"`` (R = |f - y|^2 / 2 with the targets
        of :meth:`set_targets`, zero until set). input: ``"clean"`` (x_in = x, time input
        t) or ``"noisy"`` (x_in = c_in(sigma) x, t = t(sigma) by `adapter`, None for the
        file's: a noise-aware classifier; sigma is `sigma` for :meth:`eval` and guidance,
        or the argument of :meth:`eval_sigma` and of :meth:`lgd.Model.classifier_guided`).
        max_rows: rows per network call (bounds the activation memory). labels, targets:
        set at once (as :meth:`set_labels`, :meth:`set_targets`). The loss keeps a
        reference to the network; dim is the network's."""
        o = L.NetworkLossOptions()
        _core.check_plain(L.lgd_network_loss_options_init(byref(o), sizeof(o)),
                          "lgd_network_loss_options_init")
        o.kind = _enum(NetworkLossKind, kind, "kind")
        o.scale = float(scale)
        o.input = _enum(NetworkLossInput, input, "input")
        o.t = float(t)
        o.sigma = float(sigma)
        o.max_rows = int(max_rows)
        keep = None
        if adapter is not None:
            a, arr = adapter.to_c()
            keep = (a, arr)
            o.adapter = pointer(a)
        out = c_void_p()
        st = L.lgd_loss_create_network(network._ctxp, network.ptr, byref(o), byref(out))
        del keep
        _core.finish(network._state, st, network._ctxp)
        loss = cls(_core.handle_value(out), network._state, network._ctxp)
        if labels is not None:
            loss.set_labels(labels)
        if targets is not None:
            loss.set_targets(targets)
        return loss

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

    def eval_sigma(self, x: Any, sigma: float,
                   grad: bool = True) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """A noisy-input network loss at noise level sigma instead of its own
        (lgd_loss_network_eval_sigma, liblgd >= 0.5): l(x; sigma), and with grad (default)
        (loss, grad), shaped as :meth:`eval`'s. For classifier guidance by hand:
        grad log p(y | x_sigma) = -grad for a cross-entropy of scale 1. Raises
        :class:`lgd.UnsupportedError` for another loss or a clean-input one."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2, 3))
            nd = int(L.lgd_tensor_ndim(tx))
            xshape = tuple(int(L.lgd_tensor_dim(tx, i)) for i in range(nd))
            tl = ct.output(xshape[:-1])
            tg = ct.output(xshape) if grad else None
            self._call(L.lgd_loss_network_eval_sigma, self.ptr, tx, float(sigma), tl, tg)
            ct.fetch()
            if grad:
                assert tg is not None
                return ct.array(tl), ct.array(tg)
            return ct.array(tl)

    def set_labels(self, labels: Any) -> None:
        """The labels of a cross-entropy network loss (lgd_loss_network_set_labels): one
        int (every sample), or [rows] ints in [0, out_dim) with rows 1 or the batch of
        each later evaluation (label b for sample b and all its draws). Replaces the
        labels set before (on failure they stay). Raises :class:`lgd.UnsupportedError`
        for another loss, :class:`lgd.InvalidArgumentError` naming a label out of
        range."""
        arr = np.asarray(labels)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"labels: expected integers, got dtype {arr.dtype}")
        if arr.ndim > 1:
            raise ValueError(f"labels: expected an int or a 1-D array, got shape {arr.shape}")
        lab = np.ascontiguousarray(arr.reshape(-1), dtype=np.int32)
        if lab.size == 0:
            raise ValueError("labels: empty")
        if not np.array_equal(lab, arr.reshape(-1)):
            raise ValueError("labels: a value does not fit in int32")
        self._finish(L.lgd_loss_network_set_labels(self.ptr, lab.ctypes.data, lab.size))

    def set_targets(self, targets: Any) -> None:
        """The targets of a squared-error network loss (lgd_loss_network_set_targets):
        [out_dim] (every sample) or [rows][out_dim] (rows 1 or the batch of each later
        evaluation); None goes back to the zero target (R = |f|^2 / 2). Replaces the
        targets set before (on failure they stay). Raises
        :class:`lgd.ShapeMismatchError` when the last dimension is not the network's
        out_dim, :class:`lgd.UnsupportedError` for another loss."""
        if targets is None:
            self._finish(L.lgd_loss_network_set_targets(self.ptr, None, 0, 0))
            return
        y = _core.as_f32(targets, "targets", (1, 2))
        if y.size == 0:
            raise ValueError(f"targets: empty array (shape {y.shape})")
        rows, cols = (1, y.shape[0]) if y.ndim == 1 else y.shape
        self._finish(L.lgd_loss_network_set_targets(self.ptr, y.ctypes.data, rows, cols))

    def __call__(self, x: Any) -> np.ndarray:
        """The loss values of x (no gradient)."""
        res = self.eval(x, grad=False)
        assert isinstance(res, np.ndarray)
        return res
