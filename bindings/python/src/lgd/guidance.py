"""Guidance: estimating g = grad_x log p_sigma(y | x) (DPS, LGD-MC, exact importance
sampling) and the guided denoiser xhat + lambda(sigma) g with its step rule."""
from __future__ import annotations

import enum
import math
from ctypes import POINTER, byref, c_float, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from . import _core
from . import _lib as L
from .context import _enum
from .loss import Loss
from .model import Model


class GuidanceKind(enum.IntEnum):
    """The estimator of g (lgd_guidance_kind)."""
    NONE = 0
    DPS = 1
    MC = 2
    EXACT = 3
    MC_GRADIENT_FREE = 4  # liblgd >= 0.5: LGD-MC from loss values only


class StepRule(enum.IntEnum):
    """How lambda(sigma) is computed (lgd_step_rule): SCORE lambda = scale sigma^2,
    X0 lambda = scale, NORMALIZED lambda = scale / sqrt(loss)."""
    SCORE = 0
    X0 = 1
    NORMALIZED = 2


@dataclass(frozen=True)
class Report:
    """Diagnostics of one guidance evaluation (lgd_guidance_report): batch averages and,
    when asked for (``rows=True``), the per-row values they average."""

    sigma: float
    mean_loss: float
    mean_ess: float
    min_ess: float
    mean_grad_norm: float
    mean_lambda: float
    active: bool
    row_loss: Optional[np.ndarray] = None
    row_ess: Optional[np.ndarray] = None
    row_grad_norm: Optional[np.ndarray] = None
    row_lambda: Optional[np.ndarray] = None

    @classmethod
    def from_c(cls, r: Any, rows: Optional[Tuple[np.ndarray, ...]] = None) -> "Report":
        rl = rows if rows is not None else (None, None, None, None)
        return cls(float(r.sigma), float(r.mean_loss), float(r.mean_ess), float(r.min_ess),
                   float(r.mean_grad_norm), float(r.mean_lambda), bool(r.active), *rl)


class ReportRequest:
    """A C report for one call (per-row arrays of `batch` floats when `rows`)."""

    __slots__ = ("c", "arrays")

    def __init__(self, batch: int, rows: bool):
        self.c = L.GuidanceReport()
        _core.check_plain(L.lgd_guidance_report_init(byref(self.c), sizeof(self.c)),
                          "lgd_guidance_report_init")
        self.arrays: Optional[Tuple[np.ndarray, ...]] = None
        if rows:
            self.arrays = tuple(np.zeros(batch, np.float32) for _ in range(4))
            self.c.rows = batch
            fp = POINTER(c_float)
            self.c.row_loss, self.c.row_ess, self.c.row_grad_norm, self.c.row_lambda = (
                a.ctypes.data_as(fp) for a in self.arrays)

    def result(self) -> Report:
        return Report.from_c(self.c, tuple(a.copy() for a in self.arrays)
                             if self.arrays is not None else None)


