//! The SQLite + files engine.
//!
//! Concurrency design:
//! - one writer connection behind a re-entrant mutex (writes in a process are serialised
//!   anyway by SQLite; the mutex turns waiting into a cheap in-process handoff and lets a
//!   thread's operations inside `transact` join its transaction);
//! - a small pool of reader connections: in WAL mode readers never wait for the writer
//!   nor for each other;
//! - reads do not write: LRU recency is buffered in memory and flushed in batches by the
//!   maintenance thread, which also purges expired entries, evicts down to the size
//!   bound and checkpoints the WAL once writes pause;
//! - while the process reads and writes have paused, the read pin (`pin`) spares every
//!   read its two lock system calls.

mod files;
mod maintenance;
mod pin;
mod schema;

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, ReentrantMutex, ReentrantMutexGuard};
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::clock::micros;
use crate::engine::{Backend, TxGuard};
use crate::options::{CheckReport, Config, EntryInfo, SetOptions, Stats};
use crate::platform::PLATFORM;
use crate::policy::Policy;
use crate::{Error, Result};

use files::{FileTier, TempValue};
use maintenance::{Maintenance, Signal};
use pin::ReadPin;

/// Number of reader connections kept per store.
const READERS: usize = 8;
/// Rows deleted per write transaction by background purges and evictions, so that
/// foreground writers never wait long.
const BATCH: i64 = 256;
/// Recency updates buffered before the maintenance thread is woken to flush them.
const RECENCY_FLUSH_AT: usize = 4096;
/// The writer checkpoints (passively, as SQLite's `wal_autocheckpoint` would) in each
/// commit that leaves the WAL with at least this many frames. A short WAL is what keeps
/// reads fast: a reader looks up every page it needs in the WAL index first, and the
/// hash chains of hot pages (the totals, the rightmost leaf) grow with every frame until
/// the WAL restarts, which only happens once a checkpoint has caught up with it. When
/// writes pause, the maintenance thread copies the rest and truncates the file, so that
/// readers skip the WAL entirely.
const CHECKPOINT_FRAMES: i32 = 1000;
/// A passive checkpoint never catches up while other processes keep appending (each
/// checkpoint copies what it can, the WAL never restarts, and it grew to gigabytes with
/// four writer processes). Past this many frames (8 MiB of 4 KiB pages), the WAL is
/// restarted by a blocking checkpoint (`RESTART`: it holds new writers back for the
/// moment it takes to copy the WAL and wait for the readers), run by the maintenance
/// thread, or inline by the writer when there is none.
const WAL_RESTART_FRAMES: i32 = 2000;
/// Past this many frames (12 MiB) the writer restarts the WAL itself, in the commit
/// that found it so long, waiting up to `WAL_STOP_WAIT`: the hard bound, whatever the
/// maintenance thread manages.
const WAL_STOP_FRAMES: i32 = 3000;
const WAL_STOP_WAIT: Duration = Duration::from_secs(2);
/// When the WAL restarts, its file is truncated to this size (`journal_size_limit`), so
/// a burst that grew it does not keep the disk space.
const WAL_KEEP_BYTES: u64 = 4 << 20;

/// The SQLite + files engine of a store of kind `P`.
pub(crate) struct Engine<P> {
    shared: Arc<Shared>,
    maintenance: Option<Maintenance>,
    /// The process that opened the store: a child made by `fork` must not close the
    /// connections or join the thread it inherited (see `Drop`).
    pid: u32,
    _kind: PhantomData<P>,
}

/// State shared with the maintenance thread.
pub(crate) struct Shared {
    db_path: PathBuf,
    dir: PathBuf,
    config: Config,
    lru: bool,
    expiry: bool,
    stats: bool,
    files: FileTier,
    writer: ReentrantMutex<RefCell<Writer>>,
    /// Token of the thread inside a transaction, 0 when none.
    tx_owner: AtomicU64,
    readers: Box<[Mutex<Option<Connection>>]>,
    /// Buffered LRU recency: key → time of its last read.
    recency: Mutex<HashMap<String, i64>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Wakes the maintenance thread (shared with the writer's WAL hook).
    signal: Arc<Signal>,
    /// A maintenance thread runs (else the writer restarts an oversized WAL itself).
    threaded: AtomicBool,
    /// A write failed because the disk is full: the maintenance thread frees space.
    disk_full: AtomicBool,
    /// Commits made through this instance (the maintenance thread checkpoints once
    /// they stop for a moment).
    commits: AtomicU64,
    /// Held while writes have paused and reads happen: they then skip their lock
    /// system calls.
    pin: Arc<ReadPin>,
    /// A pooled read ran since the maintenance thread last looked.
    reading: AtomicBool,
    /// Bytes of values as last read from the totals plus what this process wrote since;
    /// an over-estimate used to decide when to evict without reading the totals.
    approx_size: AtomicI64,
    /// The bound on bytes of values (0: none); `config.max_size` at open, changed by
    /// `set_max_size`.
    max_size: AtomicU64,
}

struct Writer {
    conn: Connection,
    /// Transaction nesting depth (0: autocommit).
    depth: u32,
    /// Value files installed by the open transaction, with the depth that made them.
    new_files: Vec<(u32, String)>,
    /// A trigger queued files in `discarded` since the last drain.
    discard_pending: bool,
    /// SQLite rolled the open transaction back after an error (disk full, I/O): every
    /// further operation in it fails until the outermost level ends.
    aborted: bool,
    /// Locks (name, owner) released inside the open transaction: deleted once it ends,
    /// committed or not (a rollback must not bring a released lock back).
    unlocks: Vec<(String, String)>,
}

fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TOKEN.with(|t| *t)
}

impl Shared {
    fn sql_err(&self, e: rusqlite::Error) -> Error {
        sql_error(&self.db_path, self.config.busy_timeout, e)
    }

    fn max_size(&self) -> u64 {
        self.max_size.load(Ordering::Relaxed)
    }

    /// Takes the writer, waiting at most the busy timeout for another thread's
    /// transaction to end.
    fn lock_writer(&self) -> Result<ReentrantMutexGuard<'_, RefCell<Writer>>> {
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

