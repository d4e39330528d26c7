"""Networks: denoisers from weights files (lgd_network_*), and the adapters that turn a
raw network F(x_in, t) into a denoiser D(x, sigma)."""
from __future__ import annotations

import enum
import os
from ctypes import byref, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from . import _core
from . import _lib as L
from .context import Context, _enum


class Prediction(enum.IntEnum):
    """What a network predicts (lgd_prediction)."""
    EPS = 0
    X0 = 1
    V = 2
    EDM = 3


class TimeInput(enum.IntEnum):
    """What the network receives as its time input (lgd_time_input)."""
    DISCRETE = 0
    DISCRETE_ROUND = 1
    LOG_SIGMA = 2
    SIGMA = 3


@dataclass
class Adapter:
    """How a network becomes a denoiser (lgd_adapter_options).

    prediction: ``"eps"`` (default), ``"x0"``, ``"v"`` or ``"edm"``; time_input:
    ``"discrete"`` (default), ``"discrete_round"``, ``"log_sigma"`` or ``"sigma"``;
    alphas_cumprod: the discrete VP schedule the network was trained with (required by
    the discrete time inputs; :func:`lgd.schedule.vp_alphas_cumprod` makes the usual
    ones); sigma_data: EDM's (default 0.5)."""

    prediction: Union[str, int, Prediction] = "eps"
    time_input: Union[str, int, TimeInput] = "discrete"
    alphas_cumprod: Optional[Any] = None
    sigma_data: float = 0.5

    def to_c(self) -> "tuple[L.AdapterOptions, Optional[np.ndarray]]":
        """The C struct, and the array it points into (keep it alive during the call)."""
        o = L.AdapterOptions()
        _core.check_plain(L.lgd_adapter_options_init(byref(o), sizeof(o)),
                          "lgd_adapter_options_init")
        o.prediction = _enum(Prediction, self.prediction, "prediction")
        o.time_input = _enum(TimeInput, self.time_input, "time_input")
        o.sigma_data = float(self.sigma_data)
        ac = None
        if self.alphas_cumprod is not None:
            ac = _core.as_f32(self.alphas_cumprod, "alphas_cumprod", (1,))
            o.alphas_cumprod = ac.ctypes.data_as(type(o.alphas_cumprod))
            o.num_timesteps = ac.size
        return o, ac

    @classmethod
    def from_c(cls, o: L.AdapterOptions) -> "Adapter":
        ac = None
        if o.alphas_cumprod and o.num_timesteps > 0:
            ac = np.ctypeslib.as_array(o.alphas_cumprod, (o.num_timesteps,)).copy()
        return cls(Prediction(o.prediction), TimeInput(o.time_input), ac, float(o.sigma_data))


class Network(_core.Handle):
    """A network loaded from a weights file (docs/network-format.md): the raw F(x_in, t)
    with its VJP. :meth:`lgd.Model.from_network` makes it a denoiser."""

    _destroy = staticmethod(L.lgd_network_destroy)
    _kind = "network"

    @classmethod
    def load(cls, ctx: Context, path: Union[str, "os.PathLike[str]"]) -> "Network":
        """Loads a network file. Raises :class:`lgd.LgdIOError` (unreadable),
        :class:`lgd.FormatError` (malformed; the message names the problem)."""
        out = c_void_p()
        with _core.Guard(ctx.ptr):
            _core.finish(ctx._state, L.lgd_network_load(ctx.ptr, os.fsencode(path), byref(out)),
                         ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr)

    @classmethod
    def from_bytes(cls, ctx: Context, data: bytes) -> "Network":
        """Loads a network from the bytes of a file (lgd_network_load_memory)."""
        buf = bytes(data)
        out = c_void_p()
        _core.finish(ctx._state, L.lgd_network_load_memory(ctx.ptr, buf, len(buf), byref(out)),
                     ctx.ptr)
        return cls(_core.handle_value(out), ctx._state, ctx.ptr)

    @property
    def dim(self) -> int:
        return int(L.lgd_network_dim(self.ptr))

    @property
    def out_dim(self) -> int:
        return int(L.lgd_network_out_dim(self.ptr))

    @property
    def cond_dim(self) -> int:
        return int(L.lgd_network_cond_dim(self.ptr))

    @property
    def parameter_count(self) -> int:
        return int(L.lgd_network_parameter_count(self.ptr))

    def metadata(self, key: str) -> Optional[str]:
        """The file's metadata value for `key` (e.g. ``"lgd.architecture"``), or None."""
        v = L.lgd_network_metadata(self.ptr, key.encode())
        return None if v is None else v.decode("utf-8", "replace")

    def adapter(self) -> Adapter:
        """The adapter the file asks for (defaults where absent)."""
        o = L.AdapterOptions()
        # the library writes at most struct_size bytes, so set it first
        _core.check_plain(L.lgd_adapter_options_init(byref(o), sizeof(o)),
                          "lgd_adapter_options_init")
        _core.finish(self._state, L.lgd_network_adapter_options(self.ptr, byref(o)),
                     self._ctxp)
        return Adapter.from_c(o)

    def forward(self, x_in: Any, t: float, cond: Any = None, *, out: Any = None) -> np.ndarray:
        """F(x_in, t) for x_in [batch][dim] (and cond [batch][cond_dim] for a conditional
        network): [batch][out_dim]."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x_in, "x_in", (2,))
            tc = None if cond is None else ct.input(cond, "cond", (2,))
            to = ct.output((int(L.lgd_tensor_dim(tx, 0)), self.out_dim), out)
            self._call(L.lgd_network_forward, self.ptr, tx, float(t), tc, to)
            ct.fetch()
            return ct.array(to) if out is None or isinstance(out, np.ndarray) else out

    def vjp(self, x_in: Any, t: float, v: Any, cond: Any = None, *,
            return_forward: bool = False) -> Any:
        """(dF/dx_in)^T v for v [batch][out_dim]: [batch][dim]; with return_forward,
        also F(x_in, t) from the same pass: (vjp, forward)."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.input(x_in, "x_in", (2,))
            tv = ct.input(v, "v", (2,))
            tc = None if cond is None else ct.input(cond, "cond", (2,))
            batch = int(L.lgd_tensor_dim(tx, 0))
            to = ct.output((batch, self.dim))
            tf = ct.output((batch, self.out_dim)) if return_forward else None
            self._call(L.lgd_network_vjp, self.ptr, tx, float(t), tc, tv, to, tf)
            ct.fetch()
            if return_forward:
                assert tf is not None
                return ct.array(to), ct.array(tf)
            return ct.array(to)
