//! `Context`: one backend instance, its options, logging, errors and cancellation.
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::Arc;

use lgd_sys as sys;

use crate::error::{invalid, Error, Result, Status};
use crate::util::{cstr_lossy, path_cstring};

/// Which tensor backend a context runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when a usable device and liblgd-cuda are present, else the CPU.
    Auto,
    /// Always available; the reference implementation.
    Cpu,
    /// An NVIDIA GPU through the run-time loaded liblgd-cuda module.
    Cuda,
}

impl Backend {
    pub(crate) fn raw(self) -> sys::lgd_backend_kind {
        match self {
            Backend::Auto => sys::LGD_BACKEND_AUTO,
            Backend::Cpu => sys::LGD_BACKEND_CPU,
            Backend::Cuda => sys::LGD_BACKEND_CUDA,
        }
    }
    fn from_raw(k: sys::lgd_backend_kind) -> Backend {
        match k {
            sys::LGD_BACKEND_CUDA => Backend::Cuda,
            sys::LGD_BACKEND_AUTO => Backend::Auto,
            _ => Backend::Cpu,
        }
    }
}

/// Severity of a log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

impl LogLevel {
    fn raw(self) -> sys::lgd_log_level {
        match self {
            LogLevel::Error => sys::LGD_LOG_ERROR,
            LogLevel::Warning => sys::LGD_LOG_WARNING,
            LogLevel::Info => sys::LGD_LOG_INFO,
            LogLevel::Debug => sys::LGD_LOG_DEBUG,
        }
    }
    fn from_raw(l: sys::lgd_log_level) -> LogLevel {
        match l {
            sys::LGD_LOG_ERROR => LogLevel::Error,
            sys::LGD_LOG_WARNING => LogLevel::Warning,
            sys::LGD_LOG_INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }
}

/// A log closure. `Send + Sync`: the context it is given to may be freed, and may log, on
/// whichever thread drops its last reference (a [`CancelHandle`] can be that thread).
type LogFn = dyn Fn(LogLevel, &str) + Send + Sync;

/// The log closure as the context's `log_user`. liblgd has no destroy callback for it,
/// so every handle of the context ([`Context`], [`CancelHandle`], and through their
/// `Context` every object) holds an `Arc` of it: it outlives the C context, which lives
/// only as long as some handle does.
pub(crate) struct LogSink {
    f: Box<LogFn>,
}

unsafe extern "C" fn log_trampoline(user: *mut c_void, level: sys::lgd_log_level, message: *const c_char) {
    // Never unwind into C (lgd/context.h, "Callbacks"): a panicking log closure is
    // swallowed; there is nobody to report it to.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: user is the LogSink that the context's handles keep alive; message is a
        // valid string for the duration of the call.
        let sink = unsafe { &*(user as *const LogSink) };
        let msg = unsafe { cstr_lossy(message) };
        (sink.f)(LogLevel::from_raw(level), &msg);
    }));
}

/// Options of [`Context::with_options`]. `Default` is the library's
/// (`lgd_context_options_init()`): the CPU backend, OpenMP's thread count, warnings.
#[derive(Clone)]
pub struct ContextOptions {
    /// The backend (default CPU).
    pub backend: Backend,
    /// CUDA device ordinal (CPU: ignored).
    pub device_index: i32,
    /// CPU threads; 0 = OpenMP's default.
    pub num_threads: i32,
    /// Most verbose level passed to the log closure (default warnings).
    pub log_level: LogLevel,
    /// The CUDA backend module to load; `None` searches the install libdir, then the
    /// loader's path.
    pub cuda_module_path: Option<PathBuf>,
    /// Check that every loss, model and network closure writes every output (liblgd
    /// fills the outputs with NaN before each call and checks them after): a debugging
    /// and testing aid.
    pub check_callback_outputs: bool,
    log: Option<Arc<LogSink>>,
}

impl std::fmt::Debug for ContextOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextOptions")
            .field("backend", &self.backend)
            .field("device_index", &self.device_index)
            .field("num_threads", &self.num_threads)
            .field("log_level", &self.log_level)
            .field("cuda_module_path", &self.cuda_module_path)
            .field("check_callback_outputs", &self.check_callback_outputs)
            .field("log", &self.log.is_some())
            .finish()
    }
}