    fn now(&self) -> i64 {
        self.config.clock.now_micros()
    }

    fn expiry_of(&self, opts: &SetOptions, now: i64) -> Result<Option<i64>> {
        opts.expire.map(|e| e.at_micros(now)).transpose()
    }

    fn live(&self, expire: Option<i64>, now: i64) -> bool {
        !self.expiry || expire.is_none_or(|e| e > now)
    }

    /// A stored expiry as a wall-clock time.
    fn expiry_time(&self, expire: Option<i64>) -> Option<std::time::SystemTime> {
        expire
            .filter(|_| self.expiry)
            .map(|e| std::time::UNIX_EPOCH + Duration::from_micros(e.max(0) as u64))
    }

    fn open_reader(&self) -> Result<Connection> {
        self.open_reader_waiting(self.config.busy_timeout)
    }

    /// A reader connection whose busy handler gives up after `timeout`.
    pub(crate) fn open_reader_waiting(&self, timeout: Duration) -> Result<Connection> {
        let mut conn = open_connection(&self.db_path, &self.config, false)?;
        configure(&mut conn, timeout, None).map_err(|e| self.sql_err(e))?;
        Ok(conn)
    }

    /// Runs `f` on a connection that sees this thread's view: the writer inside this
    /// thread's transaction, otherwise a pooled reader.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
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
        let n = self.readers.len();
        let start = (thread_token() as usize) % n;
        for i in 0..n {
            if let Some(mut slot) = self.readers[(start + i) % n].try_lock() {
                if slot.is_none() {
                    *slot = Some(self.open_reader()?);
                }
                if let Some(conn) = slot.as_ref() {
                    return f(conn);
                }
            }
        }
        // Every pooled connection is busy (or re-entered): use a fresh one.
        f(&self.open_reader()?)
    }

    /// Runs a write. Inside this thread's transaction it joins it; otherwise it runs in
    /// its own transaction (`immediate`: BEGIN IMMEDIATE … COMMIT, for multi-statement
    /// writes) or in autocommit mode (single-statement writes).
    fn write<T>(&self, immediate: bool, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
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
    fn write_freeing<T>(&self, immediate: bool, f: impl Fn(&mut Writer) -> Result<T>) -> Result<T> {
        match self.write(immediate, &f) {
            Err(e)
                if is_storage_full(&e)
                    && self.tx_owner.load(Ordering::Acquire) != thread_token()
                    && self.files.release_reserve() =>
            {
                tracing::warn!(dir = %self.dir.display(), "disk full: released the store's reserve to free space");
                self.write(immediate, &f)
            }
            r => r,
        }
    }

    /// Remembers that the disk is full and wakes the maintenance thread to free space.
    fn note_disk_full(&self) {
        if !self.disk_full.swap(true, Ordering::SeqCst) {
            self.signal.wake();
        }
    }

    /// Takes the disk-full flag.
    pub(crate) fn take_disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed) && self.disk_full.swap(false, Ordering::SeqCst)
    }

    /// After a write failed on a full disk: a cache evicts least-recently-used entries
    /// (a tenth of its bytes, at least 64 KiB) whatever its bound, since nothing can be
    /// written anyway; then the WAL is copied back and truncated. An index keeps
    /// everything. The maintenance thread does this at most once a second, so a disk
    /// filled by others costs the cache a tenth of its entries per second at most.
    pub(crate) fn free_space(&self, conn: &Connection) -> Result<u64> {
        let mut evicted = 0;
        if self.lru {
            let size = self.read(|c| self.totals(c))?.1;
            let target = size.saturating_sub((size / 10).max(64 << 10));
            evicted = self.evict_down_to(target)?;
            if evicted > 0 {
                tracing::warn!(dir = %self.dir.display(), evicted, "disk full: evicted least-recently-used entries");
            }
        }
        self.checkpoint(conn)?;
        Ok(evicted)
    }

    fn write_once<T>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
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
            tx.commit()?;
            Ok(out)
        } else {
            let out = f(&mut w)?;
            if w.discard_pending {
                drop(w);
                let tx = SqliteTx::begin(self, guard)?;
                tx.commit()?;
            } else {
                self.note_commit();
                self.restart_wal_inline(&w);
            }
            Ok(out)
        }
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
            if let Err(e) = self.exec(w, schema::UNLOCK, params![name, owner]) {
                tracing::warn!(lock = %name, error = %e, "releasing lock failed; it will expire");
            }
        }
    }

    /// With no maintenance thread, restarts an oversized WAL on the writer (see
    /// `WAL_RESTART_FRAMES`); called with the writer held, outside any transaction.
    fn restart_wal_inline(&self, w: &Writer) {
        if !self.threaded.load(Ordering::Relaxed)
            && self.signal.take_wal_full()
            && let Err(e) = self.restart_wal(&w.conn, self.config.busy_timeout)
        {
            tracing::debug!(error = %e, "restarting the WAL failed; retried at the next commit");
            self.signal.set_wal_full();
        }
    }

    /// Copies the whole WAL back and waits for readers to leave it, so that the next
    /// write starts it over (and truncates it to `WAL_KEEP_BYTES`). Blocks writers
    /// meanwhile; gives up after about `wait` (the connection's busy handler bounds the
    /// wait for writers and readers; this loop the wait for another checkpointer, for
    /// which SQLite calls no busy handler).
    pub(crate) fn restart_wal(&self, conn: &Connection, wait: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            // A pin on a read mark would stop the restart: release it (it is taken
            // again once writes pause).
            self.pin.release();
            match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::RESTART) {
                Ok(_) => return Ok(()),
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == ErrorCode::DatabaseBusy && start.elapsed() < wait =>
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => return Err(self.sql_err(e)),
            }
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

    /// Commits made through this instance so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs one mutating statement and notes whether triggers queued discarded files.
    fn exec(&self, w: &mut Writer, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        let before = w.conn.total_changes();
        let n = w
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(|e| self.sql_err(e))?;
        w.note_discards(before, n as u64);
        Ok(n)
    }

    fn totals(&self, conn: &Connection) -> Result<(u64, u64, u64)> {
        conn.prepare_cached(schema::TOTALS)
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        r.get::<_, i64>(1)?.max(0) as u64,
                        r.get::<_, i64>(2)?.max(0) as u64,
                    ))
                })
            })
            .map_err(|e| self.sql_err(e))
    }

    /// Deletes rows selected by `sql` (which takes `?1` = now and `?2` = batch size and
    /// deletes at most a batch) until none is left; each batch its own transaction.
    fn delete_batches(&self, sql: &str, now: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.write_freeing(true, |w| self.exec(w, sql, params![now, BATCH]))?;
            total += n as u64;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    fn note_use(&self, key: &str, now: i64) {
        if self.lru && self.max_size() > 0 {
            let mut buf = self.recency.lock();
            match buf.get_mut(key) {
                Some(t) => *t = now,
                None => {
                    buf.insert(key.to_owned(), now);
                }
            }
            if buf.len() == RECENCY_FLUSH_AT {
                drop(buf);
                self.wake_maintenance();
            }
        }
    }

    fn note_hit(&self, hit: bool) {
        if self.stats {
            let c = if hit { &self.hits } else { &self.misses };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wake_maintenance(&self) {
        self.signal.wake();
    }

    /// Writes the buffered recency updates.
    pub(crate) fn flush_recency(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.recency.lock());
        if batch.is_empty() {
            return Ok(());
        }
        let mut batch: Vec<(String, i64)> = batch.into_iter().collect();
        // Key order: neighbouring updates touch neighbouring pages.
        batch.sort_unstable();
        for chunk in batch.chunks(BATCH as usize * 4) {
            self.write(true, |w| {
                let mut st = w
                    .conn
                    .prepare_cached(schema::TOUCH_USE)
                    .map_err(|e| self.sql_err(e))?;
                for (key, t) in chunk {
                    st.execute(params![key, t]).map_err(|e| self.sql_err(e))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Purges expired entries.
    pub(crate) fn purge_expired(&self) -> Result<u64> {
        if !self.expiry {
            return Ok(0);
        }
        self.delete_batches(schema::PURGE_EXPIRED, self.now())
    }

    /// Evicts least-recently-used entries while the bound is exceeded.
    pub(crate) fn evict(&self) -> Result<u64> {
        let max = self.max_size();
        if !self.lru || max == 0 {
            return Ok(0);
        }
        let size = self.read(|c| self.totals(c))?.1;
        self.approx_size.store(size as i64, Ordering::Relaxed);
        if size <= max {
            return Ok(0);
        }
        self.flush_recency()?;
        self.evict_down_to((max as f64 * self.config.evict_to) as u64)
    }

    /// Evicts least-recently-used entries until the values take at most `target` bytes.
    fn evict_down_to(&self, target: u64) -> Result<u64> {
        let mut evicted = 0;
        loop {
            // One short transaction per batch of victims so writers never wait long.
            let (n, size) = self.write_freeing(true, |w| {
                let mut size = self.totals(&w.conn)?.1;
                let victims: Vec<(String, i64)> = {
                    let mut st = w
                        .conn
                        .prepare_cached(schema::LRU_VICTIMS)
                        .map_err(|e| self.sql_err(e))?;
                    st.query_map([BATCH], |r| Ok((r.get(0)?, r.get(1)?)))
                        .and_then(|rows| rows.collect())
                        .map_err(|e| self.sql_err(e))?
                };
                let mut n = 0u64;
                for (key, bytes) in victims {
                    if size <= target {
                        break;
                    }
                    self.exec(w, schema::DELETE_KEY, [key])?;
                    size = size.saturating_sub(bytes.max(0) as u64);
                    n += 1;
                }
                Ok((n, size))
            })?;
            evicted += n;
            self.approx_size.store(size as i64, Ordering::Relaxed);
            if size <= target || n == 0 {
                return Ok(evicted);
            }
        }
    }

    /// Copies the WAL back into the database and truncates it to zero bytes, once
    /// writes have paused; true when done. Waits at most the connection's (short) busy
    /// timeout for readers of other processes to leave the WAL; if they do not, copies
    /// what it can and answers false (tried again later).
    pub(crate) fn checkpoint(&self, conn: &Connection) -> Result<bool> {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
            Ok((log, done)) => Ok(log == done),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.sql_err(e)),
        }
    }

    /// Deletes value files queued by triggers (e.g. by another program's deletes).
    pub(crate) fn drain_discarded(&self) -> Result<()> {
        self.write(true, |w| {
            w.discard_pending = true;
            Ok(())
        })
    }
}

impl Writer {
    /// After a failed statement inside a transaction: if SQLite dropped the whole
    /// transaction, remember it so the rest of it is refused rather than autocommitted.
    fn note_abort<T>(&mut self, out: &Result<T>) {
        if out.is_err() && self.depth > 0 && self.conn.is_autocommit() {
            self.aborted = true;
        }
    }

    fn note_discards(&mut self, total_before: u64, changes: u64) {
        // Each entry row changed by a statement fires at most one totals update; any
        // change beyond that is a row queued in `discarded`.
        if self.conn.total_changes() - total_before > 2 * changes {
            self.discard_pending = true;
        }
    }
}

/// An open transaction level; rolled back when dropped without `commit`.
pub(crate) struct SqliteTx<'a> {
    shared: &'a Shared,
    guard: ReentrantMutexGuard<'a, RefCell<Writer>>,
    done: bool,
}

impl<'a> SqliteTx<'a> {
    fn begin(shared: &'a Shared, guard: ReentrantMutexGuard<'a, RefCell<Writer>>) -> Result<Self> {
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
}

impl TxGuard for SqliteTx<'_> {
    fn commit(mut self) -> Result<()> {
        let shared = self.shared;
        let result = (|| {
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
        })();
        match result {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            // Drop rolls back this level.
            Err(e) => Err(e),
        }
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback_level();
        }
    }
}

/// Whether `e` says the disk (or a quota, or a file size limit) is full.
fn is_storage_full(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull
        || source.kind() == std::io::ErrorKind::QuotaExceeded
        || source.kind() == std::io::ErrorKind::FileTooLarge)
}

/// Maps SQLite errors to typed errors.
fn sql_error(path: &Path, busy_timeout: Duration, e: rusqlite::Error) -> Error {
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
                    path: path.parent().unwrap_or(path).to_owned(),
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
    Error::Sqlite {
        path: path.to_owned(),
        source: e,
    }
}

/// Opens a connection (the writer may create the database), through the configured VFS.
fn open_connection(path: &Path, config: &Config, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    match &config.vfs {
        None => Connection::open_with_flags(path, flags),
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs.as_str()),
    }
    .map_err(|e| sql_error(path, config.busy_timeout, e))
}

