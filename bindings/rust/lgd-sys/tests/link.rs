//! The linked liblgd answers through the raw declarations: the version the headers
//! describe, the status strings, a CPU context made from options written by the
//! library's own init function.
use std::ffi::CStr;
use std::ptr;

use lgd_sys::*;

#[test]
fn run_time_version_matches_the_declarations() {
    let v = unsafe { lgd_version() };
    assert_eq!(v / 10000, LGD_VERSION_MAJOR, "major version of the loaded library");
    assert!(v >= LGD_VERSION_NUMBER, "library {v} older than the declarations {LGD_VERSION_NUMBER}");
    let s = unsafe { CStr::from_ptr(lgd_version_string()) }.to_str().unwrap();
    let parts: Vec<u32> = s.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts[0] * 10000 + parts[1] * 100 + parts[2], v);
}

#[test]
fn status_strings() {
    let text = |st| unsafe { CStr::from_ptr(lgd_status_string(st)) }.to_str().unwrap().to_owned();
    assert_eq!(text(LGD_ERR_INVALID_ARGUMENT), "invalid argument");
    assert_eq!(text(-1000), "unknown status");
    for st in LGD_ERR_INTERNAL..=LGD_OK {
        assert_ne!(text(st), "unknown status", "status {st}");
    }
}

#[test]
fn context_from_init_defaults() {
    unsafe {
        let mut o: lgd_context_options = std::mem::zeroed();
        assert_eq!(lgd_context_options_init(&mut o, struct_size_of::<lgd_context_options>()), LGD_OK);
        assert_eq!(o.struct_size as usize, std::mem::size_of::<lgd_context_options>());
        assert_eq!(o.backend, LGD_BACKEND_CPU);
        assert_eq!(o.log_level, LGD_LOG_WARNING);
        o.num_threads = 1;
        let mut ctx = ptr::null_mut();
        let mut err = ptr::null();
        assert_eq!(lgd_context_create(&o, &mut ctx, &mut err), LGD_OK);
        assert!(!ctx.is_null());
        assert_eq!(lgd_context_backend(ctx), LGD_BACKEND_CPU);
        // an error leaves its message on the context
        let mut t = ptr::null_mut();
        assert_eq!(lgd_tensor_create_2d(ctx, 0, 3, &mut t), LGD_ERR_INVALID_ARGUMENT);
        assert!(t.is_null());
        let msg = CStr::from_ptr(lgd_context_last_error(ctx)).to_str().unwrap();
        assert!(msg.contains("lgd_tensor_create"), "message: {msg}");
        lgd_context_destroy(ctx);
        // a struct_size below the first layout is refused
        assert_eq!(lgd_context_options_init(&mut o, 4), LGD_ERR_INVALID_ARGUMENT);
    }
}
