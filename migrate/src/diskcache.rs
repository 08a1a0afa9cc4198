//! Python `diskcache` 5.x: `Cache`, `FanoutCache` (numbered shard directories) and
//! `Index` directories, read through diskcache's SQLite database directly.
//!
//! diskcache keeps one `Cache` table per store: `key` (raw `str`/`bytes`/`int`/`float`
//! when `raw = 1`, else a pickle), `expire_time` and `access_time` (Unix seconds),
//! `tag`, and the value by `mode`: 1 raw inline (`str`, `bytes`, `int`, `float`), 2
//! `bytes` in a file, 3 `str` in a file, 4 a pickle (inline, or in a file when large).
//! Value files are named relative to the store directory.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Entry, EntryId, Item, Listed, Read, ReadOptions, Removed, Source, SourceError};

/// Name of diskcache's database file.
pub const DISKCACHE_DB: &str = "cache.db";
const FORMAT: &str = "diskcache";

/// Whether `dir` looks like a diskcache directory: a `cache.db`, or numbered shard
/// directories holding one (a `FanoutCache`).
pub fn is_diskcache_dir(dir: &Path) -> bool {
    source_dbs(dir).is_ok_and(|v| !v.is_empty())
}

/// The shard directories of a diskcache directory: `[(name, dir)]`, the name empty for
/// a single store.
fn source_dbs(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    crate::shards::numbered(dir, DISKCACHE_DB, |_| true)
}

const ROW_COLUMNS_CHECK: &str = "SELECT rowid, key, raw, store_time, expire_time, access_time, \
     tag, size, mode, filename, value FROM Cache LIMIT 0";
const FETCH: &str = "SELECT key, raw, store_time, expire_time, tag, size, mode, filename, value \
     FROM Cache WHERE rowid = ?1";
const SCAN: &str = "SELECT rowid, access_time, raw, \
     CASE WHEN typeof(key) <> 'text' OR raw <> 1 THEN key END FROM Cache";
const HAS_TEXT_KEY: &str = "SELECT 1 FROM Cache WHERE key = ?1 AND raw = 1";
const DELETE_UNCHANGED: &str = "DELETE FROM Cache WHERE rowid = ?1 AND key IS ?2 AND raw IS ?3 \
     AND store_time IS ?4 AND expire_time IS ?5 AND tag IS ?6 AND mode IS ?7 \
     AND filename IS ?8 AND value IS ?9";

/// A source row as read: what [`DELETE_UNCHANGED`] compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowVersion {
    key: Value,
    raw: i64,
    store_time: Option<f64>,
    expire_time: Option<f64>,
    tag: Value,
    size: Option<i64>,
    mode: Option<i64>,
    filename: Option<String>,
    value: Value,
}

/// One source database.
struct Shard {
    name: String,
    dir: PathBuf,
    db: PathBuf,
    conn: Connection,
}

impl Shard {
    fn open(name: String, dir: PathBuf, writable: bool) -> Result<Self, SourceError> {
        let db = dir.join(DISKCACHE_DB);
        let err = |source| SourceError::Sqlite {
            format: FORMAT,
            path: db.clone(),
            source,
        };
        let conn = crate::shards::open_db(&db, writable, FORMAT)?;
        // diskcache's triggers quote their string literals with double quotes.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, true)
            .map_err(err)?;
        if let Err(e) = conn.prepare(ROW_COLUMNS_CHECK) {
            return Err(SourceError::NotASource {
                path: dir.clone(),
                format: FORMAT,
                reason: format!("{DISKCACHE_DB} has no diskcache Cache table ({e})"),
            });
        }
        Ok(Shard {
            name,
            dir,
            db,
            conn,
        })
    }

    fn err(&self, source: rusqlite::Error) -> SourceError {
        SourceError::Sqlite {
            format: FORMAT,
            path: self.db.clone(),
            source,
        }
    }