/// Waits for other processes' locks with short sleeps (SQLite's default handler sleeps
/// up to 100 ms at a time), for up to `timeout` from the first attempt.
struct BusyWait {
    timeout: Duration,
    since: Option<Instant>,
}

impl BusyWait {
    fn new(timeout: Duration) -> Self {
        BusyWait {
            timeout,
            since: None,
        }
    }

    /// Whether to try again after attempt number `attempt` (0 first) found the lock
    /// taken; sleeps before answering yes.
    fn retry(&mut self, attempt: i32) -> bool {
        if !PLATFORM.threads {
            // Nothing else can release the lock, and sleeping is impossible.
            return false;
        }
        let since = match self.since {
            Some(t) if attempt > 0 => t,
            _ => *self.since.insert(Instant::now()),
        };
        if since.elapsed() >= self.timeout {
            return false;
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

/// Sets a connection up: busy handler, pragmas, and for the writer (`signal` given) the
/// WAL hook that checkpoints and raises the alarm when the WAL grows too long.
fn configure(
    conn: &mut Connection,
    busy_timeout: Duration,
    writer: Option<(Arc<Signal>, Arc<ReadPin>)>,
) -> rusqlite::Result<()> {
    let mut wait = BusyWait::new(busy_timeout);
    conn.busy_handler(Some(move |attempt| wait.retry(attempt)))?;
    conn.set_prepared_statement_cache_capacity(32);
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
                        Err(rusqlite::Error::SqliteFailure(f, _))
                            if f.code == ErrorCode::DatabaseBusy
                                && start.elapsed() < WAL_STOP_WAIT =>
                        {
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

impl<P: Policy> Engine<P> {
    fn create_or_validate(shared_path: &Path, conn: &Connection, config: &Config) -> Result<()> {
        let err = |e| sql_error(shared_path, config.busy_timeout, e);
        let mode: String = if PLATFORM.wal {
            // Switching a fresh database to WAL takes an exclusive lock without calling
            // the busy handler: when another process switched it first and holds its
            // shared lock, retry on the busy handler's schedule.
            let mut attempt = 0;
            let mut wait = BusyWait::new(config.busy_timeout);
            loop {
                match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == ErrorCode::DatabaseBusy && wait.retry(attempt) =>
                    {
                        attempt += 1;
                    }
                    other => break other.map_err(err)?,
                }
            }
        } else {
            "wal".to_owned()
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::ReadOnly {
                path: shared_path.to_owned(),
                reason: format!("cannot switch the database to WAL mode (mode is {mode})"),
            });
        }
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let result = (|| {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(err)?;
            if tables == 0 {
                conn.execute_batch(schema::CREATE).map_err(err)?;
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('format', ?1), ('kind', ?2)",
                    params![schema::FORMAT, P::NAME],
                )
                .map_err(err)?;
            } else {
                let has_meta: bool = conn
                    .query_row(
                        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(err)?
                    > 0;
                let meta = |k: &str| -> Result<Option<String>> {
                    conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                        .optional()
                        .map_err(err)
                };
                let format = if has_meta { meta("format")? } else { None };
                if format.as_deref() != Some(schema::FORMAT) {
                    return Err(Error::NotACache {
                        path: shared_path.to_owned(),
                        reason: match format {
                            None => "it has tables but no sciqlop-cache metadata".to_owned(),
                            Some(f) => format!("unsupported format {f:?}"),
                        },
                    });
                }
                let kind = meta("kind")?.unwrap_or_default();
                if kind != P::NAME {
                    return Err(Error::WrongKind {
                        path: shared_path.parent().unwrap_or(shared_path).to_owned(),
                        expected: P::NAME,
                        found: kind,
                    });
                }
            }
            if P::LRU && config.max_size > 0 {
                conn.execute_batch(schema::CREATE_LRU_INDEX).map_err(err)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(err),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Reads the live value of `key` and hands it to `f`: borrowed from SQLite's buffer
    /// when it can be, owned when it had to be read (a file) or copied out (on the
    /// writer connection, which stays borrowed during the read while `f` may call back
    /// into the store).
    fn fetch<R>(&self, key: &str, f: impl FnOnce(Bytes<'_>) -> R) -> Result<Option<R>> {
        self.fetch_entry(key, false, |b, _| f(b))
    }

    /// [`fetch`](Self::fetch), also handing over the entry's metadata when `with_info`
    /// (else `f` gets `None`).
    fn fetch_entry<R>(
        &self,
        key: &str,
        with_info: bool,
        f: impl FnOnce(Bytes<'_>, Option<EntryInfo>) -> R,
    ) -> Result<Option<R>> {
        let s = &*self.shared;
        let now = s.now();
        let on_writer = !PLATFORM.wal || s.tx_owner.load(Ordering::Acquire) == thread_token();
        let mut f = Some(f);
        let mut result = None;
        let mut owned: Option<Vec<u8>> = None;
        let mut in_file: Option<(String, i64)> = None;
        let mut info: Option<EntryInfo> = None;
        let hit = s.read(|conn| {
            let sql = if with_info {
                schema::GET_ENTRY
            } else {
                schema::GET
            };
            let mut st = conn.prepare_cached(sql).map_err(|e| s.sql_err(e))?;
            let mut rows = st.query([key]).map_err(|e| s.sql_err(e))?;
            let Some(row) = rows.next().map_err(|e| s.sql_err(e))? else {
                return Ok(false);
            };
            let expire: Option<i64> = row.get(3).map_err(|e| s.sql_err(e))?;
            if !s.live(expire, now) {
                return Ok(false);
            }
            s.note_use(key, now);
            let file = row.get::<_, Option<String>>(1).map_err(|e| s.sql_err(e))?;
            if with_info {
                info = Some(EntryInfo {
                    size: row.get::<_, i64>(2).map_err(|e| s.sql_err(e))?.max(0) as u64,
                    expire: s.expiry_time(expire),
                    tag: row.get(4).map_err(|e| s.sql_err(e))?,
                    in_file: file.is_some(),
                });
            }
            if let Some(file) = file {
                in_file = Some((file, row.get(2).map_err(|e| s.sql_err(e))?));
                return Ok(true);
            }
            let value = row.get_ref(0).map_err(|e| s.sql_err(e))?;
            let bytes = value
                .as_blob_or_null()
                .map_err(|e| s.sql_err(e.into()))?
                .unwrap_or(&[]);
            if on_writer {
                owned = Some(bytes.to_vec());
            } else {
                result = f.take().map(|g| g(Bytes::Borrowed(bytes), info.take()));
            }
            Ok(true)
        })?;
        if let Some(v) = owned {
            result = f.take().map(|g| g(Bytes::Owned(v), info.take()));
        }
        let hit = match in_file {
            Some((file, size)) => match self.read_file_value(key, file, size)? {
                Some(v) => {
                    result = f.take().map(|g| g(Bytes::Owned(v), info.take()));
                    true
                }
                None => false,
            },
            None => hit,
        };
        s.note_hit(hit);
        if self.maintenance.is_none() && s.recency.lock().len() >= RECENCY_FLUSH_AT {
            // No background thread: flush the recency buffer here, once in a while.
            s.flush_recency()?;
        }
        Ok(result)
    }

    fn get_row(&self, conn: &Connection, key: &str) -> Result<Option<Row>> {
        let mut st = conn
            .prepare_cached(schema::GET_ENTRY)
            .map_err(|e| self.shared.sql_err(e))?;
        st.query_row([key], |r| {
            Ok(Row {
                value: r.get(0)?,
                file: r.get(1)?,
                size: r.get(2)?,
                expire: r.get(3)?,
                tag: r.get(4)?,
            })
        })
        .optional()
        .map_err(|e| self.shared.sql_err(e))
    }

    /// Reads a file-backed value, following a concurrent replacement of the row.
    fn read_file_value(
        &self,
        key: &str,
        mut file: String,
        mut size: i64,
    ) -> Result<Option<Vec<u8>>> {
        let s = &*self.shared;
        for _ in 0..8 {
            if let Some(v) = s.files.read(key, &file, size.max(0) as u64)? {
                return Ok(Some(v));
            }
            // The file is gone: either a writer replaced the value since we read the
            // row (look again), or the file was lost (report it).
            let row = s.read(|c| self.get_row(c, key))?;
            match row {
                Some(r) if s.live(r.expire, s.now()) => match r.file {
                    Some(f) if f != file => {
                        file = f;
                        size = r.size;
                    }
                    Some(_) => {
                        return Err(Error::ValueFileMissing {
                            key: key.to_owned(),
                            path: s.files.shown(&file),
                        });
                    }
                    None => return Ok(r.value),
                },
                _ => return Ok(None),
            }
        }
        Err(Error::ValueFileMissing {
            key: key.to_owned(),
            path: s.files.shown(&file),
        })
    }

    fn upsert(&self, w: &mut Writer, m: &Meta<'_>, data: Data<'_>, size: usize) -> Result<()> {
        self.shared
            .exec(w, schema::UPSERT, m.upsert_params(data, size))?;
        Ok(())
    }

    /// Stores a value, inline or in a file, inside the current write.
    fn store_value(
        &self,
        w: &mut Writer,
        m: &Meta<'_>,
        value: &[u8],
        temp: Option<TempValue>,
    ) -> Result<()> {
        let Some(temp) = temp else {
            return self.upsert(w, m, Data::Inline(value), value.len());
        };
        let rel = self.shared.files.install(temp)?;
        match self.upsert(w, m, Data::File(&rel), value.len()) {
            Ok(()) => {
                let depth = w.depth;
                w.new_files.push((depth, rel));
                Ok(())
            }
            Err(e) => {
                self.shared.files.remove(&rel);
                Err(e)
            }
        }
    }

    fn prepare_value(&self, value: &[u8]) -> Result<Option<TempValue>> {
        if value.len() >= self.shared.config.file_threshold {
            let temp = self.shared.files.write_temp(value);
            if let Err(e) = &temp
                && is_storage_full(e)
            {
                self.shared.note_disk_full();
            }
            Ok(Some(temp?))
        } else {
            Ok(None)
        }
    }

    fn after_write(&self, bytes: usize) {
        let s = &*self.shared;
        let max = s.max_size();
        if s.lru && max > 0 {
            let total = s.approx_size.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
            if total as u64 > max {
                if self.maintenance.is_some() {
                    s.wake_maintenance();
                } else if let Err(e) = s.evict() {
                    tracing::warn!(error = %e, "inline eviction failed");
                }
            }
        }
    }

    fn put(
        &self,
        key: &str,
        value: &[u8],
        opts: &SetOptions,
        only_if_absent: bool,
    ) -> Result<bool> {
        let s = &*self.shared;
        let now = s.now();
        let expire = s.expiry_of(opts, now)?;
        // Written before taking the write lock; removed on drop if not installed.
        let temp = self.prepare_value(value)?;
        let immediate = temp.is_some() || only_if_absent;
        let stored = s.write(immediate, |w| {
            if only_if_absent {
                let existing: Option<Option<i64>> = w
                    .conn
                    .prepare_cached(schema::CONTAINS)
                    .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
                    .map_err(|e| s.sql_err(e))?;
                if let Some(exp) = existing
                    && s.live(exp, now)
                {
                    return Ok(false);
                }
            }
            let meta = Meta {
                key,
                expire,
                // Stamped under the write lock: LRU order is commit order, even when a
                // writer spent long writing its value file or waiting for the lock.
                now: s.now(),
                tag: opts.tag.as_deref(),
            };
            self.store_value(w, &meta, value, temp)?;
            Ok(true)
        })?;
        if stored {
            self.after_write(value.len());
        }
        Ok(stored)
    }
}

/// A value as a read found it.
enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Bytes<'_> {
    fn into_vec(self) -> Vec<u8> {
        match self {
            Bytes::Borrowed(b) => b.to_vec(),
            Bytes::Owned(v) => v,
        }
    }
}

/// Everything about a write but the bytes.
struct Meta<'a> {
    key: &'a str,
    expire: Option<i64>,
    now: i64,
    tag: Option<&'a str>,
}

impl<'a> Meta<'a> {
    /// The parameters of `schema::UPSERT` for this entry.
    fn upsert_params(&self, data: Data<'a>, size: usize) -> impl rusqlite::Params + use<'a> {
        let (value, file) = match data {
            Data::Inline(v) => (Some(v), None),
            Data::File(f) => (None, Some(f)),
        };
        (
            self.key,
            value,
            file,
            size as i64,
            self.expire,
            self.now,
            self.tag,
        )
    }
}

/// Where the bytes of a write go.
enum Data<'a> {
    Inline(&'a [u8]),
    File(&'a str),
}

struct Row {
    value: Option<Vec<u8>>,
    file: Option<String>,
    size: i64,
    expire: Option<i64>,
    tag: Option<String>,
}

impl<P: Policy> Backend for Engine<P> {
    type Tx<'a> = SqliteTx<'a>;

    fn open(dir: &Path, mut config: Config) -> Result<Self> {
        if !PLATFORM.files {
            // Every value is a blob in the database.
            config.file_threshold = usize::MAX;
        }
        match std::fs::metadata(dir) {
            _ if !PLATFORM.files => {}
            Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(dir.to_owned())),
            Ok(_) if crate::fanout::looks_like_fanout(dir) => {
                return Err(Error::WrongKind {
                    path: dir.to_owned(),
                    expected: P::NAME,
                    found: "fanout".into(),
                });
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    Error::ReadOnly {
                        path: dir.to_owned(),
                        reason: e.to_string(),
                    }
                }
                _ => Error::io(format!("creating cache directory {}", dir.display()), e),
            })?,
        }
        let db_path = dir.join(schema::DB_FILE);
        let files =
            FileTier::new(dir, config.sync_files, config.verify_values).map_err(|e| match e {
                Error::Io { source, .. }
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
                {
                    Error::ReadOnly {
                        path: dir.to_owned(),
                        reason: source.to_string(),
                    }
                }
                e => e,
            })?;
        let mut conn = open_connection(&db_path, &config, true)?;
        let signal = Arc::new(Signal::default());
        let pin = Arc::new(ReadPin::default());
        configure(
            &mut conn,
            config.busy_timeout,
            Some((signal.clone(), pin.clone())),
        )
        .map_err(|e| sql_error(&db_path, config.busy_timeout, e))?;
        Self::create_or_validate(&db_path, &conn, &config)?;
        let readers = (0..READERS).map(|_| Mutex::new(None)).collect();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            db_path,
            lru: P::LRU,
            expiry: P::EXPIRY,
            stats: P::STATS,
            files,
            writer: ReentrantMutex::new(RefCell::new(Writer {
                conn,
                depth: 0,
                new_files: Vec::new(),
                discard_pending: false,
                aborted: false,
                unlocks: Vec::new(),
            })),
            tx_owner: AtomicU64::new(0),
            readers,
            recency: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            approx_size: AtomicI64::new(0),
            max_size: AtomicU64::new(config.max_size),
            signal,
            threaded: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            pin,
            reading: AtomicBool::new(false),
            config,
        });
        let initial = shared.read(|c| shared.totals(c))?.1;
        shared.approx_size.store(initial as i64, Ordering::Relaxed);
        // Files queued by a crashed process or another program's deletes.
        shared.drain_discarded()?;
        if let Err(e) = shared.files.ensure_reserve() {
            // A full disk: made later by the maintenance thread.
            tracing::debug!(error = %e, "the reserve cannot be made yet");
        }
        // Every kind has the thread (for checkpoints at least) where threads exist.
        let maintenance = if PLATFORM.threads && !shared.config.maintenance_interval.is_zero() {
            shared.threaded.store(true, Ordering::Relaxed);
            Some(Maintenance::start(shared.clone())?)
        } else {
            None
        };
        let engine = Engine {
            shared,
            maintenance,
            pid: std::process::id(),
            _kind: PhantomData,
        };
        let max = engine.shared.max_size();
        if initial > max && max > 0 {
            engine.after_write(0);
        }
        Ok(engine)
    }

    fn path(&self) -> &Path {
        &self.shared.dir
    }

    fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.fetch(key, |b| match b {
            Bytes::Borrowed(b) => f(b),
            Bytes::Owned(v) => f(&v),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        // One copy for inline values, none for file-backed ones.
        self.fetch(key, |b| b.into_vec())
    }

    /// One transaction, one LRU stamp, and one prepared statement per run of inline
    /// values (a statement lookup per row is a tenth of a batched set).
    fn set_many(&self, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        let s = &*self.shared;
        let expire = s.expiry_of(opts, s.now())?;
        // Value files are written before the write lock is taken (and removed on drop
        // if not installed), as in `put`.
        let mut temps = entries
            .iter()
            .map(|(_, v)| self.prepare_value(v))
            .collect::<Result<Vec<_>>>()?;
        let tag = opts.tag.as_deref();
        s.write(true, |w| {
            let stamp = s.now();
            let before = w.conn.total_changes();
            let mut i = 0;
            let meta = |key| Meta {
                key,
                expire,
                now: stamp,
                tag,
            };
            while i < entries.len() {
                let (key, value) = entries[i];
                if let Some(temp) = temps[i].take() {
                    self.store_value(w, &meta(key), value, Some(temp))?;
                    i += 1;
                    continue;
                }
                let mut st = w
                    .conn
                    .prepare_cached(schema::UPSERT)
                    .map_err(|e| s.sql_err(e))?;
                while i < entries.len() && temps[i].is_none() {
                    let (key, value) = entries[i];
                    st.execute(meta(key).upsert_params(Data::Inline(value), value.len()))
                        .map_err(|e| s.sql_err(e))?;
                    i += 1;
                }
            }
            w.note_discards(before, entries.len() as u64);
            Ok(())
        })?;
        self.after_write(entries.iter().map(|(_, v)| v.len()).sum());
        Ok(())
    }

    fn set(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        self.put(key, value, opts, false).map(|_| ())
    }

    fn add(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        self.put(key, value, opts, true)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let s = &*self.shared;
        let now = s.now();
        // Only a live entry counts; an expired one is removed too, by a second statement
        // that cannot touch a value another process just set (no `RETURNING` to tell
        // them apart in one: SQLite builds a temporary table for it on every run).
        s.write_freeing(false, |w| {
            if s.exec(w, schema::DELETE_LIVE, params![key, now])? > 0 {
                return Ok(true);
            }
            if s.expiry {
                s.exec(w, schema::DELETE_EXPIRED, params![key, now])?;
            }
            Ok(false)
        })
    }

    fn pop_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        let s = &*self.shared;
        let now = s.now();
        let out = s.write(true, |w| {
            let Some(row) = self.get_row(&w.conn, key)? else {
                return Ok(None);
            };
            let info = EntryInfo {
                size: row.size.max(0) as u64,
                expire: s.expiry_time(row.expire),
                tag: row.tag.clone(),
                in_file: row.file.is_some(),
            };
            let value = if !s.live(row.expire, now) {
                None
            } else if let Some(file) = &row.file {
                // Read while the write lock is held: nobody can replace it meanwhile.
                match s.files.read(key, file, row.size.max(0) as u64)? {
                    Some(v) => Some(v),
                    None => {
                        return Err(Error::ValueFileMissing {
                            key: key.to_owned(),
                            path: s.files.shown(file),
                        });
                    }
                }
            } else {
                Some(row.value.unwrap_or_default())
            };
            s.exec(w, schema::DELETE_KEY, [key])?;
            Ok(value.map(|v| (v, info)))
        })?;
        s.note_hit(out.is_some());
        Ok(out)
    }

    fn get_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.fetch_entry(key, true, |b, info| {
            let info = info.unwrap_or(EntryInfo {
                size: 0,
                expire: None,
                tag: None,
                in_file: false,
            });
            (b.into_vec(), info)
        })
    }

    fn metadata(&self, name: &str) -> Result<Option<String>> {
        let s = &*self.shared;
        let key = format!("{}{name}", schema::USER_META);
        s.read(|c| {
            c.prepare_cached("SELECT value FROM meta WHERE key = ?1")
                .and_then(|mut st| st.query_row([&key], |r| r.get(0)).optional())
                .map_err(|e| s.sql_err(e))
        })
    }

    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        let s = &*self.shared;
        let key = format!("{}{name}", schema::USER_META);
        s.write(false, |w| {
            match value {
                Some(v) => s.exec(
                    w,
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, v],
                )?,
                None => s.exec(w, "DELETE FROM meta WHERE key = ?1", [&key])?,
            };
            Ok(())
        })
    }

    fn max_size(&self) -> u64 {
        self.shared.max_size()
    }

    fn set_max_size(&self, bytes: u64) -> Result<()> {
        let s = &*self.shared;
        if !s.lru {
            return Ok(());
        }
        if bytes > 0 && s.max_size() == 0 {
            // The index that finds victims exists only in bounded stores.
            s.write(false, |w| {
                s.exec(w, schema::CREATE_LRU_INDEX, []).map(|_| ())
            })?;
        }
        s.max_size.store(bytes, Ordering::Relaxed);
        if bytes > 0 {
            // Writes are only tallied while bounded: start from the true total.
            let size = s.read(|c| s.totals(c))?.1;
            s.approx_size.store(size as i64, Ordering::Relaxed);
            self.after_write(0);
        }
        Ok(())
    }

    fn evict(&self) -> Result<u64> {
        self.shared.evict()
    }

    fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        let s = &*self.shared;
        let now = s.now();
        let at = expire
            .map(|d| crate::options::Expiry::After(d).at_micros(now))
            .transpose()?;
        s.write_freeing(false, |w| {
            Ok(s.exec(w, schema::TOUCH, params![key, at, now])? > 0)
        })
    }

