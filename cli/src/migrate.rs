//! Migration from Python's `diskcache` (5.x) to sciqlop-cache, reading diskcache's SQLite
//! database directly.
//!
//! # What is carried over
//!
//! | diskcache | sciqlop-cache |
//! | --- | --- |
//! | `str` key | the same key |
//! | `bytes` key that is UTF-8 | its text |
//! | `int` key | its decimal text (`42`, `-7`) |
//! | `float` key | Python's `repr` (`1.5`, `1e+16`) |
//! | `str` value (inline or text file) | its UTF-8 bytes |
//! | `bytes` value (inline or binary file) | the same bytes |
//! | `int` value | counter encoding (ASCII decimal), so `incr` keeps working |
//! | `float` value | Python's `repr` as ASCII (`float(value)` gives it back exactly) |
//! | expiry (`expire_time`) | the same absolute expiry (stored as the time remaining when written) |
//! | tag `str` / `int` / `float` / UTF-8 `bytes` | the tag's text, as for keys |
//! | access order (`access_time`) | entries are written in ascending `access_time`, so LRU recency follows the same order |
//!
//! # What is skipped, and why
//!
//! Nothing is changed silently: an entry that has no faithful form is skipped, counted,
//! and listed in [`MigrationReport::skipped`] with a [`SkipReason`]; it stays in the
//! source even with [`MigrateOptions::drop_source`].
//!
//! - Already expired entries ([`SkipReason::Expired`]).
//! - Pickled keys (tuples, `None`, large ints…: [`SkipReason::PickledKey`]) and `bytes`
//!   keys that are not UTF-8 ([`SkipReason::NonUtf8Key`]): our keys are text.
//! - A non-`str` key whose text equals another source key's text, e.g. `5` next to
//!   `'5'`, or `b'a'` next to `'a'` ([`SkipReason::KeyCollision`]): the `str` key is
//!   migrated, the other is skipped, so no entry overwrites another. Likewise a non-`str`
//!   key never replaces a different value already in the destination (so a re-run after
//!   `drop_source` moved `'5'` does not let `5` overwrite it). A `str` key does replace
//!   what the destination holds under the same key.
//! - Pickled values ([`SkipReason::PickledValue`]): unless
//!   [`PickledValues::CopyOpaque`] is asked, in which case the pickle bytes are copied as
//!   they are (readable with `pickle.loads`).
//! - Tags that are `bytes` but not UTF-8 ([`SkipReason::NonUtf8Tag`]).
//! - Into an index: entries with an expiry or a tag ([`SkipReason::ExpiryInIndex`],
//!   [`SkipReason::TagInIndex`]).
//! - Keys longer than 4096 bytes, values larger than 4 GiB.
//!
//! # Consistency
//!
//! The source may be in use by other processes. The list of entries is taken from one
//! consistent snapshot when the migration starts (entries added later are not
//! migrated: run it again); each entry is then re-read by rowid when its turn comes, so
//! the newest committed state is copied. Nothing is written to the source unless
//! `drop_source` is set.
//!
//! With `drop_source`, each batch is committed in the destination first, then deleted
//! from the source in one transaction per source shard, only where the row is unchanged
//! since it was read (a row changed meanwhile is kept, and counted in
//! [`MigrationReport::changed_in_source`]), then the value files of the deleted rows are
//! removed. An interrupted migration can be re-run: an entry present in both places is
//! written again with the same content. A kill between the source commit and the file
//! removal leaves value files without rows in the source directory; diskcache's
//! `Cache.check(fix=True)` removes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sciqlop_cache::{DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_SIZE, SetOptions};
use serde::Serialize;

use crate::pyrepr;
use crate::store::{AnyStore, StoreError, StoreKind, detect};

/// Name of diskcache's database file.
pub const DISKCACHE_DB: &str = "cache.db";

/// What to do with pickled values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PickledValues {
    /// Skip the entry (default): a pickle is not readable outside Python.
    #[default]
    Skip,
    /// Copy the pickle bytes as the value, unchanged (`pickle.loads` reads them back).
    CopyOpaque,
}

