//! The writer connection: routing a write (joining this thread's transaction, or in its
//! own), the transaction state machine (levels, savepoints, a transaction SQLite rolled
//! back), and what happens when the outermost level ends (files unlinked, locks
//! released, an oversized WAL restarted).

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use parking_lot::ReentrantMutexGuard;
use rusqlite::Connection;

use super::errors::is_storage_full;
use super::{Shared, connection, schema, thread_token};
use crate::engine::EngineTx;
use crate::platform::PLATFORM;
use crate::{Error, Result};

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// Transaction nesting depth (0: autocommit).
    pub(crate) depth: u32,
    /// Value files installed by the open transaction, with the depth that made them.
    pub(crate) new_files: Vec<(u32, String)>,
    /// A trigger queued files in `discarded` since the last drain.
    pub(crate) discard_pending: bool,
    /// SQLite rolled the open transaction back after an error (disk full, I/O): every
    /// further operation in it fails until the outermost level ends.
    pub(crate) aborted: bool,
    /// Locks (name, owner) released inside the open transaction: deleted once it ends,
    /// committed or not (a rollback must not bring a released lock back).
    pub(crate) unlocks: Vec<(String, String)>,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Self {
        Writer {
            conn,
            depth: 0,
            new_files: Vec::new(),
            discard_pending: false,
            aborted: false,
            unlocks: Vec::new(),
        }
    }

    /// After a failed statement inside a transaction: if SQLite dropped the whole
    /// transaction, remember it so the rest of it is refused rather than autocommitted.
    fn note_abort<T>(&mut self, out: &Result<T>) {
        if out.is_err() && self.depth > 0 && self.conn.is_autocommit() {
            self.aborted = true;
        }
    }

    pub(crate) fn note_discards(&mut self, total_before: u64, changes: u64) {
        // Each entry row changed by a statement fires at most one totals update; any
        // change beyond that is a row queued in `discarded`.
        if self.conn.total_changes() - total_before > 2 * changes {
            self.discard_pending = true;
        }
    }
}

type WriterGuard<'a> = ReentrantMutexGuard<'a, RefCell<Writer>>;

impl Shared {
    /// Takes the writer, waiting at most the busy timeout for another thread's
    /// transaction to end.
    pub(crate) fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        if let Some(g) = self.writer.try_lock() {
            return Ok(g);
        }
        if !PLATFORM.threads {
            return Ok(self.writer.lock());
        }
        self.writer
            .try_lock_for(self.config.busy_timeout)
            .ok_or_else(|| Error::Busy {
                path: self.db_path.clone(),
                timeout: self.config.busy_timeout,
            })
    }

    /// Refuses writes to a read-only store ([`Error::ReadOnly`], naming what is not
    /// writable).
    #[inline]
    pub(crate) fn writable(&self) -> Result<()> {
        match &self.read_only {
            Some(ro) => Err(ro.error()),
            None => Ok(()),
        }
    }

    /// Runs a write. Inside this thread's transaction it joins it; otherwise it runs in
    /// its own transaction (`immediate`: BEGIN IMMEDIATE … COMMIT, for multi-statement
    /// writes) or in autocommit mode (single-statement writes).
    pub(crate) fn write<T>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        let out = self.write_once(immediate, f);
        if let Err(e) = &out
            && is_storage_full(e)
        {
            self.note_disk_full();
        }
        out
    }

    /// A write that frees space or needs almost none (delete, clear, incr, touch,
    /// evictions): on a full disk it releases the store's reserve file and tries again,
    /// so that space can always be freed (outside a transaction: inside one, SQLite may
    /// have rolled it back, and the caller must retry the whole transaction).
    pub(crate) fn write_freeing<T>(
        &self,
        immediate: bool,
        f: impl Fn(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        match self.write(immediate, &f) {
            Err(e) if is_storage_full(&e) && !self.in_tx_here() && self.files.release_reserve() => {
                tracing::warn!(dir = %self.dir.display(), "disk full: released the store's reserve to free space");
                self.write(immediate, &f)
            }
            r => r,
        }
    }

    fn write_once<T>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        self.writable()?;
        let guard = self.lock_writer()?;
        let mut w = guard.borrow_mut();
        if w.depth > 0 {
            if w.aborted {
                return Err(Error::TransactionAborted);
            }
            let out = f(&mut w);
            w.note_abort(&out);
            return out;
        }
        if immediate {
            drop(w);
            let tx = SqliteTx::begin(self, guard)?;
            let out = {
                let mut w = tx.guard.borrow_mut();
                let out = f(&mut w);
                w.note_abort(&out);
                out
            };
            let out = out?;
            tx.commit_now()?;
            Ok(out)
        } else {
            let out = f(&mut w)?;
            if w.discard_pending {
                drop(w);
                SqliteTx::begin(self, guard)?.commit_now()?;
            } else {
                self.note_commit();
                self.restart_wal_inline(&w);
            }
            Ok(out)
        }
    }

    /// Runs one mutating statement and notes whether triggers queued discarded files.
    pub(crate) fn exec(
        &self,
        w: &mut Writer,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<usize> {
        let before = w.conn.total_changes();
        let n = w
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(|e| self.sql_err(e))?;
        w.note_discards(before, n as u64);
        Ok(n)
    }

    /// Counts a commit.
    fn note_commit(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.pin.release();
        self.signal.nudge();
    }

    /// Deletes the locks released inside the transaction that just ended (the writer is
    /// back in autocommit mode).
    fn release_locks(&self, w: &mut Writer) {
        for (name, owner) in std::mem::take(&mut w.unlocks) {
            if let Err(e) = self.exec(w, schema::UNLOCK, (&name, &owner)) {
                tracing::warn!(lock = %name, error = %e, "releasing lock failed; it will expire");
            }
        }
    }

    /// With no maintenance thread, restarts an oversized WAL on the writer (see
    /// `connection`); called with the writer held, outside any transaction.
    fn restart_wal_inline(&self, w: &Writer) {
        if !self.threaded.load(Ordering::Relaxed)
            && self.signal.take_wal_full()
            && let Err(e) = connection::restart_wal(&w.conn, &self.pin, self.config.busy_timeout)
        {
            tracing::debug!(error = %e, "restarting the WAL failed; retried at the next commit");
            self.signal.set_wal_full();
        }
    }

    /// Begins a transaction level on the writer.
    pub(crate) fn begin(&self) -> Result<SqliteTx<'_>> {
        self.writable()?;
        let guard = self.lock_writer()?;
        SqliteTx::begin(self, guard)
    }
}