    fn contains(&self, key: &str) -> Result<bool> {
        let s = &*self.shared;
        let now = s.now();
        s.read(|c| {
            let e: Option<Option<i64>> = c
                .prepare_cached(schema::CONTAINS)
                .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
                .map_err(|e| s.sql_err(e))?;
            Ok(matches!(e, Some(e) if s.live(e, now)))
        })
    }

    fn info(&self, key: &str) -> Result<Option<EntryInfo>> {
        let s = &*self.shared;
        let now = s.now();
        let row = s.read(|c| {
            c.prepare_cached(schema::INFO)
                .and_then(|mut st| {
                    st.query_row([key], |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(|e| s.sql_err(e))
        })?;
        Ok(row
            .filter(|r| s.live(r.2, now))
            .map(|(file, size, expire, tag)| EntryInfo {
                size: size.max(0) as u64,
                expire: s.expiry_time(expire),
                tag,
                in_file: file.is_some(),
            }))
    }

    fn len(&self) -> Result<u64> {
        let s = &*self.shared;
        let now = s.now();
        s.read(|c| {
            let count = s.totals(c)?.0;
            if !s.expiry {
                return Ok(count);
            }
            let expired: i64 = c
                .prepare_cached(schema::COUNT_EXPIRED)
                .and_then(|mut st| st.query_row([now], |r| r.get(0)))
                .map_err(|e| s.sql_err(e))?;
            Ok(count.saturating_sub(expired.max(0) as u64))
        })
    }

    fn keys_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let s = &*self.shared;
        let now = s.now();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut cursor: Option<String> = after.map(str::to_owned);
        loop {
            let batch: Vec<(String, Option<i64>)> = s.read(|c| {
                let (sql, from) = match &cursor {
                    Some(k) if k.as_str() >= prefix => (schema::KEYS_AFTER, k.as_str()),
                    _ => (schema::KEYS_FROM, prefix),
                };
                let mut st = c.prepare_cached(sql).map_err(|e| s.sql_err(e))?;
                let rows = st
                    .query_map(params![from, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(|e| s.sql_err(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| s.sql_err(e))
            })?;
            let full = batch.len() == limit;
            for (key, expire) in batch {
                if !key.starts_with(prefix) {
                    return Ok(out);
                }
                if s.live(expire, now) {
                    out.push(key.clone());
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
                cursor = Some(key);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    fn clear(&self) -> Result<u64> {
        let s = &*self.shared;
        let n = match s.write_freeing(true, |w| s.exec(w, "DELETE FROM entries", [])) {
            Err(e) if is_storage_full(&e) && !self.in_transaction() => {
                // Not even the reserve holds a WAL of the whole table: delete in small
                // transactions, copying the WAL back after each so that its space is
                // reused. Not atomic (readers may see a partly cleared store).
                tracing::warn!(dir = %s.dir.display(), "disk full: clearing in batches");
                let mut total = 0;
                loop {
                    let n = s.write_freeing(true, |w| s.exec(w, schema::DELETE_BATCH, [BATCH]))?;
                    total += n;
                    {
                        let guard = s.lock_writer()?;
                        let w = guard.borrow();
                        s.restart_wal(&w.conn, Duration::from_secs(1))?;
                    }
                    if (n as i64) < BATCH {
                        break total;
                    }
                }
            }
            r => r?,
        };
        s.approx_size.store(0, Ordering::Relaxed);
        Ok(n as u64)
    }

    fn expire(&self) -> Result<u64> {
        self.shared.purge_expired()
    }

    fn evict_tag(&self, tag: &str) -> Result<u64> {
        let s = &*self.shared;
        Ok(s.write_freeing(true, |w| {
            s.exec(w, "DELETE FROM entries WHERE tag = ?1", [tag])
        })? as u64)
    }

    fn incr(&self, key: &str, delta: i128, default: i64) -> Result<i64> {
        let s = &*self.shared;
        let now = s.now();
        let overflow = || Error::CounterOverflow {
            key: key.to_owned(),
        };
        s.write_freeing(true, |w| {
            let row = self.get_row(&w.conn, key)?;
            match row {
                Some(r) if s.live(r.expire, now) => {
                    let current = match (&r.file, &r.value) {
                        (None, Some(v)) => crate::counter::decode(v),
                        (None, None) => crate::counter::decode(&[]),
                        // A counter in a file (a tiny file threshold): read it.
                        (Some(f), _) if r.size <= crate::counter::MAX_LEN as i64 => {
                            match s.files.read(key, f, r.size.max(0) as u64)? {
                                Some(v) => crate::counter::decode(&v),
                                None => {
                                    return Err(Error::ValueFileMissing {
                                        key: key.to_owned(),
                                        path: s.files.shown(f),
                                    });
                                }
                            }
                        }
                        _ => None,
                    }
                    .ok_or_else(|| Error::NotACounter {
                        key: key.to_owned(),
                    })?;
                    let new = i64::try_from(i128::from(current) + delta).map_err(|_| overflow())?;
                    let bytes = crate::counter::encode(new);
                    s.exec(
                        w,
                        schema::UPDATE_COUNTER,
                        params![key, bytes, bytes.len() as i64, now],
                    )?;
                    Ok(new)
                }
                _ => {
                    let new = i64::try_from(i128::from(default) + delta).map_err(|_| overflow())?;
                    let bytes = crate::counter::encode(new);
                    let meta = Meta {
                        key,
                        expire: None,
                        now,
                        tag: None,
                    };
                    self.upsert(w, &meta, Data::Inline(&bytes), bytes.len())?;
                    Ok(new)
                }
            }
        })
    }

    fn in_transaction(&self) -> bool {
        self.shared.tx_owner.load(Ordering::Acquire) == thread_token()
    }

    fn stats(&self) -> Stats {
        Stats {
            hits: self.shared.hits.load(Ordering::Relaxed),
            misses: self.shared.misses.load(Ordering::Relaxed),
        }
    }

    fn reset_stats(&self) {
        self.shared.hits.store(0, Ordering::Relaxed);
        self.shared.misses.store(0, Ordering::Relaxed);
    }

    fn size(&self) -> Result<u64> {
        let s = &*self.shared;
        s.read(|c| s.totals(c)).map(|t| t.1)
    }

    fn volume(&self) -> Result<u64> {
        let s = &*self.shared;
        if !PLATFORM.files {
            return s.read(|c| {
                c.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(|e| s.sql_err(e))
            });
        }
        let files = s.read(|c| s.totals(c))?.2 + s.files.reserve_len();
        let mut db = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = s.db_path.clone().into_os_string();
            p.push(suffix);
            db += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        Ok(db + files)
    }

    fn check(&self, fix: bool) -> Result<CheckReport> {
        maintenance::check(&self.shared, fix)
    }

    fn begin(&self) -> Result<SqliteTx<'_>> {
        let guard = self.shared.lock_writer()?;
        SqliteTx::begin(&self.shared, guard)
    }

    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        let s = &*self.shared;
        let now = s.now();
        let until = now.saturating_add(micros(expire));
        s.write(false, |w| {
            Ok(s.exec(w, schema::LOCK, params![name, owner, until, now])? == 1)
        })
    }

    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let s = &*self.shared;
        s.write_freeing(false, |w| {
            if w.depth > 0 {
                w.unlocks.push((name.to_owned(), owner.to_owned()));
                return Ok(());
            }
            s.exec(w, schema::UNLOCK, params![name, owner]).map(|_| ())
        })
    }

    fn maintain(&self) -> Result<()> {
        let s = &*self.shared;
        s.flush_recency()?;
        s.purge_expired()?;
        s.evict()?;
        s.drain_discarded()?;
        Ok(())
    }
}

impl<P> Drop for Engine<P> {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A child of `fork`: the connections' locks and the maintenance thread
            // belong to the parent (closing would confuse SQLite's lock bookkeeping,
            // joining would wait for a thread that does not exist here). Leave them.
            std::mem::forget(self.maintenance.take());
            std::mem::forget(self.shared.clone());
            return;
        }
        if let Some(m) = self.maintenance.take() {
            m.stop();
        }
        if let Err(e) = self.shared.flush_recency() {
            tracing::warn!(error = %e, "flushing recency on close failed");
        }
    }
}