/// Options of [`migrate`].
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Kind of the destination. An existing destination keeps its kind (asking for
    /// another is an error); a new one is created of this kind, by default a
    /// [`StoreKind::Cache`] (or a [`StoreKind::FanoutCache`] when `shards` is set).
    pub kind: Option<StoreKind>,
    /// Shard count of a new fanout destination.
    pub shards: Option<u32>,
    /// Delete each entry from the source once it is committed in the destination.
    pub drop_source: bool,
    /// What to do with pickled values.
    pub pickled_values: PickledValues,
    /// Entries per destination transaction (default 1000).
    pub batch_size: usize,
    /// Value bytes per destination transaction before it is committed (default 64 MiB).
    pub batch_bytes: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            kind: None,
            shards: None,
            drop_source: false,
            pickled_values: PickledValues::Skip,
            batch_size: 1000,
            batch_bytes: 64 << 20,
        }
    }
}

/// Why an entry was not migrated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
#[non_exhaustive]
pub enum SkipReason {
    /// The entry had expired.
    Expired,
    /// The key is a pickle (not a str, bytes, int or float).
    PickledKey,
    /// The key is bytes that are not UTF-8.
    NonUtf8Key,
    /// The key's text is also the text of another source key (the `str` one wins).
    KeyCollision(String),
    /// The key is longer than the destination accepts.
    KeyTooLong,
    /// The value is a pickle and [`PickledValues::Skip`] is in force.
    PickledValue,
    /// The value is larger than the destination accepts.
    ValueTooLarge,
    /// The tag is bytes that are not UTF-8.
    NonUtf8Tag,
    /// The entry has an expiry and the destination is an index.
    ExpiryInIndex,
    /// The entry has a tag and the destination is an index.
    TagInIndex,
    /// The row is not in a form diskcache writes (unknown mode, NULL value…).
    Unsupported(String),
}

impl SkipReason {
    /// A short stable name of the reason (`expired`, `pickled-key`, …).
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::Expired => "expired",
            SkipReason::PickledKey => "pickled-key",
            SkipReason::NonUtf8Key => "non-utf8-key",
            SkipReason::KeyCollision(_) => "key-collision",
            SkipReason::KeyTooLong => "key-too-long",
            SkipReason::PickledValue => "pickled-value",
            SkipReason::ValueTooLarge => "value-too-large",
            SkipReason::NonUtf8Tag => "non-utf8-tag",
            SkipReason::ExpiryInIndex => "expiry-in-index",
            SkipReason::TagInIndex => "tag-in-index",
            SkipReason::Unsupported(_) => "unsupported",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Expired => f.write_str("expired"),
            SkipReason::PickledKey => f.write_str("pickled key (no text form)"),
            SkipReason::NonUtf8Key => f.write_str("bytes key that is not UTF-8"),
            SkipReason::KeyCollision(k) => {
                write!(f, "its text {k:?} is also the key of another source entry")
            }
            SkipReason::KeyTooLong => {
                write!(f, "key longer than {DEFAULT_MAX_KEY_LEN} bytes")
            }
            SkipReason::PickledValue => {
                f.write_str("pickled value (copy it with --copy-pickled-values)")
            }
            SkipReason::ValueTooLarge => {
                write!(f, "value larger than {DEFAULT_MAX_VALUE_SIZE} bytes")
            }
            SkipReason::NonUtf8Tag => f.write_str("bytes tag that is not UTF-8"),
            SkipReason::ExpiryInIndex => f.write_str("has an expiry, which an index cannot hold"),
            SkipReason::TagInIndex => f.write_str("has a tag, which an index cannot hold"),
            SkipReason::Unsupported(why) => write!(f, "unsupported row: {why}"),
        }
    }
}

