//! The read path: values (inline, borrowed from SQLite's buffer where possible, or read
//! from their file), entry metadata, keys, counts and totals. Reads never write: they
//! note LRU recency in memory.

use std::sync::atomic::Ordering;

use rusqlite::{Connection, OptionalExtension};

use super::{RECENCY_FLUSH_AT, Shared, SqliteEngine, schema, thread_token};
use crate::engine::{Namespace, Version};
use crate::options::EntryInfo;
use crate::platform::PLATFORM;
use crate::{Error, Result};

/// A value as a read found it.
pub(crate) enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Bytes<'_> {
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            Bytes::Borrowed(b) => b.to_vec(),
            Bytes::Owned(v) => v,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Owned(v) => v,
        }
    }
}

/// An entry's metadata, read with its value on request.
pub(crate) struct RowMeta {
    pub(crate) info: EntryInfo,
    pub(crate) version: Version,
}

/// A row as the write path reads it.
pub(crate) struct Row {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) file: Option<String>,
    pub(crate) size: i64,
    pub(crate) expire: Option<i64>,
    pub(crate) tag: Option<String>,
}

impl Row {
    pub(crate) fn info(&self, s: &Shared) -> EntryInfo {
        EntryInfo {
            size: self.size.max(0) as u64,
            expire: s.expiry_time(self.expire),
            tag: self.tag.clone(),
            in_file: self.file.is_some(),
        }
    }
}

