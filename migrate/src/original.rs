//! The original sciqlop-cache (the C++20 library and its Python package
//! `pysciqlop-cache`, releases 0.1 to 0.3): `Cache`, `Index`, `FanoutCache` and
//! `FanoutIndex` directories, read through its SQLite database directly.
//!
//! The original keeps one table `cache` per store (`WITHOUT ROWID`, keyed by `key`):
//! `path` (a value file, relative to the store directory) or `value` (inline), `size`,
//! and for caches `expire` (Unix seconds), `last_use` (its recency clock) and `tag`;
//! `meta` records the serializer of the Python package (`pickle`, `msgspec`, …; none
//! for stores written from C++) and, once a non-`str` key was stored, `encoded_keys`:
//! such keys are text starting with NUL, then a type code (`i` int, `f` float, `b`
//! bytes as latin-1, `p` base64 of a pickle), the same encoding as this project's
//! Python package. A fanout is numbered shard directories (`00`, `01`, …), each a store.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::{Entry, EntryId, Item, Listed, Read, ReadOptions, Removed, Source, SourceError};

/// Name of the original's database file (also this project's: see [`is_original_db`]).
pub const ORIGINAL_DB: &str = "sciqlop-cache.db";
const FORMAT: &str = "original sciqlop-cache";

/// Whether the database file `db` was written by the original: a table `cache` and no
/// table of this project's (`entries`).
pub fn is_original_db(db: &Path) -> bool {
    let Ok(conn) = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    let has = |table: &str| {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()
        .ok()
        .flatten()
        .is_some()
    };
    has("cache") && !has("entries")
}

/// Whether `dir` holds a store of the original: its database, or numbered shard
/// directories holding one (a fanout).
pub fn is_original_dir(dir: &Path) -> bool {
    source_dbs(dir).is_ok_and(|v| !v.is_empty())
}

/// The shard directories of an original directory: `[(name, dir)]`, the name empty for
/// a single store.
fn source_dbs(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    crate::shards::numbered(dir, ORIGINAL_DB, is_original_db)
}

/// A row as read: what the removal of an unchanged entry compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowVersion {
    key: String,
    path: Option<String>,
    value: Value,
    size: Option<i64>,
    expire: Option<f64>,
    tag: Value,
}

/// One source database.
struct Shard {
    name: String,
    dir: PathBuf,
    db: PathBuf,
    conn: Connection,
    /// A cache (expiry, recency, tags) rather than an index.
    cache: bool,
    /// Non-`str` keys are encoded (`meta.encoded_keys`).
    encoded_keys: bool,
    serializer: Option<String>,
    max_size: Option<u64>,
}

