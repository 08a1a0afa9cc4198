//! Status codes, the per-thread message of the last failure, and the guard every entry
//! point runs in (no panic crosses the boundary).

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use sqc_core::Error;

/// What a call returned: `SQC_STATUS_OK` (0) or what went wrong. The message of the
/// calling thread's last failure is `sqc_last_error`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sqc_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was null.
    NullPointer = 1,
    /// A key, tag, prefix or name was not valid UTF-8.
    InvalidUtf8 = 2,
    /// The handle is closed, released, of another kind, or was never opened.
    InvalidHandle = 3,
    /// A transaction was committed or rolled back from a thread other than the one that
    /// began it (it stays open).
    WrongThread = 4,
    /// The caller's buffer is too small; the size needed was written to the length
    /// out-pointer and nothing was consumed (call again with a larger buffer).
    BufferTooSmall = 5,
    /// The operation does not exist for this kind of store (e.g. a tag on an Index).
    Unsupported = 6,
    /// An argument is out of its domain (e.g. a shard count of 0, a negative lock
    /// expiry, a length larger than the address space).
    InvalidArgument = 7,
    /// An operating-system I/O error.
    Io = 8,
    /// An error reported by SQLite.
    Database = 9,
    /// The path exists and is not a directory.
    NotADirectory = 10,
    /// The directory cannot be written.
    ReadOnly = 11,
    /// The directory holds a database that is not a sciqlop-cache store.
    NotACache = 12,
    /// The directory holds a store of another kind (e.g. an Index opened as a Cache).
    WrongKind = 13,
    /// The database is damaged.
    Corrupt = 14,
    /// The key is longer than the store's maximum.
    KeyTooLong = 15,
    /// The value is larger than the store's maximum.
    ValueTooLarge = 16,
    /// `incr`/`decr`/`get_counter` on a value that is not a counter (ASCII decimal i64).
    NotACounter = 17,
    /// The counter would overflow an i64.
    CounterOverflow = 18,
    /// A file-backed value's file is missing (`sqc_check` with fix repairs).
    ValueFileMissing = 19,
    /// A file-backed value's file has the wrong size (`sqc_check` with fix repairs).
    ValueFileTruncated = 20,
    /// A lock was not acquired within the timeout.
    LockTimeout = 21,
    /// A key used in a fanout transaction belongs to another shard.
    WrongShard = 22,
    /// A fanout directory was opened with another shard count than it has.
    ShardCountMismatch = 23,
    /// Another writer held the database longer than the busy timeout; nothing was done.
    Busy = 24,
    /// The database rolled the transaction back after an earlier error; retry it.
    TransactionAborted = 25,
    /// An internal error (a Rust panic, caught at the boundary).
    Panic = 26,
    /// Any other error.
    Other = 27,
    /// A row names something the store refuses to read as a value file (a path outside
    /// the store, a link, not a regular file); `sqc_check` with fix removes the row.
    ValueFileInvalid = 28,
    /// A value file's bytes no longer match the checksum recorded when it was written.
    ValueFileCorrupt = 29,
    /// An optimistic write found that what it read had changed meanwhile; retry it.
    Conflict = 30,
}

impl sqc_status {
    const ALL: [sqc_status; 31] = [
        sqc_status::Ok,
        sqc_status::NullPointer,
        sqc_status::InvalidUtf8,
        sqc_status::InvalidHandle,
        sqc_status::WrongThread,
        sqc_status::BufferTooSmall,
        sqc_status::Unsupported,
        sqc_status::InvalidArgument,
        sqc_status::Io,
        sqc_status::Database,
        sqc_status::NotADirectory,
        sqc_status::ReadOnly,
        sqc_status::NotACache,
        sqc_status::WrongKind,
        sqc_status::Corrupt,
        sqc_status::KeyTooLong,
        sqc_status::ValueTooLarge,
        sqc_status::NotACounter,
        sqc_status::CounterOverflow,
        sqc_status::ValueFileMissing,
        sqc_status::ValueFileTruncated,
        sqc_status::LockTimeout,
        sqc_status::WrongShard,
        sqc_status::ShardCountMismatch,
        sqc_status::Busy,
        sqc_status::TransactionAborted,
        sqc_status::Panic,
        sqc_status::Other,
        sqc_status::ValueFileInvalid,
        sqc_status::ValueFileCorrupt,
        sqc_status::Conflict,
    ];

