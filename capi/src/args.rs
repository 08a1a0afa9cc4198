//! Turning the caller's raw pointers into Rust values, with errors instead of UB for
//! what can be checked (null pointers, invalid UTF-8, impossible lengths).

use std::ffi::{CStr, c_char};
use std::ptr::NonNull;

use crate::SQC_NUL_TERMINATED;
use crate::error::{Res, fail, sqc_status};

fn null(what: &str) -> crate::error::Failure {
    fail(sqc_status::NullPointer, format!("{what} is a null pointer"))
}

/// The bytes at `ptr..ptr + len`; the empty slice for a null pointer of length 0.
///
/// # Safety
/// A non-null `ptr` is valid for reads of `len` bytes for the lifetime `'a` (the call).
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Res<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(null(what)) };
    }
    if len > isize::MAX as usize {
        return Err(fail(
            sqc_status::InvalidArgument,
            format!("{what} has an impossible length of {len} bytes"),
        ));
    }
    // SAFETY: non-null, length within isize::MAX, and the caller guarantees validity for
    // reads of `len` bytes during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A UTF-8 string argument: `len` bytes at `ptr`, or up to the NUL when `len` is
/// `SQC_NUL_TERMINATED`; the empty string for a null pointer of length 0.
///
/// # Safety
/// As `bytes`; with `SQC_NUL_TERMINATED`, a non-null `ptr` points to a NUL-terminated
/// string.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, len: usize, what: &str) -> Res<&'a str> {
    let raw = if len == SQC_NUL_TERMINATED {
        if ptr.is_null() {
            return Err(null(what));
        }
        // SAFETY: non-null, and the caller promises a NUL-terminated string.
        unsafe { CStr::from_ptr(ptr) }.to_bytes()
    } else {
        // SAFETY: forwarded contract of this function.
        unsafe { bytes(ptr.cast(), len, what)? }
    };
    if raw.is_ascii() {
        // The common case, checked in a few word-wide steps (std's `from_utf8` costs
        // about 80 instructions and two mispredicted branches on a 10-byte key).
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(raw) });
    }
    std::str::from_utf8(raw).map_err(|e| {
        fail(
            sqc_status::InvalidUtf8,
            format!(
                "{what} is not valid UTF-8 (invalid byte at offset {}): {:?}",
                e.valid_up_to(),
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

/// An optional UTF-8 string argument: `None` for a null pointer (whatever the length).
///
/// # Safety
/// As `text`.
pub(crate) unsafe fn opt_text<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
) -> Res<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { text(ptr, len, what) }.map(Some)
    }
}

/// A path argument: bytes (Unix paths need not be UTF-8).
///
/// # Safety
/// As `text`.
pub(crate) unsafe fn path<'a>(ptr: *const c_char, len: usize) -> Res<&'a std::path::Path> {
    let raw = if len == SQC_NUL_TERMINATED {
        if ptr.is_null() {
            return Err(null("path"));
        }
        // SAFETY: non-null, and the caller promises a NUL-terminated string.
        unsafe { CStr::from_ptr(ptr) }.to_bytes()
    } else {
        // SAFETY: forwarded contract.
        unsafe { bytes(ptr.cast(), len, "path")? }
    };
    if raw.is_empty() {
        return Err(fail(sqc_status::InvalidArgument, "path is empty"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(raw)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(raw)
            .map(std::path::Path::new)
            .map_err(|_| fail(sqc_status::InvalidUtf8, "path is not valid UTF-8"))
    }
}

/// A struct read from a pointer; `None` for a null pointer.
///
/// # Safety
/// A non-null `ptr` is valid for reads of one `T`.
pub(crate) unsafe fn read_opt<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: non-null (checked by `as_ref`) and valid for reads per the contract.
    unsafe { ptr.as_ref() }.copied()
}

/// An out-pointer that must not be null, checked before the operation runs (so that,
/// say, a pop with a null out-pointer removes nothing).
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// A non-null `ptr` is valid and aligned for writes of one `T` during the call.
    pub(crate) unsafe fn new(ptr: *mut T, what: &str) -> Res<Self> {
        NonNull::new(ptr).map(Out).ok_or_else(|| null(what))
    }

    /// Writes the result.
    pub(crate) fn set(self, v: T) {
        // SAFETY: `new`'s contract: valid and aligned for writes during the call. The
        // old value is not dropped (the out types are plain C data).
        unsafe { self.0.as_ptr().write(v) }
    }
}

/// An out-pointer that may be null (the result is then not reported).
pub(crate) struct OptOut<T>(Option<NonNull<T>>);

impl<T> OptOut<T> {
    /// # Safety
    /// As `Out::new`.
    pub(crate) unsafe fn new(ptr: *mut T) -> Self {
        OptOut(NonNull::new(ptr))
    }

    /// Writes the result if there is somewhere to write it.
    pub(crate) fn set(self, v: T) {
        if let Some(p) = self.0 {
            // SAFETY: as `Out::set`.
            unsafe { p.as_ptr().write(v) }
        }
    }
}

/// A caller-owned buffer of `cap` bytes (null allowed when `cap` is 0).
pub(crate) struct OutBytes {
    ptr: *mut u8,
    cap: usize,
}

impl OutBytes {
    /// # Safety
    /// A non-null `ptr` is valid for writes of `cap` bytes during the call.
    pub(crate) unsafe fn new(ptr: *mut u8, cap: usize, what: &str) -> Res<Self> {
        if ptr.is_null() && cap != 0 {
            return Err(null(what));
        }
        Ok(OutBytes { ptr, cap })
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Copies `src` to the start of the buffer; the caller checked that it fits.
    pub(crate) fn fill(&self, src: &[u8]) {
        assert!(src.len() <= self.cap, "fill beyond the buffer");
        if !src.is_empty() {
            // SAFETY: non-null (src non-empty so cap > 0), valid for `cap >= src.len()`
            // bytes of writes per `new`'s contract; a caller buffer cannot overlap a
            // value owned by the library.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, src.len()) }
        }
    }
}
