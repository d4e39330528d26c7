"""Model: a denoiser D(x, sigma) ~ E[x0 | x] with its vector-Jacobian product.

Kinds: an exact Gaussian mixture (:meth:`Model.gmm`), the paper's trajectory prior
(:meth:`Model.trajectory_prior`), a network from a weights file (:meth:`Model.load`,
:meth:`Model.from_network`), and models written in Python: a denoiser
(:meth:`Model.from_callables`) or a raw network with an adapter
(:meth:`Model.from_network_callables`; :mod:`lgd.torch` builds one from a PyTorch
module); and classifier guidance over any of them (:meth:`Model.classifier_guided`).
"""
from __future__ import annotations

import enum
import os
from ctypes import byref, c_float, c_void_p, sizeof
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _core
from . import _lib as L
from ._callables import ModelEntry
from .context import Context, _enum
from .network import Adapter, Network


class Covariance(enum.IntEnum):
    """Covariance layout of a Gaussian mixture (lgd_covariance)."""
    FULL = 0
    DIAGONAL = 1
    ISOTROPIC = 2


class Model(_core.Handle):
    """A denoiser D(x, sigma) of `dim` floats per sample (see the module's docstring for
    the constructors). Arrays are [batch][dim] float32 (other real dtypes convert)."""

    _destroy = staticmethod(L.lgd_model_destroy)
    _kind = "model"

    def __init__(self, ptr: int, state: _core.ContextState, ctxp: int, keep: Any = None):
        super().__init__(ptr, state, ctxp)
        self._keep = keep  # Python objects the model's wrapper keeps (e.g. a torch module)

    @classmethod
    def _made(cls, ctx: Context, status: int, out: c_void_p, keep: Any = None) -> "Model":
        _core.finish(ctx._state, status, ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr, keep)

    # --- constructors ---

    @classmethod
    def gmm(cls, ctx: Context, weights: Any, means: Any, covariances: Any,
            covariance: Union[None, str, int, Covariance] = None) -> "Model":
        """An exact Gaussian mixture sum_k w_k N(mu_k, Sigma_k).

        weights [K] (> 0, normalised here); means [K][dim]; covariances [K][dim][dim]
        (full), [K][dim] (diagonal) or [K] (isotropic). The layout follows from the
        covariances' dimensions unless `covariance` names it."""
        w = _core.as_f32(weights, "weights", (1,))
        mu = _core.as_f32(means, "means", (2,))
        cov = _core.as_f32(covariances, "covariances", (1, 2, 3))
        k, dim = mu.shape
        layout = (Covariance(3 - cov.ndim) if covariance is None
                  else Covariance(_enum(Covariance, covariance, "covariance")))
        want = {Covariance.FULL: (k, dim, dim), Covariance.DIAGONAL: (k, dim),
                Covariance.ISOTROPIC: (k,)}[layout]
        if w.shape != (k,):
            raise ValueError(f"weights: expected shape ({k},) for {k} components, got "
                             f"{w.shape}")
        if cov.shape != want:
            raise ValueError(f"covariances: expected shape {want} ({layout.name.lower()}), "
                             f"got {cov.shape}")
        out = c_void_p()
        st = L.lgd_model_create_gmm(ctx.ptr, dim, k, w.ctypes.data, mu.ctypes.data,
                                    cov.ctypes.data, int(layout), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def trajectory_prior(cls, ctx: Context, *, frames: Optional[int] = None,
                         headings: Optional[int] = None, turns: Optional[int] = None,
                         max_turn: Optional[float] = None, speed: Optional[float] = None,
                         gp_std: Optional[float] = None, gp_length: Optional[float] = None,
                         jitter: Optional[float] = None) -> "Model":
        """The paper's trajectory prior (lgd_model_create_trajectory_prior): a Gaussian
        mixture over [frames][2] root velocities; options left as None take the library's
        defaults (64 frames, 8 headings, 3 turns, ...)."""
        o = L.TrajectoryPriorOptions()
        _core.check_plain(L.lgd_trajectory_prior_options_init(byref(o), sizeof(o)),
                          "lgd_trajectory_prior_options_init")
        for name, iv in (("frames", frames), ("headings", headings), ("turns", turns)):
            if iv is not None:
                setattr(o, name, int(iv))
        for name, fv in (("max_turn", max_turn), ("speed", speed), ("gp_std", gp_std),
                         ("gp_length", gp_length), ("jitter", jitter)):
            if fv is not None:
                setattr(o, name, float(fv))
        out = c_void_p()
        st = L.lgd_model_create_trajectory_prior(ctx.ptr, byref(o), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def load(cls, ctx: Context, path: Union[str, "os.PathLike[str]"]) -> "Model":
        """A network file as a denoiser, with the adapter the file names (lgd_model_load)."""
        out = c_void_p()
        st = L.lgd_model_load(ctx.ptr, os.fsencode(path), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def load_plugin(cls, ctx: Context, path: Union[str, "os.PathLike[str]"], name: str,
                    config: str = "") -> "Model":
        """The model `name` from the plugin at path, made from its configuration string
        (lgd_model_load_plugin, liblgd >= 0.4; docs/plugins.md)."""
        out = c_void_p()
        st = L.lgd_model_load_plugin(ctx.ptr, os.fsencode(path), name.encode(),
                                     config.encode(), byref(out))
        return cls._made(ctx, st, out)

    @classmethod
    def from_network(cls, network: Network, adapter: Optional[Adapter] = None) -> "Model":
        """A loaded network as a denoiser, with `adapter` (None: the file's). The model
        keeps the network alive."""
        out = c_void_p()
        opts, keep = adapter.to_c() if adapter is not None else (None, None)
        st = L.lgd_model_create_from_network(network._ctxp, network.ptr,
                                             byref(opts) if opts is not None else None,
                                             byref(out))
        del keep
        _core.finish(network._state, st, network._ctxp)
        return cls(_core.handle_value(out), network._state, network._ctxp)

    @classmethod
    def from_callables(cls, ctx: Context, dim: int, denoise: Callable[..., Any],
                       vjp: Optional[Callable[..., Any]] = None, *, cond_dim: int = 0,
                       inplace: bool = False) -> "Model":
        """A denoiser written in Python.

        ``denoise(x, sigma, cond) -> xhat`` and ``vjp(x, sigma, cond, v) -> J^T v`` with
        x, v, xhat [batch][dim] float32 and cond [batch][cond_dim] or None; or, with
        ``inplace=True``, ``denoise(x, sigma, cond, out)`` and ``vjp(x, sigma, cond, v,
        out)`` writing every element of out. Inputs are read-only views valid during the
        call. vjp is needed by DPS and LGD-MC (it is always called right after denoise on
        the same x and sigma, so it may reuse what denoise saved). An exception raised
        inside comes back from the call that ran the model (the same exception, with
        ``lgd_status`` attached). The callables are kept until the library frees the
        model."""
        if not callable(denoise) or (vjp is not None and not callable(vjp)):
            raise TypeError("denoise and vjp must be callables")
        entry = ModelEntry(denoise, vjp, inplace, int(cond_dim), ctx._state, ctx.ptr,
                           ("denoise", "vjp"))
        key = _core.register(entry)
        cb = L.ModelCallbacks()
        _core.check_plain(L.lgd_model_callbacks_init(byref(cb), sizeof(cb)),
                          "lgd_model_callbacks_init")
        cb.memory = L.MEMORY_HOST
        cb.dim = int(dim)
        cb.cond_dim = int(cond_dim)
        cb.denoise = _core.DENOISE
        if vjp is not None:
            cb.vjp = _core.VJP
        cb.destroy = _core.DESTROY
        cb.user = key
        out = c_void_p()
        st = L.lgd_model_create_callbacks(ctx.ptr, byref(cb), byref(out))
        if st:
            _core.unregister(key)  # the library did not take it over
        return cls._made(ctx, st, out)

    @classmethod
    def from_network_callables(cls, ctx: Context, dim: int, forward: Callable[..., Any],
                               vjp: Optional[Callable[..., Any]] = None, *,
                               adapter: Optional[Adapter] = None, cond_dim: int = 0,
                               inplace: bool = False, keep: Any = None) -> "Model":
        """A raw network written in Python, made a denoiser by `adapter`
        (lgd_model_create_network_callbacks): ``forward(x_in, t, cond) -> F`` and
        ``vjp(x_in, t, cond, v) -> (dF/dx_in)^T v`` (or the ``inplace`` forms with a
        final `out` argument), x_in = c_in(sigma) x as the adapter computes it and t its
        time input. The rules of :meth:`from_callables` apply. `keep`: any object the
        model's wrapper should keep alive (e.g. the module)."""
        if not callable(forward) or (vjp is not None and not callable(vjp)):
            raise TypeError("forward and vjp must be callables")
        entry = ModelEntry(forward, vjp, inplace, int(cond_dim), ctx._state, ctx.ptr,
                           ("forward", "vjp"))
        key = _core.register(entry)
        cb = L.NetworkCallbacks()
        _core.check_plain(L.lgd_network_callbacks_init(byref(cb), sizeof(cb)),
                          "lgd_network_callbacks_init")
        cb.memory = L.MEMORY_HOST
        cb.dim = int(dim)
        cb.cond_dim = int(cond_dim)
        cb.forward = _core.NET_FORWARD
        if vjp is not None:
            cb.vjp = _core.NET_VJP
        cb.destroy = _core.DESTROY
        cb.user = key
        opts, arr = (adapter or Adapter()).to_c()
        out = c_void_p()
        st = L.lgd_model_create_network_callbacks(ctx.ptr, byref(cb), byref(opts), byref(out))
        del arr
        if st:
            _core.unregister(key)
        return cls._made(ctx, st, out, keep)

    @classmethod
    def classifier_guided(cls, model: "Model", loss: Any, scale: float = 1.0) -> "Model":
        """Classifier guidance (CG, Dhariwal & Nichol 2021) as a denoiser
        (lgd_model_create_classifier_guided, liblgd >= 0.5):
        D_cg(x, sigma) = D(x, sigma) - scale * sigma^2 * grad_x l(x; sigma).

        `loss` is an :class:`lgd.Loss` of the model's dim, typically
        ``Loss.network(classifier, "cross_entropy", input="noisy")`` with its labels
        (l = -log p(y | x_sigma), evaluated at each call's sigma; any other loss is
        evaluated at x as it is). scale is CG's weight w (1: the Bayes-consistent
        posterior score). Sample it with guidance ``"none"``: the model has no VJP, so
        DPS and LGD-MC on it raise :class:`lgd.UnsupportedError`. The new model keeps
        references to both and has the model's cond_dim."""
        out = c_void_p()
        st = L.lgd_model_create_classifier_guided(model._ctxp, model.ptr, loss.ptr,
                                                  float(scale), byref(out))
        _core.finish(model._state, st, model._ctxp)
        return cls(_core.handle_value(out), model._state, model._ctxp)

    # --- getters ---

    @property
    def dim(self) -> int:
        return int(L.lgd_model_dim(self.ptr))

    @property
    def cond_dim(self) -> int:
        return int(L.lgd_model_cond_dim(self.ptr))

    @property
    def has_exact_posterior(self) -> bool:
        return bool(L.lgd_model_has_exact_posterior(self.ptr))

    # --- evaluation ---

    def _xfn(self, fn: Callable[..., int], x: Any, sigma: float, cond: Any, out: Any,
             v: Any = None) -> np.ndarray:
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2, 3))
            tc = None if cond is None else ct.input(cond, "cond", (2,))
            tv = None if v is None else ct.input(v, "v", (2, 3))
            to = ct.output((int(L.lgd_tensor_dim(tx, 0)), self.dim), out)
            args = (self.ptr, tx, float(sigma), tc) + ((tv,) if v is not None else ()) + (to,)
            self._call(fn, *args)
            ct.fetch()
            return out if out is not None and not isinstance(out, np.ndarray) else ct.array(to)

    def denoise(self, x: Any, sigma: float, cond: Any = None, *, out: Any = None) -> np.ndarray:
        """xhat = D(x, sigma) for x [batch][dim] (cond [batch][cond_dim] for a conditional
        model). `out`: an array or Tensor to write into."""
        return self._xfn(L.lgd_model_denoise, x, sigma, cond, out)

    def vjp(self, x: Any, sigma: float, v: Any, cond: Any = None, *,
            out: Any = None) -> np.ndarray:
        """J^T v with J = dD(x, sigma)/dx, row by row: [batch][dim]."""
        return self._xfn(L.lgd_model_vjp, x, sigma, cond, out, v)

    def score(self, x: Any, sigma: float, cond: Any = None, *, out: Any = None) -> np.ndarray:
        """grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2: [batch][dim]."""
        return self._xfn(L.lgd_model_score, x, sigma, cond, out)

    def log_density(self, x: Any, sigma: float = 0.0) -> np.ndarray:
        """log p_sigma(x) per row: [batch] (Gaussian mixtures only)."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2,))
            to = ct.output((int(L.lgd_tensor_dim(tx, 0)),))
            self._call(L.lgd_model_log_density, self.ptr, tx, float(sigma), to)
            ct.fetch()
            return ct.array(to)

    def sample_posterior(self, x: Any, sigma: float, n: int = 1, *, seed: int = 0,
                         first_row: int = 0) -> np.ndarray:
        """n draws per row from the exact posterior p(x0 | x) at sigma: [batch][n][dim]
        (Gaussian mixtures; draw i of row b uses Philox counters (seed, first_row + b, i))."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x, "x", (2,))
            to = ct.output((int(L.lgd_tensor_dim(tx, 0)), int(n), self.dim))
            self._call(L.lgd_model_sample_posterior, self.ptr, tx, float(sigma), int(seed),
                       int(first_row), to)
            ct.fetch()
            return ct.array(to)

    def network_time(self, sigma: float) -> float:
        """The time input t an adapted network receives at noise level sigma."""
        t = c_float()
        self._finish(L.lgd_model_network_time(self.ptr, float(sigma), byref(t)))
        return float(t.value)