    fn name(self) -> &'static std::ffi::CStr {
        match self {
            sqc_status::Ok => c"ok",
            sqc_status::NullPointer => c"null pointer",
            sqc_status::InvalidUtf8 => c"invalid UTF-8",
            sqc_status::InvalidHandle => c"invalid handle",
            sqc_status::WrongThread => c"wrong thread",
            sqc_status::BufferTooSmall => c"buffer too small",
            sqc_status::Unsupported => c"unsupported",
            sqc_status::InvalidArgument => c"invalid argument",
            sqc_status::Io => c"I/O error",
            sqc_status::Database => c"database error",
            sqc_status::NotADirectory => c"not a directory",
            sqc_status::ReadOnly => c"read-only",
            sqc_status::NotACache => c"not a cache",
            sqc_status::WrongKind => c"wrong kind of store",
            sqc_status::Corrupt => c"corrupt database",
            sqc_status::KeyTooLong => c"key too long",
            sqc_status::ValueTooLarge => c"value too large",
            sqc_status::NotACounter => c"not a counter",
            sqc_status::CounterOverflow => c"counter overflow",
            sqc_status::ValueFileMissing => c"value file missing",
            sqc_status::ValueFileTruncated => c"value file truncated",
            sqc_status::LockTimeout => c"lock timeout",
            sqc_status::WrongShard => c"wrong shard",
            sqc_status::ShardCountMismatch => c"shard count mismatch",
            sqc_status::Busy => c"busy",
            sqc_status::TransactionAborted => c"transaction aborted",
            sqc_status::Panic => c"internal error",
            sqc_status::Other => c"error",
            sqc_status::ValueFileInvalid => c"value file invalid",
            sqc_status::ValueFileCorrupt => c"value file corrupt",
            sqc_status::Conflict => c"conflict",
        }
    }
}

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: sqc_status,
    pub(crate) message: String,
}

pub(crate) type Res<T = ()> = Result<T, Failure>;

pub(crate) fn fail(status: sqc_status, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Io { .. } => sqc_status::Io,
            Error::Engine { .. } => sqc_status::Database,
            Error::NotADirectory(_) => sqc_status::NotADirectory,
            Error::ReadOnly { .. } => sqc_status::ReadOnly,
            Error::NotACache { .. } => sqc_status::NotACache,
            Error::WrongKind { .. } => sqc_status::WrongKind,
            Error::Corrupt { .. } => sqc_status::Corrupt,
            Error::KeyTooLong { .. } => sqc_status::KeyTooLong,
            Error::ValueTooLarge { .. } => sqc_status::ValueTooLarge,
            Error::InvalidArgument(_) => sqc_status::InvalidArgument,
            Error::NotACounter { .. } => sqc_status::NotACounter,
            Error::CounterOverflow { .. } => sqc_status::CounterOverflow,
            Error::ValueFileMissing { .. } => sqc_status::ValueFileMissing,
            Error::ValueFileTruncated { .. } => sqc_status::ValueFileTruncated,
            Error::LockTimeout { .. } => sqc_status::LockTimeout,
            Error::WrongShard { .. } => sqc_status::WrongShard,
            Error::ShardCountMismatch { .. } => sqc_status::ShardCountMismatch,
            Error::Busy { .. } => sqc_status::Busy,
            Error::TransactionAborted => sqc_status::TransactionAborted,
            Error::Unsupported(_) => sqc_status::Unsupported,
            Error::ValueFileInvalid { .. } => sqc_status::ValueFileInvalid,
            Error::ValueFileCorrupt { .. } => sqc_status::ValueFileCorrupt,
            Error::Conflict => sqc_status::Conflict,
            _ => sqc_status::Other,
        };
        fail(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

impl Failure {
    /// Records the message as the thread's last error and returns the status.
    fn record(self) -> sqc_status {
        let mut bytes = self.message.into_bytes();
        bytes.retain(|&b| b != 0);
        let message = CString::new(bytes).unwrap_or_default();
        // During thread teardown the slot may be gone: the status still says it all.
        let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
        self.status
    }
}

/// Runs the body of an entry point: its `Err` becomes the status and last error, a
/// panic becomes `SQC_STATUS_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Res) -> sqc_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => sqc_status::Ok,
        Ok(Err(failure)) => failure.record(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            fail(
                sqc_status::Panic,
                format!(
                    "internal error in sciqlop-cache (a panic, caught at the C boundary): {what}"
                ),
            )
            .record()
        }
    }
}

/// The message of the calling thread's last failed call (an empty string if none
/// failed yet). Successful calls leave it unchanged. The pointer stays valid until
/// the next failure on this thread; never null; owned by the library.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// A short, static, English name of a status code (e.g. "key too long"; "unknown
/// status" for a number that is none); never null.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_status_name(status: i32) -> *const c_char {
    sqc_status::ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or(c"unknown status", |s| s.name())
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: sqc_last_error returns a valid NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(sqc_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        assert_eq!(guard(|| panic!("boom {}", 42)), sqc_status::Panic);
        assert!(last().contains("boom 42"), "{}", last());
        assert_eq!(guard(|| panic!("static")), sqc_status::Panic);
        assert!(last().contains("static"));
        // Success leaves the message alone; failures replace it (NULs dropped).
        assert_eq!(guard(|| Ok(())), sqc_status::Ok);
        assert!(last().contains("static"));
        assert_eq!(
            guard(|| Err(fail(sqc_status::Other, "with\0nul"))),
            sqc_status::Other
        );
        assert_eq!(last(), "withnul");
    }

    #[test]
    fn every_status_has_a_name() {
        for s in sqc_status::ALL {
            // SAFETY: static NUL-terminated strings.
            let name = unsafe { std::ffi::CStr::from_ptr(sqc_status_name(s as i32)) };
            assert!(!name.to_bytes().is_empty());
        }
        assert_eq!(sqc_status::ALL.len(), sqc_status::Conflict as usize + 1);
    }
}
