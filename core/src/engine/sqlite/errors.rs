//! SQLite errors as the crate's typed errors: the one place `rusqlite::Error` is mapped
//! (it never appears in the public API; the source chain is kept).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::Error;

/// Maps the errors of one database: its path, and the busy timeout to report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqlErr<'a> {
    path: &'a Path,
    busy_timeout: Duration,
}

impl<'a> SqlErr<'a> {
    pub(crate) fn new(path: &'a Path, busy_timeout: Duration) -> Self {
        SqlErr { path, busy_timeout }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        self.path
    }

    /// The typed error for `e`.
    pub(crate) fn map(&self, e: rusqlite::Error) -> Error {
        sql_error(self.path, self.busy_timeout, e)
    }
}

/// Whether `e` is SQLite's "busy" or "locked" (another connection holds a lock).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Whether `e` says the disk (or a quota, or a file size limit) is full.
pub(crate) fn is_storage_full(e: &Error) -> bool {
    use std::io::ErrorKind;
    matches!(e, Error::Io { source, .. } if matches!(source.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge))
}

fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(path).to_owned()
}

/// Maps SQLite errors to typed errors.
pub(crate) fn sql_error(path: &Path, busy_timeout: Duration, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Busy {
                    path: path.to_owned(),
                    timeout: busy_timeout,
                };
            }
            ErrorCode::NotADatabase => {
                return Error::NotACache {
                    path: path.to_owned(),
                    reason: detail,
                };
            }
            ErrorCode::DatabaseCorrupt => {
                return Error::Corrupt {
                    path: path.to_owned(),
                    detail,
                };
            }
            ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                return Error::ReadOnly {
                    path: parent(path),
                    reason: detail,
                };
            }
            ErrorCode::DiskFull => {
                return Error::io(
                    format!("writing {}", path.display()),
                    std::io::Error::new(std::io::ErrorKind::StorageFull, detail),
                );
            }
            _ => {}
        }
    }
    Error::Engine {
        path: path.to_owned(),
        source: Box::new(e),
    }
}