/// The smallest string above every string that starts with `prefix`, if there is one
/// (byte order of UTF-8 is code point order: bump the last code point that can be).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = (c as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl SqliteEngine {
    /// Reads the live value of `key` and hands it to `f` (with its metadata when
    /// `with_meta`): borrowed from SQLite's buffer when it can be, owned when it had to
    /// be read (a file) or copied out (on the writer connection, which stays borrowed
    /// during the read while `f` may call back into the store).
    pub(crate) fn fetch<R>(
        &self,
        ns: &Namespace,
        key: &str,
        with_meta: bool,
        f: impl FnOnce(Bytes<'_>, Option<RowMeta>) -> R,
    ) -> Result<Option<R>> {
        let s = &*self.shared;
        let now = s.now();
        let on_writer = !PLATFORM.wal || s.tx_owner.load(Ordering::Acquire) == thread_token();
        let mut f = Some(f);
        let mut result = None;
        let mut owned: Option<Vec<u8>> = None;
        let mut in_file: Option<(String, i64)> = None;
        let mut meta: Option<RowMeta> = None;
        let hit = s.read(|conn| {
            let sql = if with_meta {
                schema::GET_ENTRY.of(ns)
            } else {
                schema::GET.of(ns)
            };
            let mut st = conn.prepare_cached(sql).map_err(|e| s.sql_err(e))?;
            // Key first; the namespace only in a named namespace's form.
            let rows = if ns.is_default() {
                st.query((key,))
            } else {
                st.query((key, ns.id() as i64))
            };
            let mut rows = rows.map_err(|e| s.sql_err(e))?;
            let Some(row) = rows.next().map_err(|e| s.sql_err(e))? else {
                return Ok(false);
            };
            let expire: Option<i64> = row.get(3).map_err(|e| s.sql_err(e))?;
            if !s.live(expire, now) {
                return Ok(false);
            }
            s.note_use(ns, key, now);
            let file = row.get::<_, Option<String>>(1).map_err(|e| s.sql_err(e))?;
            if with_meta {
                meta = Some(RowMeta {
                    info: EntryInfo {
                        size: row.get::<_, i64>(2).map_err(|e| s.sql_err(e))?.max(0) as u64,
                        expire: s.expiry_time(expire),
                        tag: row.get(4).map_err(|e| s.sql_err(e))?,
                        in_file: file.is_some(),
                    },
                    version: Version(
                        row.get::<_, Option<i64>>(5)
                            .map_err(|e| s.sql_err(e))?
                            .unwrap_or(0) as u64,
                    ),
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
                result = f.take().map(|g| g(Bytes::Borrowed(bytes), meta.take()));
            }
            Ok(true)
        })?;
        if let Some(v) = owned {
            result = f.take().map(|g| g(Bytes::Owned(v), meta.take()));
        }
        let hit = match in_file {
            Some((file, size)) => match self.read_file_value(ns, key, file, size)? {
                Some(v) => {
                    result = f.take().map(|g| g(Bytes::Owned(v), meta.take()));
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

    /// Reads a file-backed value, following a concurrent replacement of the row.
    fn read_file_value(
        &self,
        ns: &Namespace,
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
            let row = s.read(|c| s.get_row(c, ns, key))?;
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
}

impl Shared {
    pub(crate) fn get_row(
        &self,
        conn: &Connection,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<Row>> {
        let mut st = conn
            .prepare_cached(schema::GET_ENTRY.of(ns))
            .map_err(|e| self.sql_err(e))?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok(Row {
                value: r.get(0)?,
                file: r.get(1)?,
                size: r.get(2)?,
                expire: r.get(3)?,
                tag: r.get(4)?,
            })
        };
        if ns.is_default() {
            st.query_row((key,), row)
        } else {
            st.query_row((key, ns.id() as i64), row)
        }
        .optional()
        .map_err(|e| self.sql_err(e))
    }

    /// The version of a live entry (`None`: absent or expired), on `conn`.
    pub(crate) fn version_on(
        &self,
        conn: &Connection,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<Version>> {
        let row: Option<(Option<i64>, Option<i64>)> = conn
            .prepare_cached(schema::VERSION.of(ns))
            .and_then(|mut st| {
                st.query_row((ns.id() as i64, key), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.sql_err(e))?;
        Ok(match row {
            Some((expire, version)) if self.live(expire, self.now()) => {
                Some(Version(version.unwrap_or(0) as u64))
            }
            _ => None,
        })
    }

    pub(crate) fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let now = self.now();
        self.read(|c| {
            let e: Option<Option<i64>> = c
                .prepare_cached(schema::CONTAINS.of(ns))
                .and_then(|mut st| st.query_row((ns.id() as i64, key), |r| r.get(0)).optional())
                .map_err(|e| self.sql_err(e))?;
            Ok(matches!(e, Some(e) if self.live(e, now)))
        })
    }

    pub(crate) fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>> {
        let now = self.now();
        let row = self.read(|c| {
            c.prepare_cached(schema::INFO.of(ns))
                .and_then(|mut st| {
                    st.query_row((ns.id() as i64, key), |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(|e| self.sql_err(e))
        })?;
        Ok(row
            .filter(|r| self.live(r.2, now))
            .map(|(file, size, expire, tag)| EntryInfo {
                size: size.max(0) as u64,
                expire: self.expiry_time(expire),
                tag,
                in_file: file.is_some(),
            }))
    }

    /// (count, bytes of values, bytes in files) of a namespace, or of the whole store.
    pub(crate) fn totals(
        &self,
        conn: &Connection,
        ns: Option<&Namespace>,
    ) -> Result<(u64, u64, u64)> {
        let row = |r: &rusqlite::Row<'_>| {
            Ok((
                r.get::<_, Option<i64>>(0)?.unwrap_or(0).max(0) as u64,
                r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64,
            ))
        };
        match ns {
            None => conn
                .prepare_cached(schema::TOTALS)
                .and_then(|mut s| s.query_row([], row)),
            Some(ns) => conn
                .prepare_cached(schema::NS_TOTALS)
                .and_then(|mut s| s.query_row((ns.id() as i64,), row)),
        }
        .map_err(|e| self.sql_err(e))
    }

    pub(crate) fn len(&self, ns: &Namespace) -> Result<u64> {
        let now = self.now();
        self.read(|c| {
            let count = self.totals(c, Some(ns))?.0;
            if !self.expiry {
                return Ok(count);
            }
            let expired: i64 = c
                .prepare_cached(schema::COUNT_EXPIRED.of(ns))
                .and_then(|mut st| st.query_row((ns.id() as i64, now), |r| r.get(0)))
                .map_err(|e| self.sql_err(e))?;
            Ok(count.saturating_sub(expired.max(0) as u64))
        })
    }

    pub(crate) fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut cursor: Option<String> = after.map(str::to_owned);
        loop {
            let batch: Vec<(String, Option<i64>)> = self.read(|c| {
                let (sql, from) = match &cursor {
                    Some(k) if k.as_str() >= prefix => (schema::KEYS_AFTER.of(ns), k.as_str()),
                    _ => (schema::KEYS_FROM.of(ns), prefix),
                };
                let mut st = c.prepare_cached(sql).map_err(|e| self.sql_err(e))?;
                let rows = st
                    .query_map((ns.id() as i64, from, limit as i64), |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(|e| self.sql_err(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| self.sql_err(e))
            })?;
            let full = batch.len() == limit;
            for (key, expire) in batch {
                if !key.starts_with(prefix) {
                    return Ok(out);
                }
                if self.live(expire, now) {
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

    pub(crate) fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        let now = self.now();
        let end = prefix_end(prefix);
        self.read(|c| {
            let n: i64 = match &end {
                Some(end) => c
                    .prepare_cached(schema::COUNT_RANGE.of(ns))
                    .and_then(|mut st| {
                        st.query_row((ns.id() as i64, prefix, end, now), |r| r.get(0))
                    }),
                None => c
                    .prepare_cached(schema::COUNT_FROM.of(ns))
                    .and_then(|mut st| st.query_row((ns.id() as i64, prefix, now), |r| r.get(0))),
            }
            .map_err(|e| self.sql_err(e))?;
            Ok(n.max(0) as u64)
        })
    }

    /// Bytes on disk: the database, its WAL and shared-memory files, value files and
    /// the reserve.
    pub(crate) fn volume(&self) -> Result<u64> {
        if !PLATFORM.files {
            return self.read(|c| {
                c.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(|e| self.sql_err(e))
            });
        }
        let files = self.read(|c| self.totals(c, None))?.2 + self.files.reserve_len();
        let mut db = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db_path.clone().into_os_string();
            p.push(suffix);
            db += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        Ok(db + files)
    }

    pub(crate) fn metadata(&self, name: &str) -> Result<Option<String>> {
        let key = format!("{}{name}", schema::USER_META);
        self.read(|c| {
            c.prepare_cached(schema::META_GET)
                .and_then(|mut st| st.query_row([&key], |r| r.get(0)).optional())
                .map_err(|e| self.sql_err(e))
        })
    }

    /// The namespace `name`, created if needed (a write only then).
    pub(crate) fn namespace(&self, name: &str) -> Result<Namespace> {
        if let Some(&id) = self.namespaces.read().get(name) {
            return Ok(Namespace::new(id, name));
        }
        let found: Option<i64> = self.read(|c| {
            c.prepare_cached(schema::NAMESPACE_ID)
                .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
                .map_err(|e| self.sql_err(e))
        })?;
        let id = match found {
            Some(id) => id,
            None => self.write(true, |w| {
                // Another process may have made it meanwhile.
                let existing: Option<i64> = w
                    .conn
                    .prepare_cached(schema::NAMESPACE_ID)
                    .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
                    .map_err(|e| self.sql_err(e))?;
                if let Some(id) = existing {
                    return Ok(id);
                }
                let id: i64 = w
                    .conn
                    .prepare_cached(schema::CREATE_NAMESPACE)
                    .and_then(|mut st| st.query_row([name], |r| r.get(0)))
                    .map_err(|e| self.sql_err(e))?;
                self.exec(w, schema::NAMESPACE_TOTALS, [id])?;
                Ok(id)
            })?,
        };
        self.namespaces.write().insert(name.to_owned(), id as u64);
        Ok(Namespace::new(id as u64, name))
    }

    pub(crate) fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.read(|c| self.namespaces_on(c))
    }

    /// Every namespace, read on `conn`.
    pub(crate) fn namespaces_on(&self, conn: &Connection) -> Result<Vec<Namespace>> {
        let mut st = conn
            .prepare_cached(schema::NAMESPACES)
            .map_err(|e| self.sql_err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.sql_err(e))?;
        rows.map(|r| {
            r.map(|(id, name)| Namespace::new(id as u64, &name))
                .map_err(|e| self.sql_err(e))
        })
        .collect()
    }

    pub(crate) fn note_hit(&self, hit: bool) {
        if self.stats {
            let c = if hit { &self.hits } else { &self.misses };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bounds_every_string_with_the_prefix() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        // Past the surrogate gap.
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let end = prefix_end("k/").expect("end");
        for k in ["k/", "k/a", "k/\u{10FFFF}\u{10FFFF}"] {
            assert!(k.starts_with("k/") && k < end.as_str(), "{k}");
        }
        assert!("k0" >= end.as_str());
    }
}