/// A source entry that was not migrated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The source shard directory name (`000`…), empty for a single store.
    pub shard: String,
    /// The row id in the source `Cache` table.
    pub rowid: i64,
    /// The source key, as Python would print it (`'text'`, `b'\xff'`, `42`, `<pickle>`).
    pub key: String,
    /// Why it was skipped.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A source entry whose copy failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// The source shard directory name, empty for a single store.
    pub shard: String,
    /// The row id in the source `Cache` table.
    pub rowid: i64,
    /// The source key, as Python would print it.
    pub key: String,
    /// What went wrong.
    pub error: String,
}

/// The outcome of [`migrate`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationReport {
    /// Entries in the source when the migration started.
    pub source_entries: u64,
    /// Entries written to the destination.
    pub migrated: u64,
    /// Entries not migrated, with the reason.
    pub skipped: Vec<Skipped>,
    /// Entries whose copy failed (they stay in the source).
    pub errors: Vec<EntryError>,
    /// Entries deleted from the source (with `drop_source`).
    pub dropped: u64,
    /// Entries migrated but left in the source because they changed there meanwhile
    /// (with `drop_source`; a re-run copies their new state).
    pub changed_in_source: u64,
    /// Entries that vanished from the source during the migration (deleted or evicted
    /// by another process).
    pub vanished: u64,
    /// Wall-clock time of the migration.
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl MigrationReport {
    /// Number of skipped entries per reason code.
    pub fn skip_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            *m.entry(s.reason.code()).or_insert(0) += 1;
        }
        m
    }

    /// Migrated entries per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.migrated as f64 / secs
        } else {
            0.0
        }
    }
}

/// Progress of a running migration, passed to the callback of
/// [`migrate_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Source entries handled so far (migrated, skipped or failed).
    pub done: u64,
    /// Source entries to handle.
    pub total: u64,
}

