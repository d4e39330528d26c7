"""PyTorch modules as lgd models (optional: needs ``torch``).

:func:`from_module` turns an eps-, x0-, v-prediction or EDM network ``module(x_in, t)``
(or ``module(x_in, t, cond)``) into an :class:`lgd.Model` through the library's
adapters (lgd_model_create_network_callbacks): the library computes x_in = c_in(sigma) x
and the time input t from sigma, the module runs forward, and the VJP comes from
autograd. :func:`from_denoiser` takes a module that is already a denoiser
``module(x, sigma) -> xhat`` (lgd_model_create_callbacks).

    import lgd, lgd.torch
    model = lgd.torch.from_module(ctx, net, prediction="eps",
                                  alphas_cumprod=lgd.schedule.vp_alphas_cumprod())

The forward pass keeps its autograd graph for the VJP that the library asks for right
after it on the same input (the callbacks' contract), so a guided step runs the module
once forward and once backward; a forward that no VJP follows (unguided sampling) is run
under ``torch.no_grad()`` only when ``grad_in_forward=False``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("lgd.torch needs PyTorch (pip install torch)") from e

from .context import Context
from .model import Model
from .network import Adapter


def _device_dtype(module: "torch.nn.Module", device: Any, dtype: Any) -> Tuple[Any, Any]:
    p = next(iter(module.parameters()), None)
    if device is None:
        device = p.device if p is not None else torch.device("cpu")
    if dtype is None:
        dtype = p.dtype if p is not None and p.dtype.is_floating_point else torch.float32
    return torch.device(device), dtype


class _ModuleRunner:
    """Runs `module` on numpy rows: forward with its graph kept for the following VJP."""

    def __init__(self, module: "torch.nn.Module", dim: int, input_shape: Sequence[int],
                 device: Any, dtype: Any, grad_in_forward: bool, time_arg: str):
        self.module, self.dim = module, dim
        self.input_shape = tuple(int(s) for s in input_shape)
        self.device, self.dtype = device, dtype
        self.grad_in_forward = grad_in_forward
        self.time_arg = time_arg
        self.saved: Optional[Tuple[np.ndarray, float, Any, Any, Any]] = None

    def _inputs(self, x: np.ndarray, s: float, cond: Optional[np.ndarray],
                requires_grad: bool) -> Tuple[Any, Any, Any]:
        batch = x.shape[0]
        xt = torch.tensor(x.reshape((batch,) + self.input_shape), dtype=self.dtype,
                          device=self.device, requires_grad=requires_grad)
        tt = torch.full((batch,), float(s), dtype=self.dtype, device=self.device)
        ct = None if cond is None else torch.tensor(cond, dtype=self.dtype, device=self.device)
        return xt, tt, ct

    def _run(self, xt: Any, tt: Any, ct: Any) -> Any:
        y = self.module(xt, tt) if ct is None else self.module(xt, tt, ct)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"the module returned {type(y).__name__}, not a torch.Tensor")
        if y.numel() != xt.numel():
            raise ValueError(f"the module returned shape {tuple(y.shape)} for input shape "
                             f"{tuple(xt.shape)}; it must have as many elements")
        return y

    def forward(self, x: np.ndarray, s: float, cond: Optional[np.ndarray],
                out: np.ndarray) -> None:
        self.saved = None
        if self.grad_in_forward:
            with torch.enable_grad():
                xt, tt, ct = self._inputs(x, s, cond, True)
                y = self._run(xt, tt, ct)
            self.saved = (x.copy(), s, None if cond is None else cond.copy(), xt, y)
        else:
            with torch.no_grad():
                y = self._run(*self._inputs(x, s, cond, False))
        out[...] = y.detach().reshape(x.shape[0], self.dim).to("cpu", torch.float32).numpy()

    def vjp(self, x: np.ndarray, s: float, cond: Optional[np.ndarray], v: np.ndarray,
            out: np.ndarray) -> None:
        saved, self.saved = self.saved, None
        if (saved is not None and saved[1] == s and np.array_equal(saved[0], x)
                and ((cond is None and saved[2] is None)
                     or (cond is not None and saved[2] is not None
                         and np.array_equal(saved[2], cond)))):
            xt, y = saved[3], saved[4]
        else:  # not right after its forward: run it again
            with torch.enable_grad():
                xt, tt, ct = self._inputs(x, s, cond, True)
                y = self._run(xt, tt, ct)
        vt = torch.tensor(v, dtype=y.dtype, device=y.device).reshape(y.shape)
        (g,) = torch.autograd.grad(y, xt, grad_outputs=vt, allow_unused=True)
        if g is None:  # the output does not depend on the input
            out[...] = 0.0
            return
        out[...] = g.detach().reshape(x.shape[0], self.dim).to("cpu", torch.float32).numpy()


def _dims(module: Any, dim: Optional[int], input_shape: Optional[Sequence[int]]
          ) -> Tuple[int, Tuple[int, ...]]:
    if input_shape is None:
        if dim is None:
            raise ValueError("give dim (floats per sample) or input_shape (the module's "
                             "per-sample input shape, e.g. (3, 32, 32))")
        input_shape = (int(dim),)
    shape = tuple(int(s) for s in input_shape)
    n = int(np.prod(shape))
    if dim is not None and int(dim) != n:
        raise ValueError(f"dim {dim} does not match input_shape {shape} ({n} floats)")
    return n, shape


def from_module(ctx: Context, module: "torch.nn.Module", *, dim: Optional[int] = None,
                input_shape: Optional[Sequence[int]] = None, prediction: str = "eps",
                time_input: str = "discrete", alphas_cumprod: Any = None,
                sigma_data: float = 0.5, cond_dim: int = 0, device: Any = None,
                dtype: Any = None, grad_in_forward: bool = True) -> Model:
    """An lgd Model from a network ``module(x_in, t[, cond])`` predicting eps, x0, v or
    EDM's F (`prediction`), with the time input `time_input` (``"discrete"`` timesteps of
    the VP schedule `alphas_cumprod`, ``"discrete_round"``, ``"log_sigma"`` or
    ``"sigma"``); see :class:`lgd.Adapter`. x_in is given to the module as a tensor of
    shape (batch, *input_shape) (default (batch, dim)), t of shape (batch,), cond of shape
    (batch, cond_dim); the output must have as many elements as x_in. The module runs on
    `device` in `dtype` (default: those of its parameters). The model keeps the module."""
    n, shape = _dims(module, dim, input_shape)
    dev, dt = _device_dtype(module, device, dtype)
    runner = _ModuleRunner(module, n, shape, dev, dt, grad_in_forward, "t")
    adapter = Adapter(prediction, time_input, alphas_cumprod, sigma_data)
    return Model.from_network_callables(ctx, n, runner.forward, runner.vjp, adapter=adapter,
                                        cond_dim=cond_dim, inplace=True, keep=runner)


def from_denoiser(ctx: Context, module: "torch.nn.Module", *, dim: Optional[int] = None,
                  input_shape: Optional[Sequence[int]] = None, cond_dim: int = 0,
                  device: Any = None, dtype: Any = None,
                  grad_in_forward: bool = True) -> Model:
    """An lgd Model from a module that is a denoiser ``module(x, sigma[, cond]) -> xhat``
    (sigma a tensor of shape (batch,)), with its VJP through autograd."""
    n, shape = _dims(module, dim, input_shape)
    dev, dt = _device_dtype(module, device, dtype)
    runner = _ModuleRunner(module, n, shape, dev, dt, grad_in_forward, "sigma")
    model = Model.from_callables(ctx, n, runner.forward, runner.vjp, cond_dim=cond_dim,
                                 inplace=True)
    model._keep = runner
    return model