impl Shard {
    fn open(name: String, dir: PathBuf, writable: bool) -> Result<Self, SourceError> {
        let db = dir.join(ORIGINAL_DB);
        let err = |source| SourceError::Sqlite {
            format: FORMAT,
            path: db.clone(),
            source,
        };
        let conn = crate::shards::open_db(&db, writable, FORMAT)?;
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('cache')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(err)?;
        let has = |c: &str| columns.iter().any(|n| n == c);
        if !["key", "path", "value", "size"].iter().all(|c| has(c)) {
            return Err(SourceError::NotASource {
                path: dir.clone(),
                format: FORMAT,
                reason: format!("its table `cache` has the columns {columns:?}"),
            });
        }
        let cache = has("expire") && has("last_use") && has("tag");
        let meta = |key: &str| -> Result<Option<String>, SourceError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, Value>(0)
            })
            .optional()
            .map(|v| match v {
                Some(Value::Text(s)) => Some(s),
                Some(Value::Integer(i)) => Some(i.to_string()),
                _ => None,
            })
            .or_else(|e| match e {
                // Very early stores may have no `meta` table.
                rusqlite::Error::SqliteFailure(..) => Ok(None),
                e => Err(err(e)),
            })
        };
        let encoded_keys = meta("encoded_keys")?.is_some();
        let serializer = meta("serializer")?;
        let max_size = meta("max_size")?.and_then(|v| v.parse().ok());
        Ok(Shard {
            name,
            dir,
            db,
            conn,
            cache,
            encoded_keys,
            serializer,
            max_size,
        })
    }

    fn err(&self, source: rusqlite::Error) -> SourceError {
        SourceError::Sqlite {
            format: FORMAT,
            path: self.db.clone(),
            source,
        }
    }

    fn fetch(&self, key: &str) -> Result<Option<RowVersion>, SourceError> {
        let sql = if self.cache {
            "SELECT path, value, size, expire, tag FROM cache WHERE key = ?1"
        } else {
            "SELECT path, value, size, NULL, NULL FROM cache WHERE key = ?1"
        };
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        st.query_row([key], |r| {
            Ok(RowVersion {
                key: key.to_owned(),
                path: r.get(0)?,
                value: r.get(1)?,
                size: r.get(2)?,
                expire: r.get(3)?,
                tag: r.get(4)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// The key as the Python object it stands for.
    fn key_item(&self, key: &str) -> Item {
        if self.encoded_keys
            && let Some(item) = decode_key(key)
        {
            return item;
        }
        Item::Str(key.to_owned())
    }

    /// The value as stored: a pickled int (what the original's `incr` writes) becomes
    /// the int, so that it stays a counter; other values of a pickle store are
    /// pickles, and the rest the bytes as stored (a store that recorded no serializer:
    /// written from C++, or a fanout of an early release, whose Python values are
    /// pickles all the same).
    fn value_item(&self, bytes: Vec<u8>) -> Item {
        let pickle = self.serializer.as_deref() == Some("pickle");
        match pickled_int(&bytes) {
            Some(n) if pickle || self.serializer.is_none() => Item::Int(n),
            _ if pickle => Item::Pickle(bytes),
            _ => Item::Bytes(bytes),
        }
    }

    /// The value file of a row: relative to the store directory, or absolute inside it.
    fn value_path(&self, path: &str) -> Option<PathBuf> {
        let p = Path::new(path);
        if p.is_absolute() {
            return p.starts_with(&self.dir).then(|| p.to_owned());
        }
        crate::diskcache::value_path(&self.dir, path)
    }
}

/// The typed key of an encoded key (`None`: not one of the encodings).
fn decode_key(key: &str) -> Option<Item> {
    let rest = key.strip_prefix('\0')?;
    let code = rest.chars().next()?;
    let text = &rest[code.len_utf8()..];
    Some(match code {
        'i' => Item::Int(text.parse().ok()?),
        'f' => Item::Float(text.parse().ok()?),
        'b' => Item::Bytes(
            text.chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<_>>()?,
        ),
        'p' => Item::Pickle(base64_decode(text)?),
        _ => return None,
    })
}

/// Standard base64 (with padding), as Python's `base64.b64encode` writes it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &b in &chunk[..4 - pad] {
            n = (n << 6) | digit(b)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

/// The int a binary pickle (protocol 2 to 5) of a Python `int` holds, if it is one that
/// fits in an `i64`.
pub(crate) fn pickled_int(p: &[u8]) -> Option<i64> {
    let [0x80, proto, rest @ ..] = p else {
        return None;
    };
    if !(2..=5).contains(proto) {
        return None;
    }
    // Protocol 4 and 5 may frame the body: FRAME, 8-byte length.
    let body = match rest {
        [0x95, framed @ ..] if framed.len() >= 8 => &framed[8..],
        _ => rest,
    };
    let (n, tail) = match body {
        [b'K', b, tail @ ..] => (i64::from(*b), tail),
        [b'M', a, b, tail @ ..] => (i64::from(u16::from_le_bytes([*a, *b])), tail),
        [b'J', a, b, c, d, tail @ ..] => (i64::from(i32::from_le_bytes([*a, *b, *c, *d])), tail),
        [0x8a, len, tail @ ..] if usize::from(*len) <= 8 && tail.len() > usize::from(*len) => {
            let (digits, tail) = tail.split_at(usize::from(*len));
            let mut buf = if digits.last().is_some_and(|b| b & 0x80 != 0) {
                [0xff; 8]
            } else {
                [0; 8]
            };
            buf[..digits.len()].copy_from_slice(digits);
            (i64::from_le_bytes(buf), tail)
        }
        _ => return None,
    };
    (tail == b".").then_some(n)
}

/// The original sciqlop-cache's `Cache`, `Index`, `FanoutCache` or `FanoutIndex`
/// directory.
pub struct OriginalSource {
    shards: Vec<Shard>,
    /// Each shard's keys as last listed ([`EntryId::row`] indexes them: the original's
    /// table has no row ids).
    listed: Mutex<Vec<Vec<String>>>,
}

impl std::fmt::Debug for OriginalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginalSource")
            .field(
                "shards",
                &self.shards.iter().map(|s| &s.dir).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl OriginalSource {
    /// Opens the original's directory `dir` (a single store, or numbered shard
    /// directories). `writable` is needed for [`Source::remove_unchanged`]; without it
    /// a read-only source is opened read-only.
    pub fn open(dir: &Path, writable: bool) -> Result<Self, SourceError> {
        let mut shards = crate::shards::find(dir, FORMAT, ORIGINAL_DB, is_original_db)?
            .into_iter()
            .map(|(name, d)| Shard::open(name, d, writable))
            .collect::<Result<Vec<_>, _>>()?;
        // A fanout records its serializer in one shard (the first) and `encoded_keys`
        // in the shards where such a key went: both hold for the whole fanout.
        let serializer = shards.iter().find_map(|s| s.serializer.clone());
        let encoded_keys = shards.iter().any(|s| s.encoded_keys);
        for s in &mut shards {
            s.serializer.clone_from(&serializer);
            s.encoded_keys = encoded_keys;
        }
        let n = shards.len();
        Ok(OriginalSource {
            shards,
            listed: Mutex::new(vec![Vec::new(); n]),
        })
    }

    /// Whether the source is sharded (a fanout).
    pub fn is_fanout(&self) -> bool {
        self.shards.len() > 1 || self.shards.first().is_some_and(|s| !s.name.is_empty())
    }

    /// Whether the source is a cache (expiry, tags) rather than an index.
    pub fn is_cache(&self) -> bool {
        self.shards.iter().all(|s| s.cache)
    }

    /// The size bound the original's Python package recorded (`meta.max_size`; 0 or
    /// none: unbounded), for the whole store.
    pub fn max_size(&self) -> Option<u64> {
        let total: u64 = self.shards.iter().filter_map(|s| s.max_size).sum();
        (total > 0).then_some(total)
    }

    fn key_of(&self, id: EntryId) -> Option<String> {
        let listed = self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listed
            .get(id.shard)?
            .get(usize::try_from(id.row).ok()?)
            .cloned()
    }

    fn read_row(&self, id: EntryId, opts: &ReadOptions) -> Result<Read, SourceError> {
        let (Some(shard), Some(stored)) = (self.shards.get(id.shard), self.key_of(id)) else {
            return Ok(Read::Vanished(id));
        };
        let Some(row) = shard.fetch(&stored)? else {
            return Ok(Read::Vanished(id));
        };
        let key = shard.key_item(&stored);
        let shown = key.display("key");
        if let (Some(e), Some(now)) = (row.expire, opts.expired_before)
            && e <= now
        {
            return Ok(Read::Expired { id, key });
        }
        if let Some(max) = opts.max_value_size
            && row.size.unwrap_or(0).max(0) as u64 > max
        {
            return Ok(Read::TooLarge { id, key });
        }
        let bytes = match (&row.path, &row.value) {
            (Some(p), _) if !p.is_empty() => {
                let Some(path) = shard.value_path(p) else {
                    return Ok(Read::Failed {
                        id,
                        key: shown,
                        error: format!("value file name {p:?} leaves the cache directory"),
                    });
                };
                match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // Replaced or removed since the listing? Read it again.
                        if shard.fetch(&stored)?.as_ref() != Some(&row) {
                            return self.read_row(id, opts);
                        }
                        return Ok(Read::Failed {
                            id,
                            key: shown,
                            error: format!("value file {} is missing", path.display()),
                        });
                    }
                    Err(e) => {
                        return Ok(Read::Failed {
                            id,
                            key: shown,
                            error: format!("reading value file {} failed: {e}", path.display()),
                        });
                    }
                }
            }
            (_, Value::Blob(b)) => b.clone(),
            (_, Value::Text(t)) => t.clone().into_bytes(),
            (_, Value::Null) => Vec::new(),
            (_, other) => {
                return Ok(Read::Unsupported {
                    id,
                    key: shown,
                    reason: format!("inline value of type {:?}", other.data_type()),
                });
            }
        };
        let tag = match &row.tag {
            Value::Text(t) => Some(Item::Str(t.clone())),
            Value::Null => None,
            other => {
                return Ok(Read::Unsupported {
                    id,
                    key: shown,
                    reason: format!("tag of type {:?}", other.data_type()),
                });
            }
        };
        Ok(Read::Entry(Box::new(Entry {
            id,
            key,
            stored_key: Some(stored),
            value: shard.value_item(bytes),
            expire_at: row.expire,
            tag,
            version: crate::RowVersion::Original(row),
        })))
    }
}

impl Source for OriginalSource {
    fn format(&self) -> &'static str {
        FORMAT
    }

    fn shard_names(&self) -> Vec<&str> {
        self.shards.iter().map(|s| s.name.as_str()).collect()
    }

    fn serializer(&self) -> Option<String> {
        self.shards.iter().find_map(|s| s.serializer.clone())
    }

    fn list(&self) -> Result<Vec<Listed>, SourceError> {
        let mut order: Vec<(f64, Listed)> = Vec::new();
        let mut keys = Vec::with_capacity(self.shards.len());
        for (i, shard) in self.shards.iter().enumerate() {
            let sql = if shard.cache {
                "SELECT key, last_use FROM cache"
            } else {
                "SELECT key, 0.0 FROM cache"
            };
            let mut st = shard.conn.prepare(sql).map_err(|e| shard.err(e))?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<f64>>(1)?))
                })
                .map_err(|e| shard.err(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| shard.err(e))?;
            let mut mine = Vec::with_capacity(rows.len());
            for (row, (key, last_use)) in rows.into_iter().enumerate() {
                let non_str_key = match shard.key_item(&key) {
                    Item::Str(_) => None,
                    k => Some(k),
                };
                order.push((
                    last_use.unwrap_or(0.0),
                    Listed {
                        id: EntryId {
                            shard: i,
                            row: row as i64,
                        },
                        non_str_key,
                    },
                ));
                mine.push(key);
            }
            keys.push(mine);
        }
        *self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        Ok(order.into_iter().map(|(_, l)| l).collect())
    }

    fn has_str_key(&self, key: &str) -> Result<bool, SourceError> {
        for shard in &self.shards {
            if shard.encoded_keys && key.starts_with('\0') {
                continue; // stands for another type there
            }
            let mut st = shard
                .conn
                .prepare_cached("SELECT 1 FROM cache WHERE key = ?1")
                .map_err(|e| shard.err(e))?;
            if st.exists([key]).map_err(|e| shard.err(e))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn read_batch(&self, ids: &[EntryId], opts: &ReadOptions) -> Result<Vec<Read>, SourceError> {
        let mut open = vec![false; self.shards.len()];
        let mut out = Vec::with_capacity(ids.len());
        let result = (|| {
            for &id in ids {
                if let Some(shard) = self.shards.get(id.shard)
                    && !open[id.shard]
                {
                    // A read transaction per shard and batch: one snapshot.
                    shard
                        .conn
                        .execute_batch("BEGIN")
                        .map_err(|e| shard.err(e))?;
                    open[id.shard] = true;
                }
                out.push(self.read_row(id, opts)?);
            }
            Ok(())
        })();
        for (i, _) in open.iter().enumerate().filter(|(_, o)| **o) {
            let shard = &self.shards[i];
            if let Err(e) = shard.conn.execute_batch("COMMIT")
                && result.is_ok()
            {
                return Err(shard.err(e));
            }
        }
        result.map(|()| out)
    }

    fn remove_unchanged(&self, entries: &[&Entry]) -> Result<Removed, SourceError> {
        let mut total = Removed::default();
        for (si, shard) in self.shards.iter().enumerate() {
            let mine: Vec<&RowVersion> = entries
                .iter()
                .filter(|e| e.id.shard == si)
                .filter_map(|e| match &e.version {
                    crate::RowVersion::Original(r) => Some(r),
                    _ => None,
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut files = Vec::new();
            let tx = rusqlite::Transaction::new_unchecked(
                &shard.conn,
                rusqlite::TransactionBehavior::Immediate,
            )
            .map_err(|e| shard.err(e))?;
            {
                let sql = if shard.cache {
                    "DELETE FROM cache WHERE key = ?1 AND path IS ?2 AND value IS ?3 \
                     AND size IS ?4 AND expire IS ?5 AND tag IS ?6"
                } else {
                    "DELETE FROM cache WHERE key = ?1 AND path IS ?2 AND value IS ?3 \
                     AND size IS ?4 AND ?5 IS NULL AND ?6 IS NULL"
                };
                let mut st = tx.prepare_cached(sql).map_err(|e| shard.err(e))?;
                for r in mine {
                    let n = st
                        .execute(params![r.key, r.path, r.value, r.size, r.expire, r.tag])
                        .map_err(|e| shard.err(e))?;
                    if n > 0 {
                        total.removed += 1;
                        if let Some(p) = r.path.as_deref().filter(|p| !p.is_empty()) {
                            files.push(p.to_owned());
                        }
                    } else {
                        total.changed += 1;
                    }
                }
                // The original's delete trigger queues the file for its own cleanup;
                // the file goes now, so does its queue entry.
                for f in &files {
                    let _ = tx.execute("DELETE FROM trash WHERE path = ?1", [f]);
                }
            }
            tx.commit().map_err(|e| shard.err(e))?;
            for f in files {
                if let Some(path) = shard.value_path(&f) {
                    crate::shards::remove_value_file(&shard.dir, &path);
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickled_ints_of_every_width() {
        // pickle.dumps(n, protocol=5) for these n.
        assert_eq!(pickled_int(b"\x80\x05K\x01."), Some(1));
        assert_eq!(pickled_int(b"\x80\x05M\xe8\x03."), Some(1000));
        assert_eq!(pickled_int(b"\x80\x05J\xff\xff\xff\xff."), Some(-1));
        assert_eq!(
            pickled_int(b"\x80\x05\x8a\x05\x00\xe4\x0bT\x02."),
            Some(10_000_000_000)
        );
        assert_eq!(pickled_int(b"\x80\x05\x8a\x01\xfb."), Some(-5));
        assert_eq!(pickled_int(b"\x80\x02K\x07."), Some(7));
        // Not ints: a str, a float, a truncated pickle, a bool.
        assert_eq!(
            pickled_int(b"\x80\x05\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94."),
            None
        );
        assert_eq!(
            pickled_int(b"\x80\x05G?\xf8\x00\x00\x00\x00\x00\x00."),
            None
        );
        assert_eq!(pickled_int(b"\x80\x05K"), None);
        assert_eq!(pickled_int(b"\x80\x05\x88."), None);
    }

    #[test]
    fn encoded_keys_decode_to_their_types() {
        assert_eq!(decode_key("\0i-7"), Some(Item::Int(-7)));
        assert_eq!(decode_key("\0f0.5"), Some(Item::Float(0.5)));
        assert_eq!(
            decode_key("\0ba\u{ff}"),
            Some(Item::Bytes(vec![b'a', 0xff]))
        );
        assert_eq!(
            decode_key("\0pgAVLAS4="),
            Some(Item::Pickle(vec![0x80, 5, b'K', 1, b'.']))
        );
        assert_eq!(decode_key("plain"), None);
        assert_eq!(decode_key("\0x"), None);
        assert_eq!(base64_decode("YWJj"), Some(b"abc".to_vec()));
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode("YQ=="), Some(b"a".to_vec()));
        assert_eq!(base64_decode("Y"), None);
    }
}
