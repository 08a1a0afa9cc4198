//! The read pin: while this process reads and writes have paused, one extra connection
//! of this process holds a read transaction open, so that every read here skips two
//! system calls.
//!
//! Why it works: a read transaction takes a shared lock on a read mark: mark 0 when the
//! WAL is fully copied into the database (it reads the database file only), else the
//! mark of the last commit. SQLite's unix VFS counts the shared locks of one process
//! and calls `fcntl` only for the first taker and the last releaser. With the pin
//! holding the mark the readers take, their lock and unlock are counter updates:
//! about two thirds of a cached `get` on this project's test machine.
//!
//! Why it is harmless: a reader on the mark of the last commit pins no frame a
//! checkpoint could copy, and stops no writer; on mark 0 it reads no frame at all. It
//! does stop the WAL from restarting (mark k > 0) and a checkpoint from copying new
//! frames (mark 0), which only matters once someone writes again. So the pin is taken
//! only while this process is reading and writes have paused for a moment; it is
//! released by this process's next commit (`Shared::note_commit`), and within
//! `PIN_POLL` of another process's commit by the maintenance thread, which watches
//! `PRAGMA data_version`, checkpoints once writes pause for `QUIET`, and takes the pin
//! again (on mark 0). Another process's passive checkpoint (SQLite's automatic one) is
//! skipped meanwhile and retried at its next commit; its explicit `FULL`, `RESTART` or
//! `TRUNCATE` checkpoint waits until this process stops reading.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rusqlite::Connection;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct ReadPin {
    conn: Mutex<Option<Connection>>,
    /// A read transaction is (or is being) held open on `conn`.
    held: AtomicBool,
}

impl ReadPin {
    /// Whether the pin is held (or being taken).
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Takes the pin (on a connection made by `open` the first time). The caller has
    /// just seen writes pause. `still_quiet` is asked once the pin is taken: if a
    /// commit came in between, the pin may sit on a snapshot older than that commit's,
    /// and is released at once.
    pub(crate) fn take(
        &self,
        open: impl FnOnce() -> crate::Result<Connection>,
        still_quiet: impl FnOnce() -> bool,
        sql_err: impl FnOnce(rusqlite::Error) -> crate::Error,
    ) -> crate::Result<()> {
        {
            let mut slot = self.conn.lock();
            if slot.is_none() {
                *slot = Some(open()?);
            }
            let Some(conn) = slot.as_ref() else {
                return Ok(());
            };
            // Set before the transaction starts, under the lock: a commit from now on
            // either sees it and releases the pin (waiting for this lock), or is seen
            // by `still_quiet`.
            self.held.store(true, Ordering::SeqCst);
            let begun = conn.execute_batch("BEGIN").and_then(|()| {
                conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
            });
            if let Err(e) = begun {
                self.held.store(false, Ordering::SeqCst);
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(sql_err(e));
            }
        }
        if !still_quiet() {
            self.release();
        }
        Ok(())
    }

    /// Ends the pin's read transaction, if it holds one (one atomic load when not: it
    /// runs after every commit).
    pub(crate) fn release(&self) {
        if self.held.load(Ordering::SeqCst) && self.held.swap(false, Ordering::SeqCst) {
            let slot = self.conn.lock();
            if let Some(conn) = slot.as_ref()
                && !conn.is_autocommit()
            {
                let _ = conn.execute_batch("COMMIT");
            }
        }
    }
}
