//! The write path: set/add (inline or through a value file), batches, delete, pop,
//! touch, counters, clearing, compare-and-swap, optimistic commits, locks, metadata.
//!
//! Value files are written before the write lock is taken (and removed on drop if not
//! installed), then renamed into place inside the transaction that writes their row.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::errors::is_storage_full;
use super::files::TempValue;
use super::read::prefix_end;
use super::writer::Writer;
use super::{BATCH, Shared, SqliteEngine, connection, new_version, schema};
use crate::clock::micros;
use crate::engine::{Namespace, ReadCheck, Version, WriteOp};
use crate::options::{EntryInfo, SetOptions};
use crate::{Error, Result};

/// Everything about a write but the bytes.
struct Meta<'a> {
    ns: &'a Namespace,
    key: &'a str,
    expire: Option<i64>,
    now: i64,
    tag: Option<&'a str>,
}

/// Where the bytes of a write go.
enum Data<'a> {
    Inline(&'a [u8]),
    File(&'a str),
}

impl<'a> Meta<'a> {
    /// Runs `schema::UPSERT` (prepared for this entry's namespace) for this entry, with
    /// a fresh version; the namespace is bound only in a named namespace's form.
    #[inline]
    fn upsert(
        &self,
        st: &mut rusqlite::Statement<'_>,
        data: Data<'a>,
        size: usize,
    ) -> rusqlite::Result<usize> {
        let (value, file) = match data {
            Data::Inline(v) => (Some(v), None),
            Data::File(f) => (None, Some(f)),
        };
        let p = (
            self.key,
            value,
            file,
            size as i64,
            self.expire,
            self.now,
            self.tag,
            new_version(),
        );
        if self.ns.is_default() {
            st.execute(p)
        } else {
            st.execute((p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, self.ns.id() as i64))
        }
    }
}

impl SqliteEngine {
    fn prepare_value(&self, value: &[u8]) -> Result<Option<TempValue>> {
        let s = &*self.shared;
        if value.len() < s.config.file_threshold {
            return Ok(None);
        }
        s.writable()?;
        let temp = s.files.write_temp(value);
        if let Err(e) = &temp
            && is_storage_full(e)
        {
            s.note_disk_full();
        }
        Ok(Some(temp?))
    }

    pub(crate) fn put(
        &self,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        opts: &SetOptions,
        only_if_absent: bool,
    ) -> Result<bool> {
        let s = &*self.shared;
        let expire = s.expiry_of(opts, s.now())?;
        let temp = self.prepare_value(value)?;
        let immediate = temp.is_some() || only_if_absent;
        let stored = s.write(immediate, |w| {
            if only_if_absent && s.version_on(&w.conn, ns, key)?.is_some() {
                return Ok(false);
            }
            let meta = Meta {
                ns,
                key,
                expire,
                // Stamped under the write lock: LRU order is commit order, even when a
                // writer spent long writing its value file or waiting for the lock.
                now: s.now(),
                tag: s.tag_of(opts),
            };
            s.store_value(w, &meta, value, temp)?;
            Ok(true)
        })?;
        if stored {
            self.after_write(value.len());
        }
        Ok(stored)
    }

    /// One transaction, one LRU stamp, and one prepared statement per run of inline
    /// values (a statement lookup per row is a tenth of a batched set).
    pub(crate) fn put_many(
        &self,
        ns: &Namespace,
        entries: &[(&str, &[u8])],
        opts: &SetOptions,
    ) -> Result<()> {
        let s = &*self.shared;
        let expire = s.expiry_of(opts, s.now())?;
        let mut temps = entries
            .iter()
            .map(|(_, v)| self.prepare_value(v))
            .collect::<Result<Vec<_>>>()?;
        let tag = s.tag_of(opts);
        s.write(true, |w| {
            let stamp = s.now();
            let before = w.conn.total_changes();
            let mut i = 0;
            let meta = |key| Meta {
                ns,
                key,
                expire,
                now: stamp,
                tag,
            };
            while i < entries.len() {
                let (key, value) = entries[i];
                if let Some(temp) = temps[i].take() {
                    s.store_value(w, &meta(key), value, Some(temp))?;
                    i += 1;
                    continue;
                }
                let mut st = w
                    .conn
                    .prepare_cached(schema::UPSERT.of(ns))
                    .map_err(|e| s.sql_err(e))?;
                while i < entries.len() && temps[i].is_none() {
                    let (key, value) = entries[i];
                    meta(key)
                        .upsert(&mut st, Data::Inline(value), value.len())
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

    /// After a write of `bytes`: wakes the eviction if the bound may be exceeded.
    pub(crate) fn after_write(&self, bytes: usize) {
        let s = &*self.shared;
        let max = s.max_size();
        if s.lru && max > 0 {
            let total = s.approx_size.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
            if total as u64 > max {
                if self.maintenance.is_some() {
                    s.signal.wake();
                } else if let Err(e) = s.evict() {
                    tracing::warn!(error = %e, "inline eviction failed");
                }
            }
        }
    }

    pub(crate) fn cas(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        let s = &*self.shared;
        let expire = s.expiry_of(opts, s.now())?;
        let temp = match new {
            Some(v) => self.prepare_value(v)?,
            None => None,
        };
        let swapped = s.write(true, |w| {
            if s.version_on(&w.conn, ns, key)? != expected {
                return Ok(false);
            }
            match new {
                Some(value) => {
                    let meta = Meta {
                        ns,
                        key,
                        expire,
                        now: s.now(),
                        tag: s.tag_of(opts),
                    };
                    s.store_value(w, &meta, value, temp)?;
                }
                None => {
                    s.exec(w, schema::DELETE_KEY.of(ns), (ns.id() as i64, key))?;
                }
            }
            Ok(true)
        })?;
        if swapped && let Some(v) = new {
            self.after_write(v.len());
        }
        Ok(swapped)
    }

    pub(crate) fn optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()> {
        let s = &*self.shared;
        if writes.is_empty() && !s.in_tx_here() {
            // Nothing to write (also on a read-only store): the reads must still hold,
            // all at once, which one read transaction shows.
            return s.read_snapshot(|c| {
                for r in reads {
                    if s.version_on(c, &r.ns, &r.key)? != r.version {
                        return Err(Error::Conflict);
                    }
                }
                Ok(())
            });
        }
        let now = s.now();
        let mut temps = Vec::with_capacity(writes.len());
        for op in writes {
            temps.push(match op {
                WriteOp::Set { value, .. } => self.prepare_value(value)?,
                WriteOp::Delete { .. } => None,
            });
        }
        let mut bytes = 0;
        s.write(true, |w| {
            for r in reads {
                if s.version_on(&w.conn, &r.ns, &r.key)? != r.version {
                    return Err(Error::Conflict);
                }
            }
            for (op, temp) in writes.iter().zip(temps.iter_mut()) {
                match op {
                    WriteOp::Set {
                        ns,
                        key,
                        value,
                        opts,
                    } => {
                        let meta = Meta {
                            ns,
                            key,
                            expire: s.expiry_of(opts, now)?,
                            now: s.now(),
                            tag: s.tag_of(opts),
                        };
                        s.store_value(w, &meta, value, temp.take())?;
                        bytes += value.len();
                    }
                    WriteOp::Delete { ns, key } => {
                        s.exec(w, schema::DELETE_KEY.of(ns), (ns.id() as i64, key.as_str()))?;
                    }
                }
            }
            Ok(())
        })?;
        self.after_write(bytes);
        Ok(())
    }

    pub(crate) fn set_bound(&self, bytes: u64) -> Result<()> {
        let s = &*self.shared;
        if !s.lru {
            return Ok(());
        }
        if s.read_only.is_some() {
            // Recorded, never enforced: a read-only store evicts nothing.
            s.max_size.store(bytes, Ordering::Relaxed);
            return Ok(());
        }
        if bytes > 0 && s.max_size() == 0 {
            // The index that finds victims exists only in bounded stores.
            s.write(false, |w| {
                w.conn
                    .execute_batch(schema::CREATE_LRU_INDEX)
                    .map_err(|e| s.sql_err(e))
            })?;
        }
        s.max_size.store(bytes, Ordering::Relaxed);
        if bytes > 0 {
            // Writes are only tallied while bounded: start from the true total.
            let size = s.read(|c| s.totals(c, None))?.1;
            s.approx_size.store(size as i64, Ordering::Relaxed);
            self.after_write(0);
        }
        Ok(())
    }
}

impl Shared {
    fn upsert(&self, w: &mut Writer, m: &Meta<'_>, data: Data<'_>, size: usize) -> Result<()> {
        let before = w.conn.total_changes();
        let n = w
            .conn
            .prepare_cached(schema::UPSERT.of(m.ns))
            .and_then(|mut st| m.upsert(&mut st, data, size))
            .map_err(|e| self.sql_err(e))?;
        w.note_discards(before, n as u64);
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
        let rel = self.files.install(temp)?;
        match self.upsert(w, m, Data::File(&rel), value.len()) {
            Ok(()) => {
                let depth = w.depth;
                w.new_files.push((depth, rel));
                Ok(())
            }
            Err(e) => {
                self.files.remove(&rel);
                Err(e)
            }
        }
    }

    pub(crate) fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let now = self.now();
        let id = ns.id() as i64;
        // Only a live entry counts; an expired one is removed too, by a second statement
        // that cannot touch a value another process just set (no `RETURNING` to tell
        // them apart in one: SQLite builds a temporary table for it on every run).
        self.write_freeing(false, |w| {
            if self.exec(w, schema::DELETE_LIVE.of(ns), (id, key, now))? > 0 {
                return Ok(true);
            }
            if self.expiry {
                self.exec(w, schema::DELETE_EXPIRED.of(ns), (id, key, now))?;
            }
            Ok(false)
        })
    }

    pub(crate) fn pop_entry(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        let now = self.now();
        let out = self.write_freeing(true, |w| {
            let Some(row) = self.get_row(&w.conn, ns, key)? else {
                return Ok(None);
            };
            let info = row.info(self);
            let value = if !self.live(row.expire, now) {
                None
            } else if let Some(file) = &row.file {
                // Read while the write lock is held: nobody can replace it meanwhile.
                match self.files.read(key, file, row.size.max(0) as u64)? {
                    Some(v) => Some(v),
                    None => {
                        return Err(Error::ValueFileMissing {
                            key: key.to_owned(),
                            path: self.files.shown(file),
                        });
                    }
                }
            } else {
                Some(row.value.clone().unwrap_or_default())
            };
            self.exec(w, schema::DELETE_KEY.of(ns), (ns.id() as i64, key))?;
            Ok(value.map(|v| (v, info)))
        })?;
        self.note_hit(out.is_some());
        Ok(out)
    }

    pub(crate) fn touch(
        &self,
        ns: &Namespace,
        key: &str,
        expire: Option<Duration>,
    ) -> Result<bool> {
        let now = self.now();
        let at = expire
            .filter(|_| self.expiry)
            .map(|d| crate::options::Expiry::After(d).at_micros(now))
            .transpose()?;
        self.write_freeing(false, |w| {
            Ok(self.exec(w, schema::TOUCH.of(ns), (ns.id() as i64, key, at, now))? > 0)
        })
    }

    pub(crate) fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        let now = self.now();
        let overflow = || Error::CounterOverflow {
            key: key.to_owned(),
        };
        self.write_freeing(true, |w| {
            let row = self.get_row(&w.conn, ns, key)?;
            let current = match &row {
                Some(r) if self.live(r.expire, now) => Some(
                    match (&r.file, &r.value) {
                        (None, Some(v)) => crate::counter::decode(v),
                        (None, None) => crate::counter::decode(&[]),
                        // A counter in a file (a tiny file threshold): read it.
                        (Some(f), _) if r.size <= crate::counter::MAX_LEN as i64 => {
                            match self.files.read(key, f, r.size.max(0) as u64)? {
                                Some(v) => crate::counter::decode(&v),
                                None => {
                                    return Err(Error::ValueFileMissing {
                                        key: key.to_owned(),
                                        path: self.files.shown(f),
                                    });
                                }
                            }
                        }
                        _ => None,
                    }
                    .ok_or_else(|| Error::NotACounter {
                        key: key.to_owned(),
                    })?,
                ),
                _ => None,
            };
            let new = i64::try_from(i128::from(current.unwrap_or(default)) + delta)
                .map_err(|_| overflow())?;
            let bytes = crate::counter::encode(new);
            if current.is_some() {
                // Keeps the counter's expiry and tag.
                self.exec(
                    w,
                    schema::UPDATE_COUNTER.of(ns),
                    (
                        ns.id() as i64,
                        key,
                        &bytes,
                        bytes.len() as i64,
                        now,
                        new_version(),
                    ),
                )?;
            } else {
                let meta = Meta {
                    ns,
                    key,
                    expire: None,
                    now,
                    tag: None,
                };
                self.upsert(w, &meta, Data::Inline(&bytes), bytes.len())?;
            }
            Ok(new)
        })
    }

    pub(crate) fn clear(&self, ns: &Namespace) -> Result<u64> {
        let id = ns.id() as i64;
        let n = match self.write_freeing(true, |w| self.exec(w, schema::CLEAR_NS.of(ns), [id])) {
            Err(e) if is_storage_full(&e) && !self.in_tx_here() => {
                // Not even the reserve holds a WAL of the whole table: delete in small
                // transactions, truncating the WAL before each so that its space (the
                // failed attempt's frames included) is given back and reused. Not
                // atomic (readers may see a partly cleared store).
                tracing::warn!(dir = %self.dir.display(), "disk full: clearing in batches");
                // Waits (up to a second) for readers, the background thread's included:
                // a truncate that readers stop frees nothing, and the batch then fails too.
                let truncate = || -> Result<()> {
                    let guard = self.lock_writer()?;
                    let w = guard.borrow();
                    let start = std::time::Instant::now();
                    loop {
                        self.pin.release();
                        let done =
                            connection::truncate_wal(&w.conn).map_err(|e| self.sql_err(e))?;
                        if done || start.elapsed() > std::time::Duration::from_secs(1) {
                            return Ok(());
                        }
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                };
                let mut total = 0;
                loop {
                    match truncate() {
                        // Copying the WAL back may need pages the full disk has not:
                        // the batch then reuses the failed attempt's frames instead.
                        Err(e) if is_storage_full(&e) => {}
                        r => r?,
                    }
                    let n = self.write_freeing(true, |w| {
                        self.exec(w, schema::DELETE_BATCH.of(ns), (id, BATCH))
                    })?;
                    total += n;
                    if (n as i64) < BATCH {
                        break total;
                    }
                }
            }
            r => r?,
        };
        if ns.is_default() {
            let left = self.read(|c| self.totals(c, None))?.1;
            self.approx_size.store(left as i64, Ordering::Relaxed);
        }
        Ok(n as u64)
    }

    pub(crate) fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        let id = ns.id() as i64;
        let end = prefix_end(prefix);
        let n = self.write_freeing(true, |w| match &end {
            Some(end) => self.exec(w, schema::DELETE_RANGE.of(ns), (id, prefix, end)),
            None => self.exec(w, schema::DELETE_FROM.of(ns), (id, prefix)),
        })?;
        Ok(n as u64)
    }

    pub(crate) fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        Ok(self.write_freeing(true, |w| {
            self.exec(w, schema::EVICT_TAG.of(ns), (ns.id() as i64, tag))
        })? as u64)
    }

    pub(crate) fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        let now = self.now();
        let until = now.saturating_add(micros(expire));
        self.write(false, |w| {
            Ok(self.exec(w, schema::LOCK, (name, owner, until, now))? == 1)
        })
    }

    pub(crate) fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        self.write_freeing(false, |w| {
            if w.depth > 0 {
                w.unlocks.push((name.to_owned(), owner.to_owned()));
                return Ok(());
            }
            self.exec(w, schema::UNLOCK, (name, owner)).map(|_| ())
        })
    }

    pub(crate) fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        let key = format!("{}{name}", schema::USER_META);
        self.write(false, |w| {
            match value {
                Some(v) => self.exec(w, schema::META_SET, (key, v))?,
                None => self.exec(w, schema::META_DELETE, [&key])?,
            };
            Ok(())
        })
    }
}
