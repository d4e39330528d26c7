"""Sampler: integrates from sigma_max to 0 with the guided denoiser (Euler/DDIM, Heun,
DPM-Solver++(2M)); whole runs with progress, or step by step as an iterator."""
from __future__ import annotations

import enum
import math
import sys
import time
from ctypes import byref, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from . import _core
from . import _lib as L
from .context import _enum
from .guidance import Guidance, Report, ReportRequest
from .schedule import Schedule
from .tensor import Tensor


class SamplerKind(enum.IntEnum):
    """The integrator (lgd_sampler_kind)."""
    EULER = 0
    DDIM = 1
    HEUN = 2
    DPMPP_2M = 3


_KIND_ALIASES = {"dpmpp2m": "dpmpp_2m", "dpm++2m": "dpmpp_2m", "dpmpp-2m": "dpmpp_2m"}

#: Signature of a progress function: (step, num_steps, sigma, report) -> stop?
ProgressFn = Callable[[int, int, float, Optional[Report]], Any]


@dataclass(frozen=True)
class Step:
    """One step of :meth:`Sampler.steps`: `step` steps are done (x is at grid index
    `step`, noise level `sigma`); x is the run's array (updated in place, so copy it to
    keep this step's values); report the step's guidance diagnostics when asked for."""

    step: int
    num_steps: int
    sigma: float
    x: Any
    report: Optional[Report]


class TextProgress:
    """A progress bar on stderr: tqdm when it is installed, else a plain one."""

    def __init__(self, desc: str = "lgd", stream: Any = None, use_tqdm: Optional[bool] = None):
        self.desc, self.stream = desc, stream or sys.stderr
        self.bar: Any = None
        self.done = 0
        self.t0 = time.monotonic()
        self.use_tqdm = use_tqdm
        self.last_len = 0

    def __call__(self, step: int, num_steps: int, sigma: float,
                 report: Optional[Report]) -> None:
        if self.bar is None and self.use_tqdm is not False:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=num_steps, desc=self.desc, file=self.stream,
                                leave=True)
            except ImportError:
                self.use_tqdm = False
        if self.bar is not None:
            self.bar.update(step - self.done)
            self.bar.set_postfix_str(f"sigma={sigma:.4g}", refresh=False)
        else:
            width = 30
            filled = width * step // max(num_steps, 1)
            line = (f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                    f"{step}/{num_steps} sigma {sigma:.4g} {time.monotonic() - self.t0:.1f}s")
            self.stream.write(line + " " * max(0, self.last_len - len(line)))
            self.last_len = len(line)
            if step >= num_steps:
                self.stream.write("\n")
            self.stream.flush()
        self.done = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif 0 < self.done and self.last_len:
            self.stream.flush()


class _Progress:
    """The registry entry of a run's progress callback."""

    __slots__ = ("fn", "state")

    def __init__(self, fn: Optional[ProgressFn], state: _core.ContextState):
        self.fn, self.state = fn, state

    def __call__(self, step: int, num_steps: int, sigma: float, report: Any) -> bool:
        if self.fn is None:
            return False
        rep = Report.from_c(report.contents) if report else None
        return bool(self.fn(int(step), int(num_steps), float(sigma), rep))


