//! Read-only stores: a store the process cannot write (a read-only mount, a cache owned
//! by another account, a copy made with `chmod -R a-w`) or one opened with
//! [`Builder::read_only`](crate::Builder::read_only). Reads work; every write fails
//! with [`Error::ReadOnly`] naming what is not writable; nothing is written on open or
//! by a background thread (none runs), and reads note no LRU recency.
//!
//! SQLite reads a WAL-mode database through its WAL index (the `-shm` file). When a
//! writer has the store open, the index exists and a read-only connection uses it. A
//! store at rest has neither a WAL nor an index, and a process that cannot create them
//! cannot read through SQLite's locks at all; it then opens the database *immutable*
//! (no locks, no index), which is exact as long as nobody writes. Each read checks
//! that: if a WAL appeared or the database file changed (a writer opened the store),
//! the connections reopen with locks before the next read, and a read that overlapped
//! the change is refused with [`Error::StoreChanged`] rather than
//! answered from pages that may have been rewritten under it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::Connection;

use super::connection::{self, Access};
use crate::options::Config;
use crate::{Error, Result};

/// Why a store is read-only: what cannot be written, and the system's answer.
#[derive(Debug)]
pub(crate) struct ReadOnlyState {
    /// The path that cannot be written (the database, its directory, or the store's
    /// directory when opened read-only on request).
    path: PathBuf,
    reason: String,
    /// Set when opened immutable (see the module docs).
    watch: Option<Watch>,
}

#[derive(Debug)]
struct Watch {
    db: PathBuf,
    wal: PathBuf,
    stamp: Option<Stamp>,
    immutable: AtomicBool,
    /// Bumped when connections must reopen (pooled ones carry the generation they were
    /// opened in).
    generation: AtomicU64,
}

/// What identifies a version of the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        #[cfg(unix)]
        ino: std::os::unix::fs::MetadataExt::ino(&m),
    })
}

/// Whether this process may write `path` (the real answer of the system, as `access`
/// gives it: permissions for this user, a read-only mount). `Some(cause)` when not.
#[cfg(unix)]
fn not_writable(path: &Path) -> Option<std::io::Error> {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK)
        .err()
        .map(std::io::Error::from)
}

#[cfg(not(unix))]
fn not_writable(path: &Path) -> Option<std::io::Error> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => {
            Some(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        }
        _ => None,
    }
}

fn cause(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::EROFS) => "it is on a read-only file system".into(),
        #[cfg(unix)]
        Some(libc::EACCES) | Some(libc::EPERM) => "this user has no write permission on it".into(),
        _ => e.to_string(),
    }
}

impl ReadOnlyState {
    /// Whether the existing store at `dir` must open read-only, and why.
    pub(crate) fn detect(dir: &Path, db: &Path, config: &Config) -> Option<Self> {
        let state = |path: &Path, reason: String| ReadOnlyState {
            path: path.to_owned(),
            reason,
            watch: None,
        };
        if config.read_only {
            return Some(state(dir, "it was opened read-only".into()));
        }
        if let Some(e) = not_writable(db) {
            return Some(state(db, cause(&e)));
        }
        // SQLite makes its WAL and index files beside the database, and values are
        // written into `data/`.
        for p in [dir.to_owned(), dir.join("data")] {
            if p.exists()
                && let Some(e) = not_writable(&p)
            {
                return Some(state(&p, cause(&e)));
            }
        }
        None
    }

    /// Why the store is read-only.
    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }

    /// The error every write gets.
    pub(crate) fn error(&self) -> Error {
        Error::ReadOnly {
            path: self.path.clone(),
            reason: format!(
                "{}; the store is open read-only, writes are refused",
                self.reason
            ),
        }
    }

    /// Opens a read-only connection, falling back to immutable when SQLite cannot make
    /// the WAL index of a store at rest (then every later connection is immutable too,
    /// until a writer shows up).
    pub(crate) fn open_first(&mut self, db: &Path, config: &Config) -> Result<Connection> {
        let wal = wal_path(db);
        match connection::open(db, config, Access::ReadOnly).and_then(|c| probe(c, db, config)) {
            Ok(c) => Ok(c),
            Err(e @ (Error::ReadOnly { .. } | Error::Engine { .. })) if !wal.exists() => {
                let stamp = stamp(db);
                let c = connection::open(db, config, Access::Immutable)
                    .and_then(|c| probe(c, db, config))
                    .map_err(|_| e)?;
                tracing::debug!(db = %db.display(), "read-only store at rest: opened immutable");
                self.watch = Some(Watch {
                    db: db.to_owned(),
                    wal,
                    stamp,
                    immutable: AtomicBool::new(true),
                    generation: AtomicU64::new(0),
                });
                Ok(c)
            }
            Err(e) => Err(e),
        }
    }

    /// How the next connection opens.
    pub(crate) fn access(&self) -> Access {
        match &self.watch {
            Some(w) if w.immutable.load(Ordering::Acquire) => Access::Immutable,
            _ => Access::ReadOnly,
        }
    }

    /// Before a read: the generation pooled connections must have. Notices a writer
    /// (a WAL, a changed database file) and moves every connection off immutable.
    #[inline]
    pub(crate) fn before_read(&self) -> u64 {
        let Some(w) = &self.watch else { return 0 };
        if w.immutable.load(Ordering::Acquire) && w.changed() {
            w.immutable.store(false, Ordering::Release);
            w.generation.fetch_add(1, Ordering::AcqRel);
            tracing::debug!(db = %w.db.display(), "a writer opened the read-only store: reading with locks");
        }
        w.generation.load(Ordering::Acquire)
    }

    /// After a read on a connection of generation `generation`: an error if it was
    /// immutable and the database changed meanwhile.
    #[inline]
    pub(crate) fn after_read(&self, generation: u64) -> Result<()> {
        let Some(w) = &self.watch else { return Ok(()) };
        if generation == 0 && w.changed() {
            return Err(Error::StoreChanged { path: w.db.clone() });
        }
        Ok(())
    }
}

impl Watch {
    fn changed(&self) -> bool {
        self.wal.exists() || stamp(&self.db) != self.stamp
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// A first read, which is where SQLite finds out whether it can read the WAL index.
fn probe(conn: Connection, db: &Path, config: &Config) -> Result<Connection> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| super::errors::sql_error(db, config.busy_timeout, e))?;
    Ok(conn)
}
