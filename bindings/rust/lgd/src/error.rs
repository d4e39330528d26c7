//! `lgd::Error`: the status of a failed call and the context's message.
use std::ffi::CStr;
use std::fmt;

use lgd_sys as sys;

/// The status of a failed call: liblgd's `lgd_status` codes (never `LGD_OK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `LGD_ERR_INVALID_ARGUMENT`: a NULL, a zero size, an out-of-range option.
    InvalidArgument,
    /// `LGD_ERR_OUT_OF_MEMORY`: host or device allocation failed.
    OutOfMemory,
    /// `LGD_ERR_SHAPE_MISMATCH`: tensors or slices whose sizes do not fit together.
    ShapeMismatch,
    /// `LGD_ERR_NON_FINITE`: a model, loss or step produced NaN or Inf.
    NonFinite,
    /// `LGD_ERR_CALLBACK`: a closure returned an error or panicked.
    Callback,
    /// `LGD_ERR_UNSUPPORTED`: the object cannot do this (e.g. exact posterior).
    Unsupported,
    /// `LGD_ERR_BACKEND_UNAVAILABLE`: the backend asked for cannot be used here.
    BackendUnavailable,
    /// `LGD_ERR_ABORTED`: the progress closure asked to stop, or the context was cancelled.
    Aborted,
    /// `LGD_ERR_STATE`: a call out of order (sampler not started, finished), or a call made
    /// from inside a closure on the context that is running it.
    State,
    /// `LGD_ERR_IO`: a file could not be read or written.
    Io,
    /// `LGD_ERR_FORMAT`: a file or buffer is malformed.
    Format,
    /// `LGD_ERR_INTERNAL`: a bug in liblgd.
    Internal,
    /// A code this crate does not know (a newer library).
    Unknown(i32),
}

impl Status {
    /// The status of a C code; `None` for `LGD_OK`.
    pub fn from_code(code: sys::lgd_status) -> Option<Status> {
        Some(match code {
            sys::LGD_OK => return None,
            sys::LGD_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::LGD_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::LGD_ERR_SHAPE_MISMATCH => Status::ShapeMismatch,
            sys::LGD_ERR_NON_FINITE => Status::NonFinite,
            sys::LGD_ERR_CALLBACK => Status::Callback,
            sys::LGD_ERR_UNSUPPORTED => Status::Unsupported,
            sys::LGD_ERR_BACKEND_UNAVAILABLE => Status::BackendUnavailable,
            sys::LGD_ERR_ABORTED => Status::Aborted,
            sys::LGD_ERR_STATE => Status::State,
            sys::LGD_ERR_IO => Status::Io,
            sys::LGD_ERR_FORMAT => Status::Format,
            sys::LGD_ERR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        })
    }

    /// The C code (`LGD_ERR_*`).
    pub fn code(self) -> sys::lgd_status {
        match self {
            Status::InvalidArgument => sys::LGD_ERR_INVALID_ARGUMENT,
            Status::OutOfMemory => sys::LGD_ERR_OUT_OF_MEMORY,
            Status::ShapeMismatch => sys::LGD_ERR_SHAPE_MISMATCH,
            Status::NonFinite => sys::LGD_ERR_NON_FINITE,
            Status::Callback => sys::LGD_ERR_CALLBACK,
            Status::Unsupported => sys::LGD_ERR_UNSUPPORTED,
            Status::BackendUnavailable => sys::LGD_ERR_BACKEND_UNAVAILABLE,
            Status::Aborted => sys::LGD_ERR_ABORTED,
            Status::State => sys::LGD_ERR_STATE,
            Status::Io => sys::LGD_ERR_IO,
            Status::Format => sys::LGD_ERR_FORMAT,
            Status::Internal => sys::LGD_ERR_INTERNAL,
            Status::Unknown(c) => c,
        }
    }

    /// liblgd's short description (`lgd_status_string()`), e.g. "invalid argument".
    pub fn description(self) -> &'static str {
        // SAFETY: lgd_status_string accepts any value and returns a static string.
        unsafe { CStr::from_ptr(sys::lgd_status_string(self.code())) }.to_str().unwrap_or("unknown status")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A failed call: its status and the message liblgd left on the context
/// (`lgd_context_last_error()`), or the binding's own message for an argument it refused
/// before calling the library (slice lengths that do not fit, a string with a NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// An error with this status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The C code of the status (`LGD_ERR_*`).
    pub fn code(&self) -> i32 {
        self.status.code()
    }

    /// The message: liblgd's description of the argument or step at fault.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{} ({})", self.message, self.status)
        }
    }
}

impl std::error::Error for Error {}

/// `Result<T, lgd::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// A binding-side refusal of an argument (before the library is called).
pub(crate) fn invalid(status: Status, message: impl Into<String>) -> Error {
    Error::new(status, message)
}

/// An error of a context-free call (schedules, init functions): the status and the
/// function's name.
pub(crate) fn check_free(what: &str, st: sys::lgd_status) -> Result<()> {
    match Status::from_code(st) {
        None => Ok(()),
        Some(s) => Err(Error::new(s, format!("{what}: {}", s.description()))),
    }
}
