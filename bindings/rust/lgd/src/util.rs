//! Small helpers: C strings, slices from C pointers, size checks.
use std::ffi::{c_char, CStr, CString};
use std::path::Path;

use crate::error::{invalid, Result, Status};

/// A C string as an owned String ("" for NULL; invalid UTF-8 replaced).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

pub(crate) fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| invalid(Status::InvalidArgument, format!("{what}: the string contains a NUL byte")))
}

pub(crate) fn path_cstring(what: &str, p: &Path) -> Result<CString> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| invalid(Status::InvalidArgument, format!("{what}: the path contains a NUL byte")))
    }
    #[cfg(not(unix))]
    {
        let s = p.to_str().ok_or_else(|| {
            invalid(Status::InvalidArgument, format!("{what}: the path is not valid UTF-8"))
        })?;
        cstring(what, s)
    }
}

/// A slice over `len` floats at `p` (empty for NULL or 0).
///
/// # Safety
/// When `len > 0` and `p` is not NULL, `p` points to `len` initialised floats valid for 'a.
pub(crate) unsafe fn slice<'a>(p: *const f32, len: usize) -> &'a [f32] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

/// As [`slice`], mutable.
///
/// # Safety
/// As [`slice`], and nothing else accesses the memory during 'a.
pub(crate) unsafe fn slice_mut<'a>(p: *mut f32, len: usize) -> &'a mut [f32] {
    if p.is_null() || len == 0 {
        &mut []
    } else {
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }
}

/// Whether two float ranges share memory (a closure's input and output slices must not:
/// `&[f32]` and `&mut [f32]` over the same floats would be undefined behaviour).
pub(crate) fn overlap(a: *const f32, alen: usize, b: *const f32, blen: usize) -> bool {
    if a.is_null() || b.is_null() || alen == 0 || blen == 0 {
        return false;
    }
    let (a0, b0) = (a as usize, b as usize);
    let (a1, b1) = (a0 + alen * 4, b0 + blen * 4);
    a0 < b1 && b0 < a1
}

/// Product of the sizes as usize, None on overflow or a negative size.
pub(crate) fn checked_product(sizes: &[i64]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |acc, &s| usize::try_from(s).ok().and_then(|s| acc.checked_mul(s)))
}

/// `len` as i64 (slices never exceed isize::MAX elements).
pub(crate) fn len_i64(len: usize) -> i64 {
    len as i64
}

/// `n` as a positive usize, or the error.
pub(crate) fn positive(what: &str, name: &str, n: i64) -> Result<usize> {
    if n <= 0 {
        return Err(invalid(Status::InvalidArgument, format!("{what}: {name} = {n} must be positive")));
    }
    usize::try_from(n)
        .map_err(|_| invalid(Status::InvalidArgument, format!("{what}: {name} = {n} is too large")))
}

/// rows = len / per_row when len is a positive multiple of per_row.
pub(crate) fn rows_of(what: &str, name: &str, len: usize, per_row: usize, unit: &str) -> Result<usize> {
    if per_row == 0 || len == 0 || len % per_row != 0 {
        return Err(invalid(
            Status::ShapeMismatch,
            format!(
                "{what}: {name} has {len} values, which is not a positive multiple of {per_row} ({unit})"
            ),
        ));
    }
    Ok(len / per_row)
}

/// The message of a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_ranges() {
        let v = [0.0f32; 8];
        let p = v.as_ptr();
        assert!(overlap(p, 4, p, 4));
        assert!(overlap(p, 4, unsafe { p.add(3) }, 4));
        assert!(!overlap(p, 4, unsafe { p.add(4) }, 4)); // adjacent
        assert!(!overlap(p, 4, std::ptr::null(), 4));
        assert!(!overlap(p, 0, p, 4));
    }

    #[test]
    fn sizes() {
        assert_eq!(checked_product(&[2, 3, 4]), Some(24));
        assert_eq!(checked_product(&[-1, 3]), None);
        assert_eq!(checked_product(&[i64::MAX, i64::MAX]), None);
        assert_eq!(rows_of("f", "x", 6, 3, "rows").unwrap(), 2);
        assert_eq!(rows_of("f", "x", 7, 3, "rows").unwrap_err().status(), Status::ShapeMismatch);
        assert_eq!(rows_of("f", "x", 0, 3, "rows").unwrap_err().status(), Status::ShapeMismatch);
        assert_eq!(positive("f", "dim", 0).unwrap_err().status(), Status::InvalidArgument);
    }
}
