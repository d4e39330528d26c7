"""lgd: Python bindings of liblgd, loss-guided diffusion (Song et al., ICML 2023).

Sample from p0(x0) exp(-l(x0)) / Z with a pretrained diffusion denoiser and a
differentiable loss, without retraining. numpy arrays in and out; the C library through
ctypes (no compiler needed). See docs/python.md.

    import lgd, numpy as np
    with lgd.Context() as ctx:
        prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [0.04, 0.04])
        loss = lgd.Loss.logistic(ctx, [-50.0], 0.0)          # -log p(y = 0 | x0)
        guidance = lgd.Guidance.mc(prior, loss, n_samples=100)
        sampler = lgd.Sampler(guidance, "ddim", steps=20)
        x = sampler.run(batch=1000, seed=0)                   # [1000][1] float32

The library is found through LGD_LIBRARY, LGD_BUILD_DIR, pkg-config or the system
loader (see lgd._lib); its version is checked on import.
"""
from __future__ import annotations

from . import _lib
from . import schedule
from ._core import registry_size as _registry_size
from .context import Backend, Context, LogLevel
from .errors import (AbortedError, BackendUnavailableError, CallbackError, Error, FormatError,
                     InternalError, InvalidArgumentError, LgdIOError, NonFiniteError,
                     OutOfMemoryError, ShapeMismatchError, StateError, UnsupportedError)
from .guidance import Guidance, GuidanceKind, Report, StepRule
from .loss import Loss, NetworkLossInput, NetworkLossKind, TrajectoryLayout
from .model import Covariance, Model
from .network import Adapter, Network, Prediction, TimeInput
from .operator import Operator, OperatorKind
from .sampler import Sampler, SamplerKind, Step, TextProgress
from .schedule import Schedule
from .tensor import Tensor

__version__ = "0.5.0"

#: The loaded library's version (major, minor, patch) and its path.
library_version = _lib.VERSION
library_path = _lib.LIBRARY_PATH


def version_string() -> str:
    """The loaded library's version string, e.g. "0.5.0"."""
    return _lib.lgd_version_string().decode()


def status_string(status: int) -> str:
    """liblgd's short description of a status code."""
    return _lib.lgd_status_string(int(status)).decode()


__all__ = [
    "AbortedError", "Adapter", "Backend", "BackendUnavailableError", "CallbackError",
    "Context", "Covariance", "Error", "FormatError", "Guidance", "GuidanceKind",
    "InternalError", "InvalidArgumentError", "LgdIOError", "LogLevel", "Loss", "Model",
    "Network", "NetworkLossInput", "NetworkLossKind", "NonFiniteError", "Operator",
    "OperatorKind", "OutOfMemoryError", "Prediction", "Report", "Sampler",
    "SamplerKind", "Schedule", "ShapeMismatchError", "StateError", "Step", "StepRule", "Tensor",
    "TextProgress", "TimeInput", "TrajectoryLayout", "UnsupportedError", "library_path",
    "library_version", "schedule", "status_string", "version_string",
]
