//! The reader connections: in WAL mode readers never wait for the writer nor for each
//! other. A read inside this thread's transaction runs on the writer (to see the
//! transaction's own writes).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::Connection;

use super::{Shared, connection, thread_token};
use crate::platform::PLATFORM;
use crate::{Error, Result};

impl Shared {
    pub(crate) fn open_reader(&self) -> Result<Connection> {
        self.open_reader_waiting(self.config.busy_timeout)
    }

    /// A reader connection whose busy handler gives up after `timeout`.
    pub(crate) fn open_reader_waiting(&self, timeout: Duration) -> Result<Connection> {
        let access = match &self.read_only {
            Some(ro) => ro.access(),
            None => connection::Access::Write { create: false },
        };
        let mut conn = connection::open(&self.db_path, &self.config, access)?;
        connection::configure(&mut conn, timeout, self.notice(), None)
            .map_err(|e| self.sql_err(e))?;
        Ok(conn)
    }

    /// Runs `f` on a connection that sees this thread's view: the writer inside this
    /// thread's transaction, otherwise a pooled reader.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if !PLATFORM.wal || self.tx_owner.load(Ordering::Acquire) == thread_token() {
            let guard = self.lock_writer()?;
            let w = guard.borrow();
            if w.aborted {
                return Err(Error::TransactionAborted);
            }
            return f(&w.conn);
        }
        if !self.reading.load(Ordering::Relaxed) {
            // First read since the maintenance thread last looked: let it pin reads.
            self.reading.store(true, Ordering::Relaxed);
            self.signal.nudge();
        }
        let generation = match &self.read_only {
            Some(ro) => ro.before_read(),
            None => 0,
        };
        let n = self.readers.len();
        let start = (thread_token() as usize) % n;
        for i in 0..n {
            if let Some(mut slot) = self.readers[(start + i) % n].try_lock() {
                if slot.as_ref().is_none_or(|(_, g)| *g != generation) {
                    *slot = None;
                    *slot = Some((self.open_reader()?, generation));
                }
                if let Some((conn, _)) = slot.as_ref() {
                    let out = f(conn);
                    return self.checked_read(generation, out);
                }
            }
        }
        // Every pooled connection is busy (or re-entered): use a fresh one.
        let out = f(&self.open_reader()?);
        self.checked_read(generation, out)
    }

    /// Runs `f` inside one read transaction (one snapshot for all its statements).
    pub(crate) fn read_snapshot<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.read(|c| {
            c.execute_batch("BEGIN").map_err(|e| self.sql_err(e))?;
            let out = f(c);
            let _ = c.execute_batch("COMMIT");
            out
        })
    }

    /// A read's result, refused if a read-only store at rest changed under it.
    #[inline]
    fn checked_read<T>(&self, generation: u64, out: Result<T>) -> Result<T> {
        match &self.read_only {
            Some(ro) => ro.after_read(generation).and(out),
            None => out,
        }
    }

    /// Takes the read pin (see `pin`), released at once if a commit came since
    /// `commits`.
    pub(crate) fn pin_reads(&self, commits: u64) -> Result<()> {
        self.pin.take(
            || self.open_reader(),
            || self.commits() == commits,
            |e| self.sql_err(e),
        )
    }

    /// Whether pooled reads ran since the last call.
    pub(crate) fn take_read_activity(&self) -> bool {
        self.reading.swap(false, Ordering::Relaxed)
    }
}