class Guidance(_core.Handle):
    """A guidance estimator for `model` and `loss` (both of one context, same dim).

    Parameters (lgd_guidance_options): kind ``"none"``, ``"dps"``, ``"mc"`` (default),
    ``"exact"`` or ``"mc_gradient_free"`` (liblgd >= 0.5); n_samples (MC / exact draws,
    default 10); chunk_size (draws per loss
    call, 0 = min(n, 16)); sigma_data (r(sigma) = sigma s_d / sqrt(sigma^2 + s_d^2)) or
    radius, a Python function r(sigma) (LGD-MC); step_rule ``"score"`` (default),
    ``"x0"`` or ``"normalized"`` with scale; the window [sigma_min_active,
    sigma_max_active]; seed of the draws.

    The guidance keeps the model and the loss alive (and the Python radius function,
    as long as this wrapper or a sampler using it exists).
    """

    _destroy = staticmethod(L.lgd_guidance_destroy)
    _kind = "guidance"

    def __init__(self, model: Model, loss: Optional[Loss] = None,
                 kind: Union[str, int, GuidanceKind] = "mc", *, n_samples: int = 10,
                 chunk_size: int = 0, sigma_data: float = 1.0,
                 radius: Optional[Callable[[float], float]] = None,
                 step_rule: Union[str, int, StepRule] = "score", scale: float = 1.0,
                 sigma_min_active: float = 0.0, sigma_max_active: float = math.inf,
                 seed: int = 0):
        if not isinstance(model, Model):
            raise TypeError(f"model: expected an lgd.Model, got {type(model).__name__}")
        if loss is not None and not isinstance(loss, Loss):
            raise TypeError(f"loss: expected an lgd.Loss, got {type(loss).__name__}")
        state, ctxp = model._state, model._ctxp
        o = L.GuidanceOptions()
        _core.check_plain(L.lgd_guidance_options_init(byref(o), sizeof(o)),
                          "lgd_guidance_options_init")
        o.kind = _enum(GuidanceKind, kind, "kind")
        o.n_samples = int(n_samples)
        o.chunk_size = int(chunk_size)
        o.sigma_data = float(sigma_data)
        self._radius_cb = None
        if radius is not None:
            if not callable(radius):
                raise TypeError("radius: expected a callable r(sigma)")
            self._radius_cb = _core.radius_callback(state, radius)
            o.radius = self._radius_cb
        o.step_rule = _enum(StepRule, step_rule, "step_rule")
        o.scale = float(scale)
        o.sigma_min_active = float(sigma_min_active)
        o.sigma_max_active = float(sigma_max_active)
        o.seed = int(seed)
        out = c_void_p()
        st = L.lgd_guidance_create(ctxp, model.ptr, None if loss is None else loss.ptr,
                                   byref(o), byref(out))
        _core.finish(state, st, ctxp)
        super().__init__(_core.handle_value(out), state, ctxp)
        self.model, self.loss = model, loss
        self.dim = model.dim
        self.kind = GuidanceKind(o.kind)
        self.n_samples = int(n_samples)

    # --- shorthands ---

    @classmethod
    def none(cls, model: Model, **kw: Any) -> "Guidance":
        """No guidance: the guided denoiser is the model's (unguided sampling)."""
        return cls(model, None, "none", **kw)

    @classmethod
    def dps(cls, model: Model, loss: Loss, **kw: Any) -> "Guidance":
        """DPS: g = -J^T grad l(xhat)."""
        return cls(model, loss, "dps", **kw)

    @classmethod
    def mc(cls, model: Model, loss: Loss, n_samples: int = 10, **kw: Any) -> "Guidance":
        """LGD-MC with n_samples draws (the paper's Eq. 9). Without further options this
        is lgd_guidance_mc()."""
        if kw:
            return cls(model, loss, "mc", n_samples=n_samples, **kw)
        if not isinstance(model, Model) or not isinstance(loss, Loss):
            raise TypeError("mc: expected an lgd.Model and an lgd.Loss")
        out = c_void_p()
        st = L.lgd_guidance_mc(model._ctxp, model.ptr, loss.ptr, int(n_samples), byref(out))
        _core.finish(model._state, st, model._ctxp)
        self = cls.__new__(cls)
        _core.Handle.__init__(self, _core.handle_value(out), model._state, model._ctxp)
        self._radius_cb = None
        self.model, self.loss = model, loss
        self.dim = model.dim
        self.kind, self.n_samples = GuidanceKind.MC, int(n_samples)
        return self

    @classmethod
    def exact(cls, model: Model, loss: Loss, n_samples: int = 10, **kw: Any) -> "Guidance":
        """Self-normalised importance sampling from the exact posterior (models with
        exact posterior sampling, e.g. Gaussian mixtures)."""
        return cls(model, loss, "exact", n_samples=n_samples, **kw)

    @classmethod
    def mc_gradient_free(cls, model: Model, loss: Loss, n_samples: int = 100,
                         **kw: Any) -> "Guidance":
        """LGD-MC from loss values only: g = J^T sum_i w_i eps_i / r (the loss is called
        without a gradient; liblgd >= 0.5.0)."""
        return cls(model, loss, "mc_gradient_free", n_samples=n_samples, **kw)

    # --- use ---

    def set_condition(self, cond: Any) -> None:
        """Sets the model's condition rows [rows][cond_dim] (copied; rows must equal the
        batch of later calls), or clears it with None."""
        if cond is None:
            self._call(L.lgd_guidance_set_condition, self.ptr, None)
            return
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tc = ct.input(cond, "cond", (2,))
            self._call(L.lgd_guidance_set_condition, self.ptr, tc)

    def set_seed(self, seed: int) -> None:
        """The seed of the MC / exact draws (samplers set it to their own seed)."""
        L.lgd_guidance_set_seed(self.ptr, int(seed))

    def radius(self, sigma: float) -> float:
        """r(sigma) as LGD-MC uses it."""
        self._state.pending = None
        r = float(L.lgd_guidance_radius(self.ptr, float(sigma)))
        _core.finish(self._state, 0, self._ctxp)
        return r

    def term(self, x: Any, sigma: float, *, step_index: int = 0, first_row: int = 0,
             xhat: bool = False, report: bool = False, rows: bool = False) -> Any:
        """g = grad_x log p_sigma(y | x) for x [batch][dim] (always computed, whatever the
        window). step_index and first_row key the draws. Returns g, or a tuple (g, xhat)
        / (g, report) / (g, xhat, report) when xhat (D(x, sigma)) or report (a
        :class:`Report`, per row with ``rows=True``) is asked for."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2,))
            batch = int(L.lgd_tensor_dim(tx, 0))
            dim = int(L.lgd_tensor_dim(tx, 1))
            tg = ct.output((batch, dim))
            th = ct.output((batch, dim)) if xhat else None
            rep = ReportRequest(batch, rows) if (report or rows) else None
            self._call(L.lgd_guidance_term, self.ptr, tx, float(sigma), int(step_index),
                       int(first_row), tg, th, byref(rep.c) if rep else None)
            ct.fetch()
            res: Tuple[Any, ...] = (ct.array(tg),)
            if th is not None:
                res += (ct.array(th),)
            if rep is not None:
                res += (rep.result(),)
            return res[0] if len(res) == 1 else res

    def denoise(self, x: Any, sigma: float, *, step_index: int = 0, first_row: int = 0,
                report: bool = False, rows: bool = False) -> Any:
        """The guided denoiser xhat + lambda(sigma) g for x [batch][dim] (xhat outside the
        window). Returns it, or (it, report) when a report is asked for."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2,))
            batch = int(L.lgd_tensor_dim(tx, 0))
            to = ct.output((batch, int(L.lgd_tensor_dim(tx, 1))))
            rep = ReportRequest(batch, rows) if (report or rows) else None
            self._call(L.lgd_guidance_denoise, self.ptr, tx, float(sigma), int(step_index),
                       int(first_row), to, byref(rep.c) if rep else None)
            ct.fetch()
            if rep is not None:
                return ct.array(to), rep.result()
            return ct.array(to)