/// Why a migration could not run (per-entry problems are in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source directory does not exist.
    #[error("source directory {0} does not exist")]
    SourceMissing(PathBuf),
    /// The source is not a diskcache directory.
    #[error("{path} is not a diskcache directory ({reason})")]
    NotADiskcache {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A database error in the source.
    #[error("reading diskcache database {path} failed: {source}")]
    Source {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The destination is not usable.
    #[error("destination {path}: {reason}")]
    Destination {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The destination store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `dir` looks like a diskcache directory: a `cache.db`, or numbered shard
/// directories holding one (a `FanoutCache`).
pub fn is_diskcache_dir(dir: &Path) -> bool {
    source_dbs(dir).is_ok_and(|v| !v.is_empty())
}

/// The shard directories of a diskcache directory: `[(name, dir)]`, the name empty for a
/// single store.
fn source_dbs(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    if dir.join(DISKCACHE_DB).is_file() {
        return Ok(vec![(String::new(), dir.to_owned())]);
    }
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && entry.path().join(DISKCACHE_DB).is_file()
        {
            shards.push((name, entry.path()));
        }
    }
    shards.sort_by_key(|(name, _)| name.parse::<u64>().unwrap_or(u64::MAX));
    Ok(shards)
}

/// One source database.
struct Shard {
    name: String,
    dir: PathBuf,
    db: PathBuf,
    conn: Connection,
}

impl Shard {
    fn open(name: String, dir: PathBuf, writable: bool) -> Result<Self, MigrateError> {
        let db = dir.join(DISKCACHE_DB);
        let err = |source| MigrateError::Source {
            path: db.clone(),
            source,
        };
        let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match Connection::open_with_flags(&db, rw) {
            Ok(c) => c,
            Err(e) if writable => return Err(err(e)),
            Err(_) => Connection::open_with_flags(
                &db,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(err)?,
        };
        conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
        // diskcache's triggers quote their string literals with double quotes.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, true)
            .map_err(err)?;
        if let Err(e) = conn.prepare(ROW_COLUMNS_CHECK) {
            return Err(MigrateError::NotADiskcache {
                path: dir.clone(),
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

    fn err(&self, source: rusqlite::Error) -> MigrateError {
        MigrateError::Source {
            path: self.db.clone(),
            source,
        }
    }

    fn fetch(&self, rowid: i64) -> Result<Option<Row>, MigrateError> {
        let mut st = self.conn.prepare_cached(FETCH).map_err(|e| self.err(e))?;
        st.query_row([rowid], |r| {
            Ok(Row {
                rowid,
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

const ROW_COLUMNS_CHECK: &str = "SELECT rowid, key, raw, store_time, expire_time, access_time, \
     tag, size, mode, filename, value FROM Cache LIMIT 0";
const FETCH: &str = "SELECT key, raw, store_time, expire_time, tag, size, mode, filename, value \
     FROM Cache WHERE rowid = ?1";
const SCAN: &str = "SELECT rowid, access_time, raw, \
     CASE WHEN raw = 1 AND typeof(key) <> 'text' THEN key END FROM Cache";
const HAS_TEXT_KEY: &str = "SELECT 1 FROM Cache WHERE key = ?1 AND raw = 1";
const DELETE_UNCHANGED: &str = "DELETE FROM Cache WHERE rowid = ?1 AND key IS ?2 AND raw IS ?3 \
     AND store_time IS ?4 AND expire_time IS ?5 AND tag IS ?6 AND mode IS ?7 \
     AND filename IS ?8 AND value IS ?9";

/// A source row as read.
#[derive(Debug, Clone)]
struct Row {
    rowid: i64,
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

/// The text form of a raw (non-pickled) source key, or why it has none.
fn key_text(key: &Value) -> Result<String, SkipReason> {
    match key {
        Value::Text(s) => Ok(s.clone()),
        Value::Blob(b) => String::from_utf8(b.clone()).map_err(|_| SkipReason::NonUtf8Key),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Real(f) => Ok(pyrepr::float(*f)),
        Value::Null => Err(SkipReason::Unsupported("NULL key".into())),
    }
}

fn key_display(raw: i64, key: &Value) -> String {
    if raw == 0 {
        return match key {
            Value::Blob(b) => format!("<pickled key, {} bytes>", b.len()),
            _ => "<pickled key>".to_owned(),
        };
    }
    match key {
        Value::Text(s) => pyrepr::str_repr(s),
        Value::Blob(b) => pyrepr::bytes_repr(b),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => pyrepr::float(*f),
        Value::Null => "None".to_owned(),
    }
}

fn tag_text(tag: &Value) -> Result<Option<String>, SkipReason> {
    match tag {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s.clone())),
        Value::Blob(b) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| SkipReason::NonUtf8Tag),
        Value::Integer(i) => Ok(Some(i.to_string())),
        Value::Real(f) => Ok(Some(pyrepr::float(*f))),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The value file of a row, refusing paths that leave the shard directory.
fn value_path(dir: &Path, filename: &str) -> Option<PathBuf> {
    let rel = Path::new(filename);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

/// What became of one row.
enum Outcome {
    Entry {
        key: String,
        value: Vec<u8>,
        expire_at: Option<f64>,
        tag: Option<String>,
    },
    Skip(SkipReason),
    /// The value file is missing: re-read the row (it may have been replaced).
    FileMissing(String),
    Error(String),
}

struct Converter {
    dest_kind: StoreKind,
    pickled: PickledValues,
    /// Key texts of non-`str` keys that are also another source key's text.
    collisions: HashSet<String>,
}

impl Converter {
    fn convert(&self, shard: &Shard, row: &Row, now: f64) -> Outcome {
        if let Some(e) = row.expire_time
            && e <= now
        {
            return Outcome::Skip(SkipReason::Expired);
        }
        if row.raw == 0 {
            return Outcome::Skip(SkipReason::PickledKey);
        }
        let key = match key_text(&row.key) {
            Ok(k) => k,
            Err(r) => return Outcome::Skip(r),
        };
        if !matches!(row.key, Value::Text(_)) && self.collisions.contains(&key) {
            return Outcome::Skip(SkipReason::KeyCollision(key));
        }
        if key.len() > DEFAULT_MAX_KEY_LEN {
            return Outcome::Skip(SkipReason::KeyTooLong);
        }
        let tag = match tag_text(&row.tag) {
            Ok(t) => t,
            Err(r) => return Outcome::Skip(r),
        };
        if !self.dest_kind.has_expiry_and_tags() {
            if row.expire_time.is_some() {
                return Outcome::Skip(SkipReason::ExpiryInIndex);
            }
            if tag.is_some() {
                return Outcome::Skip(SkipReason::TagInIndex);
            }
        }
        if row.size.unwrap_or(0) as u64 > DEFAULT_MAX_VALUE_SIZE {
            return Outcome::Skip(SkipReason::ValueTooLarge);
        }
        let value = match row.mode {
            Some(1) => match &row.value {
                Value::Text(s) => s.clone().into_bytes(),
                Value::Blob(b) => b.clone(),
                Value::Integer(i) => sciqlop_cache::counter::encode(*i),
                Value::Real(f) => pyrepr::float(*f).into_bytes(),
                Value::Null => {
                    return Outcome::Skip(SkipReason::Unsupported("raw value is NULL".into()));
                }
            },
            Some(4) if self.pickled == PickledValues::Skip => {
                return Outcome::Skip(SkipReason::PickledValue);
            }
            Some(4) if !matches!(row.value, Value::Null) => match &row.value {
                Value::Blob(b) => b.clone(),
                _ => {
                    return Outcome::Skip(SkipReason::Unsupported(
                        "inline pickle is not a BLOB".into(),
                    ));
                }
            },
            Some(2..=4) => {
                let Some(name) = row.filename.as_deref() else {
                    return Outcome::Skip(SkipReason::Unsupported(
                        "file-backed value without a filename".into(),
                    ));
                };
                let Some(path) = value_path(&shard.dir, name) else {
                    return Outcome::Error(format!(
                        "value file name {name:?} leaves the cache directory"
                    ));
                };
                match std::fs::read(&path) {
                    Ok(v) => v,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Outcome::FileMissing(path.display().to_string());
                    }
                    Err(e) => {
                        return Outcome::Error(format!(
                            "reading value file {} failed: {e}",
                            path.display()
                        ));
                    }
                }
            }
            other => {
                return Outcome::Skip(SkipReason::Unsupported(format!("mode {other:?}")));
            }
        };
        if value.len() as u64 > DEFAULT_MAX_VALUE_SIZE {
            return Outcome::Skip(SkipReason::ValueTooLarge);
        }
        Outcome::Entry {
            key,
            value,
            expire_at: row.expire_time,
            tag,
        }
    }
}

/// An entry ready to be written, with what is needed to drop it from the source.
struct Pending {
    shard: usize,
    row: Row,
    /// The key was not a `str` (it must not replace a different destination value).
    converted: bool,
    key: String,
    value: Vec<u8>,
    expire_at: Option<f64>,
    tag: Option<String>,
}

/// Copies the diskcache directory `src` into the sciqlop-cache store `dst` (created if
/// needed); see the [module documentation](self) for what is carried over.
pub fn migrate(
    src: &Path,
    dst: &Path,
    opts: &MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    migrate_with_progress(src, dst, opts, &mut |_| {})
}

/// [`migrate`], calling `progress` after each batch.
pub fn migrate_with_progress(
    src: &Path,
    dst: &Path,
    opts: &MigrateOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<MigrationReport, MigrateError> {
    let start = Instant::now();
    if !src.is_dir() {
        return Err(MigrateError::SourceMissing(src.to_owned()));
    }
    let found = source_dbs(src).map_err(|e| MigrateError::NotADiskcache {
        path: src.to_owned(),
        reason: e.to_string(),
    })?;
    if found.is_empty() {
        return Err(MigrateError::NotADiskcache {
            path: src.to_owned(),
            reason: format!("no {DISKCACHE_DB} in it nor in numbered shard directories"),
        });
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize())
        && a == b
    {
        return Err(MigrateError::Destination {
            path: dst.to_owned(),
            reason: "it is the source directory".into(),
        });
    }
    let shards = found
        .into_iter()
        .map(|(name, dir)| Shard::open(name, dir, opts.drop_source))
        .collect::<Result<Vec<_>, _>>()?;
    let dest = open_destination(dst, opts)?;

    // One snapshot per shard: every row's order and, for keys that are not text, the
    // key itself (to find keys whose text form collides).
    let mut order: Vec<(f64, usize, i64)> = Vec::new();
    let mut converted_keys: HashMap<String, u32> = HashMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let mut st = shard.conn.prepare(SCAN).map_err(|e| shard.err(e))?;
        let mut rows = st.query([]).map_err(|e| shard.err(e))?;
        while let Some(r) = rows.next().map_err(|e| shard.err(e))? {
            let rowid: i64 = r.get(0).map_err(|e| shard.err(e))?;
            let access: Option<f64> = r.get(1).map_err(|e| shard.err(e))?;
            order.push((access.unwrap_or(0.0), i, rowid));
            let key: Value = r.get(3).map_err(|e| shard.err(e))?;
            if !matches!(key, Value::Null)
                && let Ok(text) = key_text(&key)
            {
                *converted_keys.entry(text).or_insert(0) += 1;
            }
        }
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut collisions = HashSet::new();
    for (text, n) in converted_keys {
        let mut taken = n > 1;
        for shard in &shards {
            if taken {
                break;
            }
            let mut st = shard
                .conn
                .prepare_cached(HAS_TEXT_KEY)
                .map_err(|e| shard.err(e))?;
            taken = st.exists([&text]).map_err(|e| shard.err(e))?;
        }
        if taken {
            collisions.insert(text);
        }
    }
    let converter = Converter {
        dest_kind: dest.kind(),
        pickled: opts.pickled_values,
        collisions,
    };

    let mut report = MigrationReport {
        source_entries: order.len() as u64,
        ..MigrationReport::default()
    };
    let total = order.len() as u64;
    progress(Progress { done: 0, total });
    let batch_size = opts.batch_size.max(1);
    let mut done = 0u64;
    let mut next = 0usize;
    while next < order.len() {
        // Read a batch: up to batch_size rows or batch_bytes of values.
        let mut pending: Vec<Pending> = Vec::new();
        let mut bytes = 0usize;
        let mut retry: Vec<(usize, i64)> = Vec::new();
        let mut open_tx: Vec<bool> = vec![false; shards.len()];
        let now = now_secs();
        while next < order.len() && pending.len() < batch_size && bytes < opts.batch_bytes {
            let (_, si, rowid) = order[next];
            next += 1;
            done += 1;
            let shard = &shards[si];
            if !open_tx[si] {
                // A read transaction per shard and batch: the rows of a batch come from
                // one snapshot.
                shard
                    .conn
                    .execute_batch("BEGIN")
                    .map_err(|e| shard.err(e))?;
                open_tx[si] = true;
            }
            handle_row(
                &converter,
                shard,
                si,
                rowid,
                now,
                false,
                &mut pending,
                &mut bytes,
                &mut retry,
                &mut report,
            )?;
        }
        for (si, open) in open_tx.iter().enumerate() {
            if *open {
                let shard = &shards[si];
                shard
                    .conn
                    .execute_batch("COMMIT")
                    .map_err(|e| shard.err(e))?;
            }
        }
        // Rows whose value file vanished under the snapshot: read them again.
        for (si, rowid) in retry {
            let mut unused = Vec::new();
            handle_row(
                &converter,
                &shards[si],
                si,
                rowid,
                now,
                true,
                &mut pending,
                &mut bytes,
                &mut unused,
                &mut report,
            )?;
        }
        let written = write_batch(&dest, &shards, pending, &mut report)?;
        if opts.drop_source {
            drop_from_source(&shards, &written, &mut report)?;
        }
        progress(Progress { done, total });
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn handle_row(
    converter: &Converter,
    shard: &Shard,
    si: usize,
    rowid: i64,
    now: f64,
    last_try: bool,
    pending: &mut Vec<Pending>,
    bytes: &mut usize,
    retry: &mut Vec<(usize, i64)>,
    report: &mut MigrationReport,
) -> Result<(), MigrateError> {
    let Some(row) = shard.fetch(rowid)? else {
        report.vanished += 1;
        return Ok(());
    };
    match converter.convert(shard, &row, now) {
        Outcome::Entry {
            key,
            value,
            expire_at,
            tag,
        } => {
            *bytes += value.len();
            pending.push(Pending {
                shard: si,
                converted: !matches!(row.key, Value::Text(_)),
                row,
                key,
                value,
                expire_at,
                tag,
            });
        }
        Outcome::Skip(reason) => report.skipped.push(Skipped {
            shard: shard.name.clone(),
            rowid,
            key: key_display(row.raw, &row.key),
            reason,
        }),
        Outcome::FileMissing(path) if last_try => report.errors.push(EntryError {
            shard: shard.name.clone(),
            rowid,
            key: key_display(row.raw, &row.key),
            error: format!("value file {path} is missing"),
        }),
        Outcome::FileMissing(_) => retry.push((si, rowid)),
        Outcome::Error(error) => report.errors.push(EntryError {
            shard: shard.name.clone(),
            rowid,
            key: key_display(row.raw, &row.key),
            error,
        }),
    }
    Ok(())
}

/// The destination options of an entry; `None` when it has expired by now.
fn set_options(p: &Pending, now: f64) -> Option<SetOptions> {
    let mut o = SetOptions::new();
    if let Some(at) = p.expire_at {
        if at <= now {
            return None;
        }
        // The same absolute expiry as in the source (diskcache stores unix seconds).
        o = o.expire_at(std::time::UNIX_EPOCH + Duration::from_secs_f64(at.min(1e12)));
    }
    if let Some(t) = &p.tag {
        o = o.tag(t.clone());
    }
    Some(o)
}

/// Writes a batch; returns the entries that were committed.
fn write_batch(
    dest: &AnyStore,
    shards: &[Shard],
    pending: Vec<Pending>,
    report: &mut MigrationReport,
) -> Result<Vec<Pending>, MigrateError> {
    let now = now_secs();
    let mut live = Vec::with_capacity(pending.len());
    let mut entries = Vec::with_capacity(pending.len());
    for mut p in pending {
        // A key that was not a str never replaces a different destination value: after
        // a `--drop` run moved '5', the int key 5 must not overwrite it.
        if p.converted
            && dest
                .get(&p.key)?
                .is_some_and(|existing| existing != p.value)
        {
            report.skipped.push(Skipped {
                shard: shards[p.shard].name.clone(),
                rowid: p.row.rowid,
                key: key_display(p.row.raw, &p.row.key),
                reason: SkipReason::KeyCollision(p.key),
            });
            continue;
        }
        match set_options(&p, now) {
            Some(o) => {
                entries.push((p.key.clone(), std::mem::take(&mut p.value), o));
                live.push(p);
            }
            // Expired between reading and writing.
            None => report.skipped.push(Skipped {
                shard: shards[p.shard].name.clone(),
                rowid: p.row.rowid,
                key: key_display(p.row.raw, &p.row.key),
                reason: SkipReason::Expired,
            }),
        }
    }
    if entries.is_empty() || dest.set_many(&entries).is_ok() {
        report.migrated += entries.len() as u64;
        return Ok(live);
    }
    // Something in the batch failed: write one by one to find which.
    let mut written = Vec::with_capacity(live.len());
    for (p, (k, v, o)) in live.into_iter().zip(entries) {
        match dest.set(&k, &v, &o) {
            Ok(()) => {
                report.migrated += 1;
                written.push(p);
            }
            Err(StoreError::Cache(
                e @ (sciqlop_cache::Error::KeyTooLong { .. }
                | sciqlop_cache::Error::ValueTooLarge { .. }
                | sciqlop_cache::Error::InvalidArgument(_)),
            )) => report.errors.push(EntryError {
                shard: shards[p.shard].name.clone(),
                rowid: p.row.rowid,
                key: key_display(p.row.raw, &p.row.key),
                error: e.to_string(),
            }),
            // A failure of the destination itself (disk full, read-only…): stop here;
            // what was committed stays, a re-run finishes the job.
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

/// Deletes committed entries from the source where they are unchanged, then their files.
fn drop_from_source(
    shards: &[Shard],
    written: &[Pending],
    report: &mut MigrationReport,
) -> Result<(), MigrateError> {
    for (si, shard) in shards.iter().enumerate() {
        let mine: Vec<&Pending> = written.iter().filter(|p| p.shard == si).collect();
        if mine.is_empty() {
            continue;
        }
        let mut files = Vec::new();
        let mut deleted = 0u64;
        let mut changed = 0u64;
        let tx = rusqlite::Transaction::new_unchecked(
            &shard.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| shard.err(e))?;
        {
            let mut st = tx
                .prepare_cached(DELETE_UNCHANGED)
                .map_err(|e| shard.err(e))?;
            for p in &mine {
                let r = &p.row;
                let n = st
                    .execute(params![
                        r.rowid,
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
                    deleted += 1;
                    if let Some(f) = &r.filename {
                        files.push(f.clone());
                    }
                } else {
                    changed += 1;
                }
            }
        }
        tx.commit().map_err(|e| shard.err(e))?;
        report.dropped += deleted;
        report.changed_in_source += changed;
        for f in files {
            if let Some(path) = value_path(&shard.dir, &f) {
                let _ = std::fs::remove_file(&path);
                // diskcache removes the two-level directory when it is empty.
                let mut dir = path.parent();
                for _ in 0..2 {
                    match dir {
                        Some(d) if d != shard.dir && std::fs::remove_dir(d).is_ok() => {
                            dir = d.parent();
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(())
}

fn open_destination(dst: &Path, opts: &MigrateOptions) -> Result<AnyStore, MigrateError> {
    let bad = |reason: String| MigrateError::Destination {
        path: dst.to_owned(),
        reason,
    };
    let wanted = opts.kind.unwrap_or(if opts.shards.is_some() {
        StoreKind::FanoutCache
    } else {
        StoreKind::Cache
    });
    if opts.shards.is_some() && !wanted.is_fanout() {
        return Err(bad(format!("a shard count was given for a {wanted} store")));
    }
    match detect(dst) {
        Ok(found) => {
            if let Some(k) = opts.kind
                && k != found
            {
                return Err(bad(format!("it holds a store of kind {found}, not {k}")));
            }
            Ok(AnyStore::open_as(dst, found, opts.shards)?)
        }
        Err(StoreError::Missing(_)) => Ok(AnyStore::open_as(dst, wanted, opts.shards)?),
        Err(StoreError::NotAStore { reason, .. }) => {
            let empty = std::fs::read_dir(dst)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                Ok(AnyStore::open_as(dst, wanted, opts.shards)?)
            } else {
                Err(bad(format!(
                    "it is neither empty nor a sciqlop-cache store ({reason})"
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts() {
        assert_eq!(key_text(&Value::Integer(-7)), Ok("-7".to_owned()));
        assert_eq!(key_text(&Value::Real(0.5)), Ok("0.5".to_owned()));
        assert_eq!(
            key_text(&Value::Blob(vec![0xff])),
            Err(SkipReason::NonUtf8Key)
        );
        assert_eq!(key_display(1, &Value::Blob(b"a\xff".to_vec())), "b'a\\xff'");
        assert_eq!(
            key_display(0, &Value::Blob(vec![1, 2])),
            "<pickled key, 2 bytes>"
        );
    }

    #[test]
    fn value_paths_stay_inside() {
        let d = Path::new("/c");
        assert_eq!(
            value_path(d, "ab/cd/x.val"),
            Some(PathBuf::from("/c/ab/cd/x.val"))
        );
        assert_eq!(value_path(d, "../x.val"), None);
        assert_eq!(value_path(d, "/etc/passwd"), None);
    }
}
