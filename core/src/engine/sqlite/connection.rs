//! Connections: opening them, their pragmas and busy wait, and keeping the WAL short
//! (the writer's WAL hook, blocking restarts, truncation once writes pause).
//!
//! Why the WAL needs watching: a reader looks up every page it needs in the WAL index
//! first, and the hash chains of hot pages (the totals, the rightmost leaf) grow with
//! every frame until the WAL restarts, which only happens once a checkpoint has caught up
//! with it. A passive checkpoint never catches up while other processes keep appending
//! (each copies what it can, and the WAL grew to gigabytes with four writer processes),
//! so past a bound the WAL is restarted by a blocking checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

use super::errors::{is_busy, sql_error};
use super::maintenance::Signal;
use super::pin::ReadPin;
use crate::options::{Config, WaitNotice};
use crate::platform::PLATFORM;
use crate::{Error, Result};

/// The writer checkpoints (passively, as SQLite's `wal_autocheckpoint` would) in each
/// commit that leaves the WAL with at least this many frames (4 MiB of 4 KiB pages).
const CHECKPOINT_FRAMES: i32 = 1000;
/// Past this many frames (8 MiB) the maintenance thread restarts the WAL with a blocking
/// checkpoint (`RESTART`: it holds new writers back for the moment it takes to copy the
/// WAL and wait for the readers), or the writer does when there is no thread.
const WAL_RESTART_FRAMES: i32 = 2000;
/// Past this many frames (12 MiB) the writer restarts the WAL itself, in the commit that
/// found it so long, waiting up to `WAL_STOP_WAIT`: the hard bound, whatever the
/// maintenance thread manages.
const WAL_STOP_FRAMES: i32 = 3000;
const WAL_STOP_WAIT: Duration = Duration::from_secs(2);
/// When the WAL restarts, its file is truncated to this size (`journal_size_limit`), so
/// a burst that grew it does not keep the disk space.
const WAL_KEEP_BYTES: u64 = 4 << 20;

/// How a connection opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and write (`create`: the database file may be made).
    Write { create: bool },
    /// Read only, with SQLite's locks and the WAL index (another process may write).
    ReadOnly,
    /// Read only, trusting that nothing changes the database while it is open: no
    /// locks, no WAL or shared-memory file (a read-only store at rest, whose WAL index
    /// cannot be made; see `ReadOnlyState`).
    Immutable,
}

/// Opens a connection through the configured VFS.
pub(crate) fn open(path: &Path, config: &Config, access: Access) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match access {
        Access::Write { create } => {
            flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
            if create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
        }
        Access::ReadOnly => flags |= OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::Immutable => {
            flags |= OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        }
    }
    let uri;
    let target: &Path = if access == Access::Immutable {
        let p = path.to_str().ok_or_else(|| Error::ReadOnly {
            path: path.to_owned(),
            reason: "the path is not UTF-8, and a read-only store at rest is opened by URI".into(),
        })?;
        uri = format!("file:{}?immutable=1", super::uri_escape(p));
        Path::new(&uri)
    } else {
        path
    };
    match &config.vfs {
        None => Connection::open_with_flags(target, flags),
        Some(vfs) => Connection::open_with_flags_and_vfs(target, flags, vfs.as_str()),
    }
    .map_err(|e| sql_error(path, config.busy_timeout, e))
}

/// Waits for other processes' locks with short sleeps (SQLite's default handler sleeps
/// up to 100 ms at a time), for up to `timeout` from the first attempt.
pub(crate) struct BusyWait {
    timeout: Duration,
    since: Option<Instant>,
    /// Told once per wait that lasts `NOTICE_AFTER` (see `Builder::on_wait`).
    notice: Option<(WaitNotice, PathBuf)>,
    noticed: bool,
}

/// How long a wait lasts before the `on_wait` callback hears of it.
const NOTICE_AFTER: Duration = Duration::from_secs(1);

impl BusyWait {
    pub(crate) fn new(timeout: Duration) -> Self {
        BusyWait {
            timeout,
            since: None,
            notice: None,
            noticed: false,
        }
    }

    /// Tells `notice` (about `path`) when a wait lasts a moment.
    pub(crate) fn noticing(mut self, notice: Option<(WaitNotice, PathBuf)>) -> Self {
        self.notice = notice;
        self
    }