impl Default for ContextOptions {
    fn default() -> Self {
        let o = raw_options_default();
        ContextOptions {
            backend: Backend::from_raw(o.backend),
            device_index: o.device_index,
            num_threads: o.num_threads,
            log_level: LogLevel::from_raw(o.log_level),
            cuda_module_path: None,
            check_callback_outputs: o.check_callback_outputs != 0,
            log: None,
        }
    }
}

fn raw_options_default() -> sys::lgd_context_options {
    // SAFETY: an all-zero struct is valid (integers, NULL pointers, None); init writes
    // exactly size_of bytes.
    let mut o: sys::lgd_context_options = unsafe { std::mem::zeroed() };
    let st =
        unsafe { sys::lgd_context_options_init(&mut o, sys::struct_size_of::<sys::lgd_context_options>()) };
    assert_eq!(st, sys::LGD_OK, "lgd_context_options_init refused its own struct size");
    o
}

impl ContextOptions {
    /// The defaults with this backend.
    pub fn new(backend: Backend) -> Self {
        ContextOptions { backend, ..ContextOptions::default() }
    }

    /// Sends the library's log messages up to `level` to `f`. `f` runs inside liblgd
    /// calls on the thread that makes them, or on the thread that frees the context.
    pub fn log(mut self, level: LogLevel, f: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        self.log_level = level;
        self.log = Some(Arc::new(LogSink { f: Box::new(f) }));
        self
    }
}

/// What every handle of one context shares on the Rust side.
pub(crate) struct Shared {
    /// Non-zero while a closure given to liblgd runs on this context: the library is in
    /// the middle of a call, and only getters may be called on the context's objects
    /// (lgd/context.h, "Callbacks"). Every other method of this crate refuses with
    /// Status::State then instead of reaching the undefined behaviour.
    in_callback: Cell<u32>,
}

/// A liblgd context: one backend instance (CPU or CUDA), with its logging, its last error
/// and its cancellation flag. Every other object is made from a context and keeps it
/// alive, so a `Context` may be dropped before its objects.
///
/// `Clone` takes another reference (`lgd_context_retain()`), to the same context.
///
/// Threads: a context and every object made from it are used by one thread at a time
/// (the thread contract of `<lgd/lgd.h>`), so `Context` and the objects are neither
/// `Send` nor `Sync`: make one context per thread for parallel work
/// ([`Context::new`] may be called on any thread). [`Context::cancel_handle`] gives the
/// one piece that may cross threads.
pub struct Context {
    raw: NonNull<sys::lgd_context>,
    shared: Rc<Shared>,
    log: Option<Arc<LogSink>>,
}

impl Context {
    /// A context on this backend, other options at their defaults.
    pub fn new(backend: Backend) -> Result<Context> {
        Context::with_options(&ContextOptions::new(backend))
    }

    /// A CPU context with the default options.
    pub fn cpu() -> Result<Context> {
        Context::new(Backend::Cpu)
    }