class Sampler(_core.Handle):
    """A sampler using `guidance` (use :meth:`lgd.Guidance.none` for unguided sampling).

    Options (lgd_sampler_options): kind ``"euler"`` (default), ``"ddim"``, ``"heun"`` or
    ``"dpmpp_2m"``; steps (default 20); schedule ``"karras"`` (default; sigma_min 0.002,
    sigma_max 80, rho 7), ``"vp_linear"``, ``"vp_cosine"`` (vp_timesteps,
    vp_beta_start, vp_beta_end) or your own grid as `sigmas` (a decreasing array,
    optionally ending in 0); eta (DDIM); s_churn, s_tmin, s_tmax, s_noise (Heun).

    The state x is a [batch][dim] float32 array that the sampler updates in place.
    """

    _destroy = staticmethod(L.lgd_sampler_destroy)
    _kind = "sampler"

    def __init__(self, guidance: Guidance, kind: Union[str, int, SamplerKind] = "euler", *,
                 steps: int = 20, schedule: Union[str, int, Schedule] = "karras",
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 eta: float = 0.0, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = math.inf, s_noise: float = 1.0, vp_timesteps: int = 1000,
                 vp_beta_start: float = 1e-4, vp_beta_end: float = 0.02,
                 sigmas: Any = None):
        if not isinstance(guidance, Guidance):
            raise TypeError(f"guidance: expected an lgd.Guidance, got {type(guidance).__name__}")
        if isinstance(kind, str):
            kind = _KIND_ALIASES.get(kind.lower(), kind)
        o = L.SamplerOptions()
        _core.check_plain(L.lgd_sampler_options_init(byref(o), sizeof(o)),
                          "lgd_sampler_options_init")
        o.kind = _enum(SamplerKind, kind, "kind")
        o.steps = int(steps)
        o.schedule = _enum(Schedule, schedule, "schedule")
        o.sigma_min, o.sigma_max, o.rho = float(sigma_min), float(sigma_max), float(rho)
        o.eta, o.s_churn, o.s_tmin = float(eta), float(s_churn), float(s_tmin)
        o.s_tmax, o.s_noise = float(s_tmax), float(s_noise)
        o.vp_timesteps = int(vp_timesteps)
        o.vp_beta_start, o.vp_beta_end = float(vp_beta_start), float(vp_beta_end)
        grid = None
        if sigmas is not None:
            grid = _core.as_f32(sigmas, "sigmas", (1,))
            o.schedule = int(Schedule.USER)
            o.sigmas = grid.ctypes.data_as(type(o.sigmas))
            o.n_sigmas = grid.size
        out = c_void_p()
        st = L.lgd_sampler_create(guidance.ptr, byref(o), byref(out))
        del grid
        _core.finish(guidance._state, st, guidance._ctxp)
        super().__init__(_core.handle_value(out), guidance._state, guidance._ctxp)
        self.guidance = guidance  # keeps the Python radius function alive
        self.dim = guidance.dim
        self.kind = SamplerKind(o.kind)

    # --- getters ---

    @property
    def num_steps(self) -> int:
        return int(L.lgd_sampler_num_steps(self.ptr))

    @property
    def sigmas(self) -> np.ndarray:
        """The grid: num_steps + 1 decreasing noise levels, the last 0."""
        out = np.empty(self.num_steps + 1, np.float32)
        self._finish(L.lgd_sampler_sigmas(self.ptr, out.ctypes.data, out.size))
        return out

    @property
    def step_index(self) -> int:
        """Index of the next step (num_steps when done)."""
        return int(L.lgd_sampler_step_index(self.ptr))

    @property
    def sigma(self) -> float:
        """The noise level x is at now."""
        return float(L.lgd_sampler_sigma(self.ptr))

    @property
    def done(self) -> bool:
        return bool(L.lgd_sampler_done(self.ptr))

    # --- starting a run ---

    def _new_x(self, x: Any, batch: Optional[int]) -> Any:
        if x is not None:
            if batch is not None:
                raise ValueError("give x or batch, not both")
            return x
        if batch is None:
            raise ValueError("give x (a [batch][dim] float32 array) or batch")
        return np.zeros((int(batch), self.dim), np.float32)

    def init(self, x: Any = None, *, batch: Optional[int] = None, seed: int = 0,
             first_row: int = 0) -> Any:
        """Starts a run: x = sigma_max * z with z from `seed` (rows numbered from
        first_row). x: the caller's [batch][dim] float32 array (or Tensor), filled in place;
        or None with `batch` for a new array. Returns x."""
        x = self._new_x(x, batch)
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.inout(x, "x")
            self._call(L.lgd_sampler_init, self.ptr, tx, int(seed), int(first_row))
            ct.fetch()
        return x

    def start(self, x: Any, start_step: int = 0, *, add_noise: bool = False, seed: int = 0,
              first_row: int = 0) -> Any:
        """Starts a run from the caller's x at grid index start_step: x already at
        sigmas[start_step] (add_noise False), or clean data that gets
        sigmas[start_step] * z added (SDEdit). Returns x."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.inout(x, "x")
            self._call(L.lgd_sampler_start, self.ptr, tx, int(start_step),
                       1 if add_noise else 0, int(seed), int(first_row))
            ct.fetch()
        return x

    # --- stepping ---

    def step(self, x: Any, *, report: bool = False, rows: bool = False) -> Optional[Report]:
        """Advances x ([batch][dim], the run's batch) one step in place; returns the step's
        guidance report when asked for (per row with ``rows=True``)."""
        with _core.CallTensors(self._ctxp, self._state.host) as ct:
            tx = ct.inout(x, "x")
            rep = None
            if report or rows:
                rep = ReportRequest(int(L.lgd_tensor_dim(tx, 0)), rows)
            self._call(L.lgd_sampler_step, self.ptr, tx, byref(rep.c) if rep else None)
            ct.fetch()
        return rep.result() if rep is not None else None

    def steps(self, x: Any = None, *, batch: Optional[int] = None, seed: int = 0,
              first_row: int = 0, start_step: Optional[int] = None, add_noise: bool = False,
              report: bool = False, rows: bool = False) -> Iterator[Step]:
        """Runs step by step: an iterator of :class:`Step` after each step (x updated in
        place; it may be read or changed between steps). Starts like :meth:`init`, or like
        :meth:`start` when start_step is given. Ctrl-C stops between steps (or inside a
        Python callback)."""
        x = self._new_x(x, batch)
        if isinstance(x, Tensor):
            state: Any = x
        elif self._state.host:
            state = Tensor.wrap(_ctx_view(self), _core.check_inplace(x, "x"))
        else:
            _core.check_inplace(x, "x")
            state = Tensor.zeros(_ctx_view(self), x.shape)
        try:
            if not self._state.host and not isinstance(x, Tensor):
                state.upload(x)
            if start_step is None:
                self.init(state, seed=seed, first_row=first_row)
            else:
                self.start(state, start_step, add_noise=add_noise, seed=seed,
                           first_row=first_row)
            n = self.num_steps
            while not self.done:
                if not self._state.host and not isinstance(x, Tensor):
                    state.upload(x)  # the caller may have changed x between steps
                rep = self.step(state, report=report, rows=rows)
                if not self._state.host and not isinstance(x, Tensor):
                    state.download(x)
                yield Step(self.step_index, n, self.sigma, x, rep)
        finally:
            if state is not x:
                state.close()

    def __iter__(self) -> Iterator[Step]:
        raise TypeError("iterate over sampler.steps(x or batch=..., seed=...)")

    # --- whole runs ---

    def run(self, x: Any = None, *, batch: Optional[int] = None, seed: int = 0,
            first_row: int = 0, progress: Union[None, bool, ProgressFn] = None,
            start_step: Optional[int] = None, add_noise: bool = False) -> Any:
        """A whole run (lgd_sampler_run, or lgd_sampler_run_from when start_step is given):
        x ends at sigma 0. x: the caller's [batch][dim] float32 array updated in place (or
        a Tensor), or None with `batch`. Returns x.

        progress: None; True for a text progress bar (tqdm if installed, else a simple
        one, on stderr); or a function ``progress(step, num_steps, sigma, report)``
        called after each step, which stops the run by returning True (then
        :class:`lgd.AbortedError` is raised; x holds the last completed step and the run
        can go on with :meth:`step`). Ctrl-C raises KeyboardInterrupt promptly: the
        library stops at its next check point (before a step, between chunks of draws)."""
        x = self._new_x(x, batch)
        bar = TextProgress() if progress is True else None
        fn: Optional[ProgressFn] = bar if bar is not None else (
            progress if callable(progress) else None)
        if progress not in (None, False, True) and not callable(progress):
            raise TypeError("progress: None, True or a callable")
        key = _core.register(_Progress(fn, self._state))
        try:
            with _core.CallTensors(self._ctxp, self._state.host) as ct:
                tx = ct.inout(x, "x")
                if start_step is None:
                    self._call(L.lgd_sampler_run, self.ptr, tx, int(seed), int(first_row),
                               _core.PROGRESS, key, watch=True)
                else:
                    self._call(L.lgd_sampler_run_from, self.ptr, tx, int(start_step),
                               1 if add_noise else 0, int(seed), int(first_row),
                               _core.PROGRESS, key, watch=True)
                ct.fetch()
        finally:
            _core.unregister(key)
            if bar is not None:
                bar.close()
        return x


class _CtxView:
    """What Tensor's constructors need of a context (ptr and state), from an object."""

    __slots__ = ("ptr", "_state")

    def __init__(self, ptr: int, state: _core.ContextState):
        self.ptr, self._state = ptr, state


def _ctx_view(obj: _core.Handle) -> Any:
    return _CtxView(obj._ctxp, obj._state)