    /// Whether to try again after attempt number `attempt` (0 first) found the lock
    /// taken; sleeps before answering yes.
    pub(crate) fn retry(&mut self, attempt: i32) -> bool {
        if !PLATFORM.threads {
            // Nothing else can release the lock, and sleeping is impossible.
            return false;
        }
        let since = match self.since {
            Some(t) if attempt > 0 => t,
            _ => {
                self.noticed = false;
                *self.since.insert(Instant::now())
            }
        };
        let waited = since.elapsed();
        if waited >= self.timeout {
            return false;
        }
        if waited >= NOTICE_AFTER
            && !self.noticed
            && let Some((notice, path)) = &self.notice
        {
            self.noticed = true;
            (notice.0)(path, self.timeout);
        }
        match attempt {
            0..=9 => std::thread::yield_now(),
            10..=99 => std::thread::sleep(Duration::from_micros(50)),
            100..=999 => std::thread::sleep(Duration::from_micros(500)),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
        true
    }
}

/// Sets a connection up: busy handler, pragmas, and for the writer (`writer` given) the
/// WAL hook that checkpoints and raises the alarm when the WAL grows too long.
pub(crate) fn configure(
    conn: &mut Connection,
    busy_timeout: Duration,
    notice: Option<(WaitNotice, PathBuf)>,
    writer: Option<(Arc<Signal>, Arc<ReadPin>)>,
) -> rusqlite::Result<()> {
    let mut wait = BusyWait::new(busy_timeout).noticing(notice);
    conn.busy_handler(Some(move |attempt| wait.retry(attempt)))?;
    conn.set_prepared_statement_cache_capacity(48);
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;
         PRAGMA mmap_size = 268435456;
         PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
    ))?;
    if let Some((signal, pin)) = writer
        && PLATFORM.wal
    {
        // Replaces SQLite's automatic checkpoint (the same passive checkpoint), and
        // notices a WAL that passive checkpoints cannot keep short. The hook runs after
        // the commit, with SQLite's write lock released; it must not fail (the commit
        // would be reported as failed although it happened).
        conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
            if frames >= WAL_STOP_FRAMES {
                // The maintenance thread is not keeping up (or there is none): restart
                // here, before writing on. Writers of other processes wait meanwhile.
                let start = Instant::now();
                loop {
                    pin.release();
                    match wal.checkpoint_v2(CheckpointMode::RESTART) {
                        Err(e) if is_busy(&e) && start.elapsed() < WAL_STOP_WAIT => {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        _ => break,
                    }
                }
            } else if frames >= WAL_RESTART_FRAMES {
                // No more passive checkpoints: they would keep the checkpoint lock busy
                // (every writer of every process runs one per commit) and starve the
                // restart.
                signal.set_wal_full();
            } else if frames >= CHECKPOINT_FRAMES {
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            }
            Ok(())
        }))?;
    }
    Ok(())
}

/// Copies the whole WAL back and waits for readers to leave it, so that the next write
/// starts it over (and truncates it to `WAL_KEEP_BYTES`). Blocks writers meanwhile;
/// gives up after about `wait` (the connection's busy handler bounds the wait for
/// writers and readers; this loop the wait for another checkpointer, for which SQLite
/// calls no busy handler). The read pin is released first (it would stop the restart).
pub(crate) fn restart_wal(
    conn: &Connection,
    pin: &ReadPin,
    wait: Duration,
) -> rusqlite::Result<()> {
    let start = Instant::now();
    loop {
        pin.release();
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::RESTART) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && start.elapsed() < wait => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Copies the WAL back into the database as far as readers allow, waiting for no one;
/// true when all of it was copied (readers then skip it).
pub(crate) fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
        Ok((log, done)) => Ok(log == done),
        Err(e) if is_busy(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copies the WAL back and truncates its file to zero bytes if no reader of any process
/// is on it now; true when done. Never waits (the connection's busy handler is off for
/// the call).
pub(crate) fn try_truncate_wal(conn: &mut Connection) -> rusqlite::Result<bool> {
    without_waiting(
        conn,
        BusyWait::new(super::maintenance::CHECKPOINT_WAIT),
        truncate_wal,
    )
}

/// Runs `f` with the connection's busy handler off (a lock taken elsewhere fails at
/// once), then gives it `restore` as its busy handler.
pub(crate) fn without_waiting<T>(
    conn: &mut Connection,
    mut restore: BusyWait,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.busy_handler(None::<fn(i32) -> bool>)?;
    let r = f(conn);
    conn.busy_handler(Some(move |attempt| restore.retry(attempt)))?;
    r
}

/// Copies the WAL back into the database and truncates it to zero bytes; true when done.
/// Waits at most the connection's busy timeout for readers to leave the WAL; if they do
/// not, copies what it can and answers false.
pub(crate) fn truncate_wal(conn: &Connection) -> rusqlite::Result<bool> {
    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
        Ok((log, done)) => Ok(log == done),
        Err(e) if is_busy(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
