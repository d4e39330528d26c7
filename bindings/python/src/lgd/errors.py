"""Errors: one exception class per liblgd status, all subclasses of :class:`lgd.Error`.

Every non-zero status of a liblgd call raises the class of that status with the
status (``err.status``, an int, and ``err.status_name``, e.g. ``"LGD_ERR_SHAPE_MISMATCH"``)
and the message of ``lgd_context_last_error()`` (``err.message``). Some classes also
derive from the matching built-in exception, so ``except ValueError`` catches a shape
mismatch or an invalid argument, ``except MemoryError`` an out-of-memory status.

An exception raised inside a Python callback (a loss, a model, a progress function, a
radius function) is not turned into an :class:`lgd.Error`: the *same* exception object is
re-raised at the caller once the C call has returned, with the library's status and
message attached as ``exc.lgd_status`` (int) and ``exc.lgd_error`` (the
:class:`lgd.Error` the status alone would have raised, or None when the call succeeded
anyway, e.g. after a log callback raised).
"""
from __future__ import annotations

from typing import Dict, Optional, Type

OK = 0
ERR_INVALID_ARGUMENT = -1
ERR_OUT_OF_MEMORY = -2
ERR_SHAPE_MISMATCH = -3
ERR_NON_FINITE = -4
ERR_CALLBACK = -5
ERR_UNSUPPORTED = -6
ERR_BACKEND_UNAVAILABLE = -7
ERR_ABORTED = -8
ERR_STATE = -9
ERR_IO = -10
ERR_FORMAT = -11
ERR_INTERNAL = -12

STATUS_NAMES: Dict[int, str] = {
    OK: "LGD_OK",
    ERR_INVALID_ARGUMENT: "LGD_ERR_INVALID_ARGUMENT",
    ERR_OUT_OF_MEMORY: "LGD_ERR_OUT_OF_MEMORY",
    ERR_SHAPE_MISMATCH: "LGD_ERR_SHAPE_MISMATCH",
    ERR_NON_FINITE: "LGD_ERR_NON_FINITE",
    ERR_CALLBACK: "LGD_ERR_CALLBACK",
    ERR_UNSUPPORTED: "LGD_ERR_UNSUPPORTED",
    ERR_BACKEND_UNAVAILABLE: "LGD_ERR_BACKEND_UNAVAILABLE",
    ERR_ABORTED: "LGD_ERR_ABORTED",
    ERR_STATE: "LGD_ERR_STATE",
    ERR_IO: "LGD_ERR_IO",
    ERR_FORMAT: "LGD_ERR_FORMAT",
    ERR_INTERNAL: "LGD_ERR_INTERNAL",
}


class Error(Exception):
    """A liblgd call returned a non-zero status.

    Attributes: ``status`` (the lgd_status, a negative int), ``status_name`` (its C
    name) and ``message`` (lgd_context_last_error()'s message, or the status's
    description when the call had no context to hold one)."""

    status: int = 0

    def __init__(self, message: str, status: Optional[int] = None):
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"status {self.status}")

    def __str__(self) -> str:
        return f"{self.message} [{self.status_name}]"


class InvalidArgumentError(Error, ValueError):
    """LGD_ERR_INVALID_ARGUMENT: a NULL, a zero size, an out-of-range option."""
    status = ERR_INVALID_ARGUMENT


class OutOfMemoryError(Error, MemoryError):
    """LGD_ERR_OUT_OF_MEMORY: host or device allocation failed."""
    status = ERR_OUT_OF_MEMORY


class ShapeMismatchError(Error, ValueError):
    """LGD_ERR_SHAPE_MISMATCH: tensors whose shapes do not fit together."""
    status = ERR_SHAPE_MISMATCH


class NonFiniteError(Error, FloatingPointError):
    """LGD_ERR_NON_FINITE: a model, loss or step produced NaN or Inf."""
    status = ERR_NON_FINITE


class CallbackError(Error):
    """LGD_ERR_CALLBACK: a host callback failed (returned non-zero or left an output
    unwritten). A Python callback's own exception is re-raised instead of this class."""
    status = ERR_CALLBACK


class UnsupportedError(Error):
    """LGD_ERR_UNSUPPORTED: the object cannot do this (e.g. exact posterior sampling)."""
    status = ERR_UNSUPPORTED


class BackendUnavailableError(Error):
    """LGD_ERR_BACKEND_UNAVAILABLE: the backend asked for cannot be used here."""
    status = ERR_BACKEND_UNAVAILABLE


class AbortedError(Error):
    """LGD_ERR_ABORTED: a progress callback asked to stop, or Context.cancel()."""
    status = ERR_ABORTED


class StateError(Error, RuntimeError):
    """LGD_ERR_STATE: a call out of order (sampler not started, finished)."""
    status = ERR_STATE


class IOError_(Error, OSError):
    """LGD_ERR_IO: a file could not be read or written (exported as ``lgd.IOError``
    would shadow the built-in; the name is ``lgd.LgdIOError``)."""
    status = ERR_IO

    def __init__(self, message: str, status: Optional[int] = None):
        Error.__init__(self, message, status)

    def __str__(self) -> str:
        return Error.__str__(self)


class FormatError(Error, ValueError):
    """LGD_ERR_FORMAT: a file or buffer is malformed."""
    status = ERR_FORMAT


class InternalError(Error):
    """LGD_ERR_INTERNAL: a bug in liblgd, or a failure of the device backend."""
    status = ERR_INTERNAL


LgdIOError = IOError_

_CLASSES: Dict[int, Type[Error]] = {
    cls.status: cls for cls in (InvalidArgumentError, OutOfMemoryError, ShapeMismatchError,
                                NonFiniteError, CallbackError, UnsupportedError,
                                BackendUnavailableError, AbortedError, StateError, IOError_,
                                FormatError, InternalError)
}


def error_for(status: int, message: str) -> Error:
    """The exception object for a non-zero status (lgd.Error itself for an unknown
    status)."""
    cls = _CLASSES.get(status)
    if cls is None:
        return Error(message, status)
    return cls(message)
