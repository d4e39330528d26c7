"""Noise-level grids (lgd/schedule.h): Karras and VP (DDPM) schedules."""
from __future__ import annotations

import enum
from typing import Union

import numpy as np

from . import _core
from . import _lib as L
from .context import _enum


class Schedule(enum.IntEnum):
    """lgd_schedule_kind: a sampler's grid, or the VP schedule of an adapter."""
    KARRAS = 0
    VP_LINEAR = 1
    VP_COSINE = 2
    USER = 3


def karras(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
           rho: float = 7.0) -> np.ndarray:
    """The Karras (EDM) grid: steps + 1 decreasing levels from sigma_max, the last 0."""
    out = np.empty(int(steps) + 1 if int(steps) >= 1 else 1, np.float32)
    _core.check_plain(L.lgd_schedule_karras(int(steps), float(sigma_min), float(sigma_max),
                                            float(rho), out.ctypes.data),
                      "lgd_schedule_karras")
    return out


def vp_alphas_cumprod(kind: Union[str, int, Schedule] = "vp_linear", num_timesteps: int = 1000,
                      beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """alphas_cumprod[num_timesteps] of a VP schedule (``"vp_linear"``: DDPM's linear
    betas; ``"vp_cosine"``: Nichol & Dhariwal's cosine)."""
    n = int(num_timesteps)
    out = np.empty(max(n, 1), np.float32)
    _core.check_plain(L.lgd_vp_alphas_cumprod(_enum(Schedule, kind, "kind"), n,
                                              float(beta_start), float(beta_end),
                                              out.ctypes.data),
                      "lgd_vp_alphas_cumprod")
    return out


def vp(steps: int, kind: Union[str, int, Schedule] = "vp_linear", num_timesteps: int = 1000,
       beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """A VP grid: `steps` evenly spaced discrete timesteps as sigmas, then 0."""
    out = np.empty(int(steps) + 1 if int(steps) >= 1 else 1, np.float32)
    _core.check_plain(L.lgd_schedule_vp(_enum(Schedule, kind, "kind"), int(num_timesteps),
                                        float(beta_start), float(beta_end), int(steps),
                                        out.ctypes.data),
                      "lgd_schedule_vp")
    return out