    /// A context with these options. The error message is the library's precise reason
    /// (e.g. why the CUDA module could not be loaded).
    pub fn with_options(options: &ContextOptions) -> Result<Context> {
        let mut o = raw_options_default();
        o.backend = options.backend.raw();
        o.device_index = options.device_index;
        o.num_threads = options.num_threads;
        o.log_level = options.log_level.raw();
        o.check_callback_outputs = options.check_callback_outputs as i32;
        let path = match &options.cuda_module_path {
            Some(p) => Some(path_cstring("Context::with_options: cuda_module_path", p)?),
            None => None,
        };
        o.cuda_module_path = path.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        if let Some(sink) = &options.log {
            o.log = Some(log_trampoline);
            o.log_user = Arc::as_ptr(sink) as *mut c_void;
        }
        let mut raw = ptr::null_mut();
        let mut err: *const c_char = ptr::null();
        // SAFETY: o is a complete struct; path and the sink outlive the call (and the sink
        // the context: it is stored below).
        let st = unsafe { sys::lgd_context_create(&o, &mut raw, &mut err) };
        if let Some(s) = Status::from_code(st) {
            let msg = unsafe { cstr_lossy(err) };
            return Err(Error::new(s, format!("lgd_context_create: {msg}")));
        }
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(Status::Internal, "lgd_context_create returned no context"))?;
        Ok(Context { raw, shared: Rc::new(Shared { in_callback: Cell::new(0) }), log: options.log.clone() })
    }

    /// Wraps a context pointer, taking over one reference (the caller's). Objects made by
    /// this crate from it share its in-callback guard only with handles cloned from the
    /// returned `Context`.
    ///
    /// # Safety
    /// `raw` must be a live context whose reference the caller owns and gives up, and it
    /// must not be in use on another thread; if it has a log callback, its `log_user`
    /// must stay valid as long as the context lives.
    pub unsafe fn from_raw(raw: NonNull<sys::lgd_context>) -> Context {
        Context { raw, shared: Rc::new(Shared { in_callback: Cell::new(0) }), log: None }
    }

    /// The C handle (borrowed: valid while this `Context` is).
    pub fn as_raw(&self) -> *mut sys::lgd_context {
        self.raw.as_ptr()
    }

    /// The backend actually in use (never `Auto`).
    pub fn backend(&self) -> Backend {
        Backend::from_raw(unsafe { sys::lgd_context_backend(self.raw.as_ptr()) })
    }

    /// A human-readable name of the backend and device, e.g. "cpu (openblas, 2 threads)".
    pub fn backend_name(&self) -> String {
        unsafe { cstr_lossy(sys::lgd_context_backend_name(self.raw.as_ptr())) }
    }

    /// The message of the last error reported on this context ("" if none).
    pub fn last_error(&self) -> String {
        unsafe { cstr_lossy(sys::lgd_context_last_error(self.raw.as_ptr())) }
    }

    /// Clears the last error message.
    pub fn clear_error(&self) {
        if self.in_callback() {
            return; // not a getter: not allowed while the library runs a closure
        }
        unsafe { sys::lgd_context_clear_error(self.raw.as_ptr()) }
    }

    /// Blocks until all queued work has finished (a no-op on the CPU).
    pub fn synchronize(&self) -> Result<()> {
        self.call("Context::synchronize", || unsafe { sys::lgd_context_synchronize(self.raw.as_ptr()) })
    }

    /// Bytes of backend memory held by live objects of this context, and the peak since
    /// creation or the last reset.
    pub fn memory_usage(&self) -> (usize, usize) {
        let (mut cur, mut peak) = (0usize, 0usize);
        unsafe { sys::lgd_context_memory_usage(self.raw.as_ptr(), &mut cur, &mut peak) };
        (cur, peak)
    }

    /// Resets the peak memory to the current usage.
    pub fn reset_peak_memory(&self) {
        if !self.in_callback() {
            unsafe { sys::lgd_context_reset_peak_memory(self.raw.as_ptr()) }
        }
    }

    /// The backend's native stream (a `cudaStream_t` on CUDA; null on the CPU).
    pub fn native_stream(&self) -> *mut c_void {
        unsafe { sys::lgd_context_native_stream(self.raw.as_ptr()) }
    }

    /// Asks the calls running on this context, and later ones, to stop with
    /// [`Status::Aborted`] at their next check point, until [`Context::reset_cancel`].
    /// From another thread use a [`CancelHandle`].
    pub fn cancel(&self) {
        unsafe { sys::lgd_context_cancel(self.raw.as_ptr()) }
    }

    /// Withdraws [`Context::cancel`]'s request.
    pub fn reset_cancel(&self) {
        unsafe { sys::lgd_context_reset_cancel(self.raw.as_ptr()) }
    }

    /// A handle that can cancel this context's calls from any thread (e.g. a Ctrl-C
    /// handler or a watchdog), keeping the context alive.
    pub fn cancel_handle(&self) -> CancelHandle {
        let raw = unsafe { sys::lgd_context_retain(self.raw.as_ptr()) };
        CancelHandle { raw: NonNull::new(raw).expect("retain returned NULL"), _log: self.log.clone() }
    }

    // ---- for the other modules ----

    pub(crate) fn in_callback(&self) -> bool {
        self.shared.in_callback.get() > 0
    }

    /// Refuses when a closure of this context is running (the library is mid-call).
    pub(crate) fn guard(&self, what: &str) -> Result<()> {
        if self.in_callback() {
            return Err(invalid(
                Status::State,
                format!(
                    "{what}: called from inside a closure that liblgd is running on the same \
                     context; there only getters are allowed (use another context for other work)"
                ),
            ));
        }
        Ok(())
    }

    /// Marks this context as running a closure until the guard is dropped.
    pub(crate) fn enter_callback(&self) -> CallbackGuard<'_> {
        self.shared.in_callback.set(self.shared.in_callback.get() + 1);
        CallbackGuard { shared: &self.shared }
    }

    /// The error of a status returned by a call on this context: the status and the
    /// context's message.
    pub(crate) fn check(&self, what: &str, st: sys::lgd_status) -> Result<()> {
        match Status::from_code(st) {
            None => Ok(()),
            Some(s) => {
                let msg = self.last_error();
                Err(Error::new(s, if msg.is_empty() { format!("{what}: {}", s.description()) } else { msg }))
            }
        }
    }

    /// guard, clear the last error, call, check.
    pub(crate) fn call(&self, what: &str, f: impl FnOnce() -> sys::lgd_status) -> Result<()> {
        self.guard(what)?;
        unsafe { sys::lgd_context_clear_error(self.raw.as_ptr()) };
        let st = f();
        self.check(what, st)
    }

    /// Reports a closure's failure on this context (lgd_context_set_callback_error).
    pub(crate) fn set_callback_error(&self, message: &str) {
        let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
        unsafe { sys::lgd_context_set_callback_error(self.raw.as_ptr(), c.as_ptr()) }
    }
}