/// An open transaction level; rolled back when dropped without `commit`.
pub(crate) struct SqliteTx<'a> {
    shared: &'a Shared,
    guard: WriterGuard<'a>,
    done: bool,
}

impl<'a> SqliteTx<'a> {
    fn begin(shared: &'a Shared, guard: WriterGuard<'a>) -> Result<Self> {
        {
            let mut w = guard.borrow_mut();
            if w.aborted {
                return Err(Error::TransactionAborted);
            }
            let sql = if w.depth == 0 {
                "BEGIN IMMEDIATE".to_owned()
            } else {
                format!("SAVEPOINT sp{}", w.depth)
            };
            w.conn.execute_batch(&sql).map_err(|e| shared.sql_err(e))?;
            w.depth += 1;
            if w.depth == 1 {
                shared.tx_owner.store(thread_token(), Ordering::Release);
            }
        }
        Ok(SqliteTx {
            shared,
            guard,
            done: false,
        })
    }

    fn rollback_level(&mut self) {
        let shared = self.shared;
        let mut w = self.guard.borrow_mut();
        let depth = w.depth;
        let sql = if depth == 1 {
            "ROLLBACK".to_owned()
        } else {
            format!("ROLLBACK TO sp{0}; RELEASE sp{0}", depth - 1)
        };
        if !w.aborted
            && !w.conn.is_autocommit()
            && let Err(e) = w.conn.execute_batch(&sql)
        {
            tracing::error!(error = %e, "rollback failed");
        }
        // Files installed at this level or deeper are no longer referenced.
        while let Some((d, _)) = w.new_files.last()
            && *d >= depth
        {
            if let Some((_, rel)) = w.new_files.pop() {
                shared.files.remove(&rel);
            }
        }
        w.depth = depth - 1;
        if w.depth == 0 {
            w.discard_pending = false;
            w.aborted = false;
            shared.tx_owner.store(0, Ordering::Release);
            shared.release_locks(&mut w);
        }
    }

    fn commit_level(&mut self) -> Result<()> {
        let shared = self.shared;
        let mut w = self.guard.borrow_mut();
        if w.aborted {
            return Err(Error::TransactionAborted);
        }
        if w.depth > 1 {
            let d = w.depth - 1;
            w.conn
                .execute_batch(&format!("RELEASE sp{d}"))
                .map_err(|e| shared.sql_err(e))?;
            for f in &mut w.new_files {
                if f.0 > d {
                    f.0 = d;
                }
            }
            w.depth = d;
            return Ok(());
        }
        let mut unlink = Vec::new();
        if w.discard_pending {
            let mut st = w
                .conn
                .prepare_cached(schema::DRAIN_DISCARDED)
                .map_err(|e| shared.sql_err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| shared.sql_err(e))?;
            for r in rows {
                unlink.push(r.map_err(|e| shared.sql_err(e))?);
            }
        }
        w.conn
            .execute_batch("COMMIT")
            .map_err(|e| shared.sql_err(e))?;
        shared.note_commit();
        w.depth = 0;
        w.discard_pending = false;
        w.new_files.clear();
        shared.tx_owner.store(0, Ordering::Release);
        shared.release_locks(&mut w);
        shared.restart_wal_inline(&w);
        drop(w);
        for rel in unlink {
            shared.files.remove(&rel);
        }
        Ok(())
    }
}

impl SqliteTx<'_> {
    /// Commits this level; on error, `Drop` rolls it back.
    pub(crate) fn commit_now(mut self) -> Result<()> {
        self.commit_level()?;
        self.done = true;
        Ok(())
    }
}

impl EngineTx for SqliteTx<'_> {
    fn commit(self: Box<Self>) -> Result<()> {
        (*self).commit_now()
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback_level();
        }
    }
}
