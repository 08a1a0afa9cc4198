//! # sciqlop-cache C ABI
//!
//! The whole store API of `sciqlop_cache` (Cache, Index, FanoutCache, FanoutIndex)
//! behind a stable C interface: `include/sciqlop_cache.h` (generated from this crate by
//! cbindgen, checked in) and the header-only C++20 wrapper
//! `include/sciqlop_cache/sciqlop_cache.hpp` built on it.
//!
//! ## Conventions
//!
//! - Every function returns an `sqc_status`: `SQC_STATUS_OK` (0) or an error code;
//!   `sqc_last_error` gives the message of the calling thread's last failure (naming
//!   the key or path involved). Results come back through out-pointers.
//! - Strings (keys, tags, paths, prefixes, lock names) are passed as a pointer and a
//!   length in bytes; the length `SQC_NUL_TERMINATED` means "NUL-terminated". Keys,
//!   tags, prefixes and names must be UTF-8 (`SQC_STATUS_INVALID_UTF8` otherwise);
//!   paths are bytes (Unix). A null pointer with length 0 is the empty string.
//!   Values are bytes: pointer and length, a null pointer with length 0 is empty.
//! - Handles (`sqc_store`, `sqc_tx`, `sqc_lock`, `sqc_cursor`) are ids in a
//!   registry, never pointers: a closed, released, never-opened or zeroed handle gives
//!   `SQC_STATUS_INVALID_HANDLE`, never undefined behaviour, and closing twice is an
//!   error, not a double free. Ids are never reused.
//! - Store handles are thread-safe: any number of threads may use one at once. Closing
//!   a store invalidates the handle at once; calls already running on it finish, and
//!   the store is released after the last one (and after its open transactions, locks
//!   and cursors end).
//! - No panic crosses the boundary: each entry point catches it and returns
//!   `SQC_STATUS_PANIC`.
//! - What the caller must still get right (as with any C API): pointers that are
//!   non-null must be valid for the length given, out-pointers valid for writes, and
//!   an `sqc_buf` freed once.

// The C ABI takes raw pointers from its callers: this crate is where the workspace's
// `unsafe_code = "deny"` cannot hold. Each `unsafe` block is one pointer access with a
// SAFETY comment; everything else is safe Rust over the `sciqlop_cache` API.
#![allow(unsafe_code)]
// The exported types carry their C names (`sqc_store`, `sqc_status`, …).
#![allow(non_camel_case_types)]

mod args;
mod cursor;
mod error;
mod handles;
mod lock;
mod store;
#[cfg(test)]
mod tests;
mod tx;
mod types;

pub use cursor::*;
pub use error::*;
pub use lock::*;
pub use store::*;
pub use tx::*;
pub use types::*;

/// Version of this C ABI: bumped when a function's signature or a struct's layout
/// changes incompatibly.
pub const SQC_ABI_VERSION: u32 = 1;

/// A string length meaning "the string is NUL-terminated" (`SIZE_MAX`).
pub const SQC_NUL_TERMINATED: usize = usize::MAX;

/// An expiry meaning "never expires" (any negative value does).
pub const SQC_NO_EXPIRY: i64 = -1;

/// A timeout meaning "wait as long as it takes" (any negative value does).
pub const SQC_WAIT_FOREVER: i64 = -1;

/// The ABI version of the library actually linked (`SQC_ABI_VERSION` when it matches
/// the header).
#[unsafe(no_mangle)]
pub extern "C" fn sqc_abi_version() -> u32 {
    SQC_ABI_VERSION
}