pub(crate) struct CallbackGuard<'a> {
    shared: &'a Shared,
}

impl Drop for CallbackGuard<'_> {
    fn drop(&mut self) {
        self.shared.in_callback.set(self.shared.in_callback.get() - 1);
    }
}

impl Clone for Context {
    fn clone(&self) -> Self {
        // SAFETY: retain of a live context; any thread.
        unsafe { sys::lgd_context_retain(self.raw.as_ptr()) };
        Context { raw: self.raw, shared: self.shared.clone(), log: self.log.clone() }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Drops this handle's reference; `log` (a field) is dropped after this, so the
        // sink outlives the C context when this was the last reference.
        unsafe { sys::lgd_context_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("raw", &self.raw).field("backend", &self.backend_name()).finish()
    }
}

/// Cancels the calls of one context from any thread: [`CancelHandle::cancel`] makes them
/// (and later ones) stop with [`Status::Aborted`] at their next check point (before each
/// sampler step, between chunks of Monte Carlo draws), [`CancelHandle::reset`] withdraws
/// the request. It holds a reference to the context.
pub struct CancelHandle {
    raw: NonNull<sys::lgd_context>,
    _log: Option<Arc<LogSink>>,
}

// SAFETY: the thread contract of <lgd/lgd.h> and <lgd/context.h>: lgd_context_cancel()
// and lgd_context_reset_cancel() may be called from any thread, also while another
// thread runs a call on the context (one atomic store); lgd_context_retain() and
// lgd_context_destroy() (Clone, Drop) may be called from any thread at any time for a
// reference the caller owns, which this handle does. Freeing the context on this thread
// when it holds the last reference may run the log closure here, which is why log
// closures are Send + Sync (and the Arc that keeps it is dropped here too). No other
// function is reachable through a CancelHandle.
unsafe impl Send for CancelHandle {}
// SAFETY: as above; every method takes &self and calls only those any-thread functions.
unsafe impl Sync for CancelHandle {}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle").field("raw", &self.raw).finish()
    }
}

impl CancelHandle {
    /// `lgd_context_cancel()`.
    pub fn cancel(&self) {
        unsafe { sys::lgd_context_cancel(self.raw.as_ptr()) }
    }
    /// `lgd_context_reset_cancel()`.
    pub fn reset(&self) {
        unsafe { sys::lgd_context_reset_cancel(self.raw.as_ptr()) }
    }
}

impl Clone for CancelHandle {
    fn clone(&self) -> Self {
        unsafe { sys::lgd_context_retain(self.raw.as_ptr()) };
        CancelHandle { raw: self.raw, _log: self._log.clone() }
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        unsafe { sys::lgd_context_destroy(self.raw.as_ptr()) }
    }
}

/// The library's version as (major, minor, patch) (`lgd_version()`).
pub fn version() -> (u32, u32, u32) {
    let v = unsafe { sys::lgd_version() };
    (v / 10000, v / 100 % 100, v % 100)
}

/// The library's version string, "MAJOR.MINOR.PATCH" (`lgd_version_string()`).
pub fn version_string() -> &'static str {
    unsafe { CStr::from_ptr(sys::lgd_version_string()) }.to_str().unwrap_or("")
}
