"""Python callables behind the library's callback structs: what a loss, a model or a
network written in Python receives and how its results reach the library.

Each entry lives in the registry of _core from the create call until the library calls
the object's destroy callback (its last reference dropped). Inputs are read-only numpy
views of the library's buffers (valid during the call only: copy what you keep);
outputs are written into the library's buffers, either by the callable itself
(``inplace=True``) or from what it returns.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

from ._core import ContextState, view


def store(out: np.ndarray, result: Any, what: str) -> None:
    """Copies a callable's result into the library's output buffer `out`, which it must
    match in shape exactly."""
    if result is None:
        raise ValueError(f"{what} returned None (expected an array of shape {out.shape})")
    res = np.asarray(result)
    if res.shape != out.shape:
        raise ValueError(f"{what} returned an array of shape {res.shape}; expected "
                         f"{out.shape}")
    if res.dtype.kind not in "fiu":
        raise TypeError(f"{what} returned dtype {res.dtype}; expected real numbers")
    np.copyto(out, res, casting="unsafe")


class LossEntry:
    """A loss written in Python (lgd_loss_callbacks)."""

    __slots__ = ("fn", "inplace", "state", "ctxp")

    def __init__(self, fn: Callable[..., Any], inplace: bool, state: ContextState, ctxp: int):
        self.fn, self.inplace, self.state, self.ctxp = fn, inplace, state, ctxp

    def _views(self, x: int, batch: int, n: int, dim: int, loss: int,
               grad: Optional[int]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        return (view(x, (batch, n, dim), False), view(loss, (batch, n), True),
                view(grad, (batch, n, dim), True) if grad else None)

    def _results(self, result: Any, lv: np.ndarray, gv: Optional[np.ndarray]) -> None:
        if isinstance(result, tuple):
            if len(result) != 2:
                raise ValueError(f"the loss function returned a tuple of {len(result)}; "
                                 "expected (loss, grad)")
            lr, gr = result
        else:
            lr, gr = result, None
        store(lv, lr, "the loss function (loss)")
        if gv is not None:
            if gr is None:
                raise ValueError("the loss function returned no gradient, which this call "
                                 "needs: return (loss, grad)")
            store(gv, gr, "the loss function (grad)")

    def eval(self, x: int, batch: int, n: int, dim: int, loss: int,
             grad: Optional[int]) -> None:
        xv, lv, gv = self._views(x, batch, n, dim, loss, grad)
        if self.inplace:
            self.fn(xv, lv, gv)
        else:
            self._results(self.fn(xv), lv, gv)

    def eval_draws(self, x: int, batch: int, n: int, dim: int, first_draw: int,
                   total_draws: int, loss: int, grad: Optional[int]) -> None:
        xv, lv, gv = self._views(x, batch, n, dim, loss, grad)
        if self.inplace:
            self.fn(xv, int(first_draw), int(total_draws), lv, gv)
        else:
            self._results(self.fn(xv, int(first_draw), int(total_draws)), lv, gv)


class ModelEntry:
    """A denoiser (lgd_model_callbacks) or a raw network (lgd_network_callbacks) written
    in Python: forward(x, sigma_or_t, cond) and vjp(x, sigma_or_t, cond, v)."""

    __slots__ = ("forward_fn", "vjp_fn", "inplace", "cond_dim", "state", "ctxp", "names")

    def __init__(self, forward_fn: Callable[..., Any], vjp_fn: Optional[Callable[..., Any]],
                 inplace: bool, cond_dim: int, state: ContextState, ctxp: int,
                 names: Tuple[str, str]):
        self.forward_fn, self.vjp_fn, self.inplace = forward_fn, vjp_fn, inplace
        self.cond_dim, self.state, self.ctxp, self.names = cond_dim, state, ctxp, names

    def _cond(self, cond: Optional[int], batch: int) -> Optional[np.ndarray]:
        return view(cond, (batch, self.cond_dim), False) if cond and self.cond_dim else None

    def denoise(self, x: int, s: float, cond: Optional[int], batch: int, dim: int,
                out: int) -> None:
        xv = view(x, (batch, dim), False)
        ov = view(out, (batch, dim), True)
        cv = self._cond(cond, batch)
        if self.inplace:
            self.forward_fn(xv, float(s), cv, ov)
        else:
            store(ov, self.forward_fn(xv, float(s), cv), self.names[0])

    def vjp(self, x: int, s: float, cond: Optional[int], batch: int, dim: int, v: int,
            out: int) -> None:
        assert self.vjp_fn is not None  # the library calls it only when it was given
        xv = view(x, (batch, dim), False)
        vv = view(v, (batch, dim), False)
        ov = view(out, (batch, dim), True)
        cv = self._cond(cond, batch)
        if self.inplace:
            self.vjp_fn(xv, float(s), cv, vv, ov)
        else:
            store(ov, self.vjp_fn(xv, float(s), cv, vv), self.names[1])

    forward = denoise
    network_vjp = vjp
