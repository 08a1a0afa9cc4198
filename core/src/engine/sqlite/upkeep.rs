//! Upkeep: buffered LRU recency, the expiry purge, eviction down to the bound, value
//! files queued by triggers, and freeing space when the disk is full. Run by the
//! maintenance thread (or inline where there is none) in short batches so that
//! foreground writers never wait long.

use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::{BATCH, RECENCY_FLUSH_AT, Shared, connection, schema};
use crate::Result;
use crate::engine::Namespace;

impl Shared {
    /// Notes that `key` was read at `now` (for LRU eviction, in bounded caches).
    pub(crate) fn note_use(&self, ns: &Namespace, key: &str, now: i64) {
        if self.lru && self.max_size() > 0 && self.read_only.is_none() {
            let mut buf = self.recency.lock();
            match buf.get_mut(&(ns.id(), key.to_owned())) {
                Some(t) => *t = now,
                None => {
                    buf.insert((ns.id(), key.to_owned()), now);
                }
            }
            if buf.len() == RECENCY_FLUSH_AT {
                drop(buf);
                self.signal.wake();
            }
        }
    }

    /// Writes the buffered recency updates.
    pub(crate) fn flush_recency(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.recency.lock());
        if batch.is_empty() {
            return Ok(());
        }
        let mut batch: Vec<((u64, String), i64)> = batch.into_iter().collect();
        // Key order: neighbouring updates touch neighbouring pages.
        batch.sort_unstable();
        for chunk in batch.chunks(BATCH as usize * 4) {
            self.write(true, |w| {
                for ((ns, key), t) in chunk {
                    let ns = *ns as i64;
                    w.conn
                        .prepare_cached(schema::TOUCH_USE.of_id(ns))
                        .and_then(|mut st| st.execute((ns, key, t)))
                        .map_err(|e| self.sql_err(e))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Deletes rows selected by `sql` (which takes `?1` = now and `?2` = batch size and
    /// deletes at most a batch) until none is left; each batch its own transaction.
    fn delete_batches(&self, sql: &str, now: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.write_freeing(true, |w| self.exec(w, sql, (now, BATCH)))?;
            total += n as u64;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Purges expired entries.
    pub(crate) fn purge_expired(&self) -> Result<u64> {
        if !self.expiry {
            return Ok(0);
        }
        let now = self.now();
        let mut n = 0;
        for sql in schema::PURGE_EXPIRED.both() {
            n += self.delete_batches(sql, now)?;
        }
        Ok(n)
    }

    /// Evicts least-recently-used entries while the bound is exceeded.
    pub(crate) fn evict(&self) -> Result<u64> {
        let max = self.max_size();
        if !self.lru || max == 0 {
            return Ok(0);
        }
        let size = self.read(|c| self.totals(c, None))?.1;
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
                let mut size = self.totals(&w.conn, None)?.1;
                // The oldest of both tables' oldest: (namespace, key, size, last use).
                let mut victims: Vec<(i64, String, i64, i64)> = Vec::new();
                for sql in schema::LRU_VICTIMS.both() {
                    let mut st = w.conn.prepare_cached(sql).map_err(|e| self.sql_err(e))?;
                    let rows = st
                        .query_map([BATCH], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })
                        .map_err(|e| self.sql_err(e))?;
                    for r in rows {
                        victims.push(r.map_err(|e| self.sql_err(e))?);
                    }
                }
                victims.sort_unstable_by_key(|v| v.3);
                victims.truncate(BATCH as usize);
                let mut n = 0u64;
                for (ns, key, bytes, _) in victims {
                    if size <= target {
                        break;
                    }
                    self.exec(w, schema::DELETE_KEY.of_id(ns), (ns, key))?;
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

    /// Deletes value files queued by triggers (e.g. by another program's deletes).
    pub(crate) fn drain_discarded(&self) -> Result<()> {
        let queued: bool = self.read(|c| {
            c.query_row("SELECT EXISTS (SELECT 1 FROM discarded)", [], |r| r.get(0))
                .map_err(|e| self.sql_err(e))
        })?;
        if !queued {
            return Ok(());
        }
        self.write(true, |w| {
            w.discard_pending = true;
            Ok(())
        })
    }

    /// Whether no other connection holds the write lock right now (asked without
    /// waiting).
    pub(crate) fn write_lock_free(&self) -> Result<bool> {
        let guard = self.lock_writer()?;
        let mut w = guard.borrow_mut();
        let restore = connection::BusyWait::new(self.config.busy_timeout).noticing(self.notice());
        connection::without_waiting(&mut w.conn, restore, |c| {
            match c.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => c.execute_batch("ROLLBACK").map(|()| true),
                Err(e) if super::errors::is_busy(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.sql_err(e))
    }

    /// Remembers that the disk is full and wakes the maintenance thread to free space.
    pub(crate) fn note_disk_full(&self) {
        if !self.disk_full.swap(true, Ordering::SeqCst) {
            self.signal.wake();
        }
    }

    /// Whether a write failed on a full disk since space was last freed.
    pub(crate) fn disk_full_pending(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    /// Takes the disk-full flag.
    pub(crate) fn take_disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed) && self.disk_full.swap(false, Ordering::SeqCst)
    }

    /// After a write failed on a full disk: a cache evicts least-recently-used entries
    /// (a tenth of its bytes, at least 64 KiB) whatever its bound, since nothing can be
    /// written anyway; then the WAL is copied back and truncated, and the reserve made
    /// again. An index keeps
    /// everything. The maintenance thread does this at most once a second, so a disk
    /// filled by others costs the cache a tenth of its entries per second at most.
    pub(crate) fn free_space(&self, conn: &Connection) -> Result<u64> {
        let mut evicted = 0;
        if self.lru {
            let size = self.read(|c| self.totals(c, None))?.1;
            let target = size.saturating_sub((size / 10).max(64 << 10));
            evicted = self.evict_down_to(target)?;
            if evicted > 0 {
                tracing::warn!(dir = %self.dir.display(), evicted, "disk full: evicted least-recently-used entries");
            }
        }
        connection::truncate_wal(conn).map_err(|e| self.sql_err(e))?;
        // The reserve first, out of the space just freed, before other writes take it:
        // the next full disk must find it (it is what lets a delete or a clear run).
        if let Err(e) = self.files.ensure_reserve() {
            tracing::debug!(error = %e, "the reserve cannot be made yet");
        }
        Ok(evicted)
    }
}
