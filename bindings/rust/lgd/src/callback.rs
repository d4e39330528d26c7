//! How closures become liblgd callbacks.
//!
//! Each closure lives in a `Box` whose pointer is the callback's `user`; the library
//! calls the `extern "C"` trampolines here with it and frees it through the object's
//! destroy callback ([`drop_box`]), so the closure lives exactly as long as the C object
//! (whoever holds the last reference). Every trampoline:
//!  - marks the context as running a closure, so that this crate refuses any call on the
//!    context's objects from inside it except getters (lgd/context.h: "Re-entrancy");
//!  - catches panics (`std::panic::catch_unwind`): nothing unwinds into C;
//!  - turns an `Err` or a panic into a non-zero return with the message given to
//!    `lgd_context_set_callback_error()`, which the failing call's [`crate::Error`]
//!    then carries (status [`crate::Status::Callback`]);
//!  - borrows the closure through a `RefCell`: a re-entrant call of the same closure
//!    is an error, not an aliased `&mut`.
use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::context::Context;
use crate::util::panic_message;

/// What a closure given to liblgd returns: `Ok(())`, or an error whose text becomes the
/// message of the failing call's [`crate::Error`] (e.g. `Err("label out of range".into())`,
/// or `?` on any error type).
pub type CallbackResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Runs one call of a closure for the library; the C return value (0 or 1).
pub(crate) fn run_closure<T: ?Sized>(
    ctx: &Context,
    cell: &RefCell<Box<T>>,
    f: impl FnOnce(&mut T) -> CallbackResult,
) -> i32 {
    let _busy = ctx.enter_callback();
    let outcome = catch_unwind(AssertUnwindSafe(|| match cell.try_borrow_mut() {
        Ok(mut closure) => f(&mut **closure).map_err(|e| e.to_string()),
        Err(_) => Err("the closure was called again while it was running".to_owned()),
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            ctx.set_callback_error(&msg);
            1
        }
        Err(payload) => {
            let msg = panic_message(&*payload);
            // a payload whose Drop panics must not unwind into C either
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            ctx.set_callback_error(&format!("the closure panicked: {msg}"));
            1
        }
    }
}

/// Refuses a call whose output slice would alias an input (liblgd passes distinct
/// buffers; this keeps the slices sound whatever it does): the C return value 1 with the
/// reason, or None to go on.
pub(crate) fn refuse_aliasing(ctx: &Context, aliased: bool) -> Option<i32> {
    if aliased {
        ctx.set_callback_error("the binding got an output buffer that overlaps an input");
        return Some(1);
    }
    None
}

/// The destroy callback of an object made from closures: frees the box (`user`). Runs on
/// the thread that drops the object's last reference, which for this crate's handles
/// (not `Send`) is the thread that owns them.
pub(crate) unsafe extern "C" fn drop_box<T>(user: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: user came from Box::into_raw::<T> and liblgd calls destroy exactly once.
        drop(unsafe { Box::from_raw(user as *mut T) })
    }));
}