    fn fetch(&self, rowid: i64) -> Result<Option<RowVersion>, SourceError> {
        let mut st = self.conn.prepare_cached(FETCH).map_err(|e| self.err(e))?;
        st.query_row([rowid], |r| {
            Ok(RowVersion {
                key: r.get(0)?,
                raw: r.get(1)?,
                store_time: r.get(2)?,
                expire_time: r.get(3)?,
                tag: r.get(4)?,
                size: r.get(5)?,
                mode: r.get(6)?,
                filename: r.get(7)?,
                value: r.get(8)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }
}

/// The key of a row as a typed item.
fn key_item(raw: i64, key: &Value) -> Result<Item, String> {
    if raw == 0 {
        return match key {
            Value::Blob(b) => Ok(Item::Pickle(b.clone())),
            _ => Err("pickled key is not a BLOB".into()),
        };
    }
    raw_item(key).ok_or_else(|| "NULL key".to_owned())
}

fn raw_item(v: &Value) -> Option<Item> {
    Some(match v {
        Value::Text(s) => Item::Str(s.clone()),
        Value::Blob(b) => Item::Bytes(b.clone()),
        Value::Integer(i) => Item::Int(*i),
        Value::Real(f) => Item::Float(*f),
        Value::Null => return None,
    })
}

fn key_display(raw: i64, key: &Value) -> String {
    match key_item(raw, key) {
        Ok(k) => k.display("key"),
        Err(_) if raw == 0 => "<pickled key>".to_owned(),
        Err(_) => "None".to_owned(),
    }
}

/// The value file of a row, refusing paths that leave the shard directory.
pub fn value_path(dir: &Path, filename: &str) -> Option<PathBuf> {
    let rel = Path::new(filename);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

/// What reading one row gave, before the retry of vanished value files.
enum RowRead {
    Done(Read),
    /// The value file is missing: the row may have been replaced meanwhile.
    FileMissing(EntryId, String, String),
}

/// A diskcache `Cache`, `FanoutCache` or `Index` directory.
pub struct DiskcacheSource {
    shards: Vec<Shard>,
}

impl std::fmt::Debug for DiskcacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskcacheSource")
            .field(
                "shards",
                &self.shards.iter().map(|s| &s.dir).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl DiskcacheSource {
    /// Opens the diskcache directory `dir` (a single store, or numbered shard
    /// directories). `writable` is needed for [`Source::remove_unchanged`]; without it
    /// a read-only source is opened read-only.
    pub fn open(dir: &Path, writable: bool) -> Result<Self, SourceError> {
        let shards = crate::shards::find(dir, FORMAT, DISKCACHE_DB, |_| true)?
            .into_iter()
            .map(|(name, d)| Shard::open(name, d, writable))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DiskcacheSource { shards })
    }

    /// Whether the source is a diskcache `Index` (a cache that never evicts: its
    /// settings record `eviction_policy = 'none'`).
    pub fn is_index(&self) -> bool {
        !self.shards.is_empty()
            && self.shards.iter().all(|s| {
                s.conn
                    .query_row(
                        "SELECT value FROM Settings WHERE key = 'eviction_policy'",
                        [],
                        |r| r.get::<_, String>(0),
                    )
                    .is_ok_and(|v| v == "none")
            })
    }

    /// Whether the source is sharded (a `FanoutCache`).
    pub fn is_fanout(&self) -> bool {
        self.shards.len() > 1 || self.shards.first().is_some_and(|s| !s.name.is_empty())
    }

    fn read_row(&self, id: EntryId, opts: &ReadOptions) -> Result<RowRead, SourceError> {
        let shard = &self.shards[id.shard];
        let Some(row) = shard.fetch(id.row)? else {
            return Ok(RowRead::Done(Read::Vanished(id)));
        };
        let unsupported = |reason: String| {
            Ok(RowRead::Done(Read::Unsupported {
                id,
                key: key_display(row.raw, &row.key),
                reason,
            }))
        };
        let key = match key_item(row.raw, &row.key) {
            Ok(k) => k,
            Err(reason) => return unsupported(reason),
        };
        if let (Some(e), Some(now)) = (row.expire_time, opts.expired_before)
            && e <= now
        {
            return Ok(RowRead::Done(Read::Expired { id, key }));
        }
        if let Some(max) = opts.max_value_size
            && row.size.unwrap_or(0).max(0) as u64 > max
        {
            return Ok(RowRead::Done(Read::TooLarge { id, key }));
        }
        let file = |row: &RowVersion| -> Result<Vec<u8>, RowRead> {
            let Some(name) = row.filename.as_deref() else {
                return Err(RowRead::Done(Read::Unsupported {
                    id,
                    key: key_display(row.raw, &row.key),
                    reason: "file-backed value without a filename".into(),
                }));
            };
            let Some(path) = value_path(&shard.dir, name) else {
                return Err(RowRead::Done(Read::Failed {
                    id,
                    key: key_display(row.raw, &row.key),
                    error: format!("value file name {name:?} leaves the cache directory"),
                }));
            };
            std::fs::read(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    RowRead::FileMissing(
                        id,
                        key_display(row.raw, &row.key),
                        path.display().to_string(),
                    )
                } else {
                    RowRead::Done(Read::Failed {
                        id,
                        key: key_display(row.raw, &row.key),
                        error: format!("reading value file {} failed: {e}", path.display()),
                    })
                }
            })
        };
        let value = match row.mode {
            Some(1) => match raw_item(&row.value) {
                Some(v) => v,
                None => return unsupported("raw value is NULL".into()),
            },
            Some(4) if !matches!(row.value, Value::Null) => match &row.value {
                Value::Blob(b) => Item::Pickle(b.clone()),
                _ => return unsupported("inline pickle is not a BLOB".into()),
            },
            Some(m @ 2..=4) => match file(&row) {
                Ok(bytes) => match m {
                    2 => Item::Bytes(bytes),
                    3 => match String::from_utf8(bytes) {
                        Ok(s) => Item::Str(s),
                        Err(_) => {
                            return Ok(RowRead::Done(Read::Failed {
                                id,
                                key: key_display(row.raw, &row.key),
                                error: "text value file is not UTF-8".into(),
                            }));
                        }
                    },
                    _ => Item::Pickle(bytes),
                },
                Err(r) => return Ok(r),
            },
            other => return unsupported(format!("mode {other:?}")),
        };
        let tag = raw_item(&row.tag);
        Ok(RowRead::Done(Read::Entry(Box::new(Entry {
            id,
            key,
            stored_key: None,
            value,
            expire_at: row.expire_time,
            tag,
            version: crate::RowVersion::Diskcache(row),
        }))))
    }
}

impl Source for DiskcacheSource {
    fn format(&self) -> &'static str {
        FORMAT
    }

    fn shard_names(&self) -> Vec<&str> {
        self.shards.iter().map(|s| s.name.as_str()).collect()
    }

    fn list(&self) -> Result<Vec<Listed>, SourceError> {
        let mut order: Vec<(f64, Listed)> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let mut st = shard.conn.prepare(SCAN).map_err(|e| shard.err(e))?;
            let mut rows = st.query([]).map_err(|e| shard.err(e))?;
            while let Some(r) = rows.next().map_err(|e| shard.err(e))? {
                let rowid: i64 = r.get(0).map_err(|e| shard.err(e))?;
                let access: Option<f64> = r.get(1).map_err(|e| shard.err(e))?;
                let raw: i64 = r.get(2).map_err(|e| shard.err(e))?;
                let key: Value = r.get(3).map_err(|e| shard.err(e))?;
                let non_str_key = match key {
                    Value::Null => None,
                    k => key_item(raw, &k).ok(),
                };
                order.push((
                    access.unwrap_or(0.0),
                    Listed {
                        id: EntryId {
                            shard: i,
                            row: rowid,
                        },
                        non_str_key,
                    },
                ));
            }
        }
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        Ok(order.into_iter().map(|(_, l)| l).collect())
    }

    fn has_str_key(&self, key: &str) -> Result<bool, SourceError> {
        for shard in &self.shards {
            let mut st = shard
                .conn
                .prepare_cached(HAS_TEXT_KEY)
                .map_err(|e| shard.err(e))?;
            if st.exists([key]).map_err(|e| shard.err(e))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn read_batch(&self, ids: &[EntryId], opts: &ReadOptions) -> Result<Vec<Read>, SourceError> {
        let mut out: Vec<Option<Read>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        let mut open: BTreeMap<usize, ()> = BTreeMap::new();
        let result = (|| {
            for (i, &id) in ids.iter().enumerate() {
                let Some(shard) = self.shards.get(id.shard) else {
                    out.push(Some(Read::Vanished(id)));
                    continue;
                };
                if open.insert(id.shard, ()).is_none() {
                    // A read transaction per shard and batch: one snapshot.
                    shard
                        .conn
                        .execute_batch("BEGIN")
                        .map_err(|e| shard.err(e))?;
                }
                match self.read_row(id, opts)? {
                    RowRead::Done(r) => out.push(Some(r)),
                    RowRead::FileMissing(..) => {
                        out.push(None);
                        missing.push(i);
                    }
                }
            }
            Ok(())
        })();
        for &s in open.keys() {
            let shard = &self.shards[s];
            if let Err(e) = shard.conn.execute_batch("COMMIT")
                && result.is_ok()
            {
                return Err(shard.err(e));
            }
        }
        result?;
        // A value file that vanished under the snapshot: the row was replaced or
        // removed meanwhile; read it again, now.
        for i in missing {
            out[i] = Some(match self.read_row(ids[i], opts)? {
                RowRead::Done(r) => r,
                RowRead::FileMissing(id, key, path) => Read::Failed {
                    id,
                    key,
                    error: format!("value file {path} is missing"),
                },
            });
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn remove_unchanged(&self, entries: &[&Entry]) -> Result<Removed, SourceError> {
        let mut total = Removed::default();
        for (si, shard) in self.shards.iter().enumerate() {
            let mine: Vec<&&Entry> = entries.iter().filter(|e| e.id.shard == si).collect();
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
                let mut st = tx
                    .prepare_cached(DELETE_UNCHANGED)
                    .map_err(|e| shard.err(e))?;
                for e in &mine {
                    let crate::RowVersion::Diskcache(r) = &e.version else {
                        continue;
                    };
                    let n = st
                        .execute(params![
                            e.id.row,
                            r.key,
                            r.raw,
                            r.store_time,
                            r.expire_time,
                            r.tag,
                            r.mode,
                            r.filename,
                            r.value
                        ])
                        .map_err(|e| shard.err(e))?;
                    if n > 0 {
                        total.removed += 1;
                        if let Some(f) = &r.filename {
                            files.push(f.clone());
                        }
                    } else {
                        total.changed += 1;
                    }
                }
            }
            tx.commit().map_err(|e| shard.err(e))?;
            for f in files {
                if let Some(path) = value_path(&shard.dir, &f) {
                    // diskcache removes the two-level directory when it is empty.
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

    fn make(dir: &Path) -> Connection {
        let c = Connection::open(dir.join(DISKCACHE_DB)).expect("open");
        c.execute_batch(
            "CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, \
             store_time REAL, expire_time REAL, access_time REAL, access_count INTEGER \
             DEFAULT 0, tag BLOB, size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, \
             filename TEXT, value BLOB)",
        )
        .expect("schema");
        c
    }

    #[test]
    fn typed_rows_in_access_order_and_remove_unchanged() {
        let tmp = tempfile::tempdir().expect("tmp");
        let c = make(tmp.path());
        // (key, raw, value, mode, filename, access_time)
        type Row<'a> = (Value, i64, Value, i64, Option<&'a str>, f64);
        let rows: [Row<'_>; 5] = [
            (
                Value::Text("k".into()),
                1,
                Value::Text("v".into()),
                1,
                None,
                3.0,
            ),
            (Value::Integer(7), 1, Value::Integer(42), 1, None, 1.0),
            (Value::Blob(vec![0xff]), 1, Value::Real(1.5), 1, None, 2.0),
            (
                Value::Blob(vec![0x80, 4]),
                0,
                Value::Blob(vec![0x80, 5]),
                4,
                None,
                4.0,
            ),
            (
                Value::Text("f".into()),
                1,
                Value::Null,
                2,
                Some("ab/cd/x.val"),
                5.0,
            ),
        ];
        for (key, raw, value, mode, file, access) in &rows {
            c.execute(
                "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, tag, \
                 mode, filename, value) VALUES (?1, ?2, 0, NULL, ?3, 't', ?4, ?5, ?6)",
                params![key, raw, access, mode, file, value],
            )
            .expect("insert");
        }
        std::fs::create_dir_all(tmp.path().join("ab/cd")).expect("mkdir");
        std::fs::write(tmp.path().join("ab/cd/x.val"), b"file bytes").expect("write");
        let src = DiskcacheSource::open(tmp.path(), true).expect("source");
        assert!(!src.is_fanout());
        let listed = src.list().expect("list");
        let order: Vec<i64> = listed.iter().map(|l| l.id.row).collect();
        assert_eq!(order, [2, 3, 1, 4, 5], "ascending access time");
        assert_eq!(listed[0].non_str_key, Some(Item::Int(7)));
        assert_eq!(listed[2].non_str_key, None, "str keys are not loaded");
        let ids: Vec<EntryId> = listed.iter().map(|l| l.id).collect();
        let reads = src.read_batch(&ids, &ReadOptions::default()).expect("read");
        let entries: Vec<&Entry> = reads
            .iter()
            .map(|r| match r {
                Read::Entry(e) => &**e,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(entries[0].value, Item::Int(42));
        assert_eq!(entries[1].key, Item::Bytes(vec![0xff]));
        assert_eq!(entries[1].value, Item::Float(1.5));
        assert_eq!(entries[2].value, Item::Str("v".into()));
        assert_eq!(entries[3].key, Item::Pickle(vec![0x80, 4]));
        assert_eq!(entries[3].value, Item::Pickle(vec![0x80, 5]));
        assert_eq!(entries[4].value, Item::Bytes(b"file bytes".to_vec()));
        assert_eq!(entries[4].tag, Some(Item::Str("t".into())));
        assert!(src.has_str_key("k").expect("query"));
        assert!(!src.has_str_key("7").expect("query"));

        // A row changed after it was read is kept.
        c.execute("UPDATE Cache SET value = 'changed' WHERE rowid = 1", [])
            .expect("update");
        let removed = src.remove_unchanged(&entries).expect("remove");
        assert_eq!(
            removed,
            Removed {
                removed: 4,
                changed: 1
            }
        );
        assert!(
            !tmp.path().join("ab").exists(),
            "file and its directories removed"
        );
        let left: i64 = c
            .query_row("SELECT count(*) FROM Cache", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 1);
    }

    #[test]
    fn expired_missing_files_and_bad_dirs() {
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            DiskcacheSource::open(&tmp.path().join("nope"), false),
            Err(SourceError::Missing(_))
        ));
        let e = DiskcacheSource::open(tmp.path(), false).expect_err("empty");
        assert!(
            e.to_string().contains("is not a diskcache directory"),
            "{e}"
        );
        let c = make(tmp.path());
        c.execute_batch(
            "INSERT INTO Cache (key, raw, expire_time, access_time, mode, size, filename) \
             VALUES ('old', 1, 1.0, 0, 2, 3, 'aa/bb/gone.val'), \
             ('gone', 1, NULL, 1, 2, 3, 'aa/bb/gone.val'), \
             ('big', 1, NULL, 2, 2, 99, 'aa/bb/big.val'), \
             ('evil', 1, NULL, 3, 2, 3, '../../etc/passwd')",
        )
        .expect("insert");
        let src = DiskcacheSource::open(tmp.path(), false).expect("source");
        let ids: Vec<EntryId> = src.list().expect("list").iter().map(|l| l.id).collect();
        let mut ids2 = ids.clone();
        ids2.push(EntryId { shard: 0, row: 999 });
        let opts = ReadOptions {
            expired_before: Some(10.0),
            max_value_size: Some(50),
        };
        let reads = src.read_batch(&ids2, &opts).expect("read");
        assert!(matches!(reads[0], Read::Expired { .. }), "{:?}", reads[0]);
        assert!(
            matches!(&reads[1], Read::Failed { error, .. } if error.contains("missing")),
            "{:?}",
            reads[1]
        );
        assert!(matches!(reads[2], Read::TooLarge { .. }), "{:?}", reads[2]);
        assert!(
            matches!(&reads[3], Read::Failed { error, .. } if error.contains("leaves")),
            "{:?}",
            reads[3]
        );
        assert!(matches!(reads[4], Read::Vanished(_)));
    }
}
