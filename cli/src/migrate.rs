//! Migration from Python's `diskcache` (5.x) and from the original sciqlop-cache (C++
//! and `pysciqlop-cache` 0.1 to 0.3) to sciqlop-cache, reading their SQLite databases
//! directly. The source's format is detected.
//!
//! # From the original sciqlop-cache
//!
//! Every entry is carried over as it is: the key verbatim (the original's encoding of
//! non-`str` keys is this project's Python package's), the value's bytes (inline or from
//! its file; a pickled `int` becomes a counter so that `incr` keeps working), the
//! absolute expiry (expired entries are skipped), the tag, and the recency order. The
//! destination is of the source's kind (`Cache`, `Index`, `FanoutCache`, `FanoutIndex`,
//! a fanout with the source's shard count, keys re-routed) unless asked otherwise, and
//! records the source's serializer and `max_size` (its `metadata`), so that the Python
//! package reads every value back as the original returned it.
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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sciqlop_cache::{DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_SIZE, SetOptions};
use sciqlop_cache_migrate::diskcache::DiskcacheSource;
pub use sciqlop_cache_migrate::diskcache::{DISKCACHE_DB, is_diskcache_dir};
use sciqlop_cache_migrate::original::OriginalSource;
pub use sciqlop_cache_migrate::original::is_original_dir;
use sciqlop_cache_migrate::{Entry, EntryId, Item, Read, ReadOptions, Source, SourceError};
use serde::Serialize;

use crate::pyrepr;
use crate::store::{AnyStore, StoreError, StoreExt, StoreKind, detect, open_as};

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
    /// Set (by a signal handler, another thread) to stop after the batch being
    /// written: the report then says `interrupted`, and a re-run finishes the job.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
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
            stop: None,
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
    /// Stopped early on request ([`MigrateOptions::stop`]); what was committed stays.
    pub interrupted: bool,
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
    /// The source exists and is not a directory.
    #[error(
        "source {0} is not a directory (give the directory of a diskcache or sciqlop-cache store)"
    )]
    SourceNotADirectory(PathBuf),
    /// The source is neither a diskcache directory nor one of the original sciqlop-cache.
    #[error("{path} is not a diskcache directory nor one of the original sciqlop-cache ({reason})")]
    NotADiskcache {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The source could not be read (a database error).
    #[error(transparent)]
    Source(SourceError),
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

impl From<sciqlop_cache::Error> for MigrateError {
    fn from(e: sciqlop_cache::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

impl From<SourceError> for MigrateError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Missing(p) => MigrateError::SourceMissing(p),
            SourceError::NotASource { path, reason, .. } => {
                MigrateError::NotADiskcache { path, reason }
            }
            other => MigrateError::Source(other),
        }
    }
}

/// The text form of a source key that is not a pickle, or why it has none.
fn key_text(key: &Item) -> Result<String, SkipReason> {
    match key {
        Item::Str(s) => Ok(s.clone()),
        Item::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| SkipReason::NonUtf8Key),
        Item::Int(i) => Ok(i.to_string()),
        Item::Float(f) => Ok(pyrepr::float(*f)),
        Item::Pickle(_) => Err(SkipReason::PickledKey),
    }
}

fn key_display(key: &Item) -> String {
    key.display("key")
}

fn tag_text(tag: &Option<Item>) -> Result<Option<String>, SkipReason> {
    match tag {
        None => Ok(None),
        Some(Item::Bytes(b)) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| SkipReason::NonUtf8Tag),
        Some(Item::Pickle(_)) => Err(SkipReason::Unsupported("pickled tag".into())),
        Some(t) => key_text(t).map(Some),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What becomes of one source entry.
enum Outcome {
    Entry {
        key: String,
        value: Vec<u8>,
        tag: Option<String>,
    },
    Skip(SkipReason),
}

struct Converter {
    dest_kind: StoreKind,
    pickled: PickledValues,
    /// Key texts of non-`str` keys that are also another source key's text.
    collisions: HashSet<String>,
}

impl Converter {
    fn convert(&self, entry: &Entry, now: f64) -> Outcome {
        if let Some(e) = entry.expire_at
            && e <= now
        {
            return Outcome::Skip(SkipReason::Expired);
        }
        let key = match (&entry.stored_key, key_text(&entry.key)) {
            (Some(verbatim), _) => verbatim.clone(),
            (None, Ok(k)) => k,
            (None, Err(r)) => return Outcome::Skip(r),
        };
        if entry.stored_key.is_none()
            && !matches!(entry.key, Item::Str(_))
            && self.collisions.contains(&key)
        {
            return Outcome::Skip(SkipReason::KeyCollision(key));
        }
        if key.len() > DEFAULT_MAX_KEY_LEN {
            return Outcome::Skip(SkipReason::KeyTooLong);
        }
        let tag = match tag_text(&entry.tag) {
            Ok(t) => t,
            Err(r) => return Outcome::Skip(r),
        };
        if !self.dest_kind.has_expiry_and_tags() {
            if entry.expire_at.is_some() {
                return Outcome::Skip(SkipReason::ExpiryInIndex);
            }
            if tag.is_some() {
                return Outcome::Skip(SkipReason::TagInIndex);
            }
        }
        let value = match &entry.value {
            Item::Str(s) => s.clone().into_bytes(),
            Item::Bytes(b) => b.clone(),
            Item::Int(i) => sciqlop_cache::counter::encode(*i),
            Item::Float(f) => pyrepr::float(*f).into_bytes(),
            // The original's pickles are its stored values: always copied.
            Item::Pickle(_)
                if self.pickled == PickledValues::Skip && entry.stored_key.is_none() =>
            {
                return Outcome::Skip(SkipReason::PickledValue);
            }
            Item::Pickle(p) => p.clone(),
        };
        if value.len() as u64 > DEFAULT_MAX_VALUE_SIZE {
            return Outcome::Skip(SkipReason::ValueTooLarge);
        }
        Outcome::Entry { key, value, tag }
    }
}

/// An entry ready to be written, with what is needed to drop it from the source.
struct Pending {
    entry: Box<Entry>,
    /// The key was not a `str` (it must not replace a different destination value).
    converted: bool,
    key: String,
    value: Vec<u8>,
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
        if src.exists() {
            return Err(MigrateError::SourceNotADirectory(src.to_owned()));
        }
        return Err(MigrateError::SourceMissing(src.to_owned()));
    }
    let original = is_original_dir(src);
    if !original && !is_diskcache_dir(src) {
        // The reader says why (no database, unreadable directory).
        DiskcacheSource::open(src, false)?;
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize())
        && a == b
    {
        return Err(MigrateError::Destination {
            path: dst.to_owned(),
            reason: "it is the source directory".into(),
        });
    }
    let mut opts = opts.clone();
    let mut carried: Vec<(&str, String)> = Vec::new();
    let source: Box<dyn Source> = if original {
        let s = OriginalSource::open(src, opts.drop_source)?;
        // The destination is of the source's kind unless asked otherwise.
        if opts.kind.is_none() && opts.shards.is_none() {
            opts.kind = Some(match (s.is_fanout(), s.is_cache()) {
                (false, true) => StoreKind::Cache,
                (false, false) => StoreKind::Index,
                (true, true) => StoreKind::FanoutCache,
                (true, false) => StoreKind::FanoutIndex,
            });
            if s.is_fanout() {
                opts.shards = Some(s.shard_names().len() as u32);
            }
        }
        carried.extend(s.serializer().map(|v| ("serializer", v)));
        carried.extend(s.max_size().map(|v| ("max_size", v.to_string())));
        Box::new(s)
    } else {
        let s = DiskcacheSource::open(src, opts.drop_source)?;
        // A diskcache Index becomes an index (a FanoutCache stays a cache: diskcache
        // has no sharded index).
        if opts.kind.is_none() && opts.shards.is_none() && s.is_index() && !s.is_fanout() {
            opts.kind = Some(StoreKind::Index);
        }
        Box::new(s)
    };
    let opts = &opts;
    let dest = open_destination(dst, opts)?;
    for (name, value) in carried {
        match dest.metadata(name)? {
            None => dest.set_metadata(name, Some(&value))?,
            Some(v) if v == value || name == "max_size" => {}
            Some(v) => {
                return Err(MigrateError::Destination {
                    path: dst.to_owned(),
                    reason: format!(
                        "it records the {name} {v:?}, the source {value:?}: migrate into a new directory"
                    ),
                });
            }
        }
    }
    let shard_names: Vec<String> = source
        .shard_names()
        .into_iter()
        .map(str::to_owned)
        .collect();

    // One snapshot of every entry, in access order; for keys that are not text, the
    // key itself (to find keys whose text form collides).
    let order = source.list()?;
    let mut converted_keys: HashMap<String, u32> = HashMap::new();
    for l in &order {
        if let Some(k) = &l.non_str_key
            && !matches!(k, Item::Pickle(_))
            && let Ok(text) = key_text(k)
        {
            *converted_keys.entry(text).or_insert(0) += 1;
        }
    }
    let mut collisions = HashSet::new();
    for (text, n) in converted_keys {
        if n > 1 || source.has_str_key(&text)? {
            collisions.insert(text);
        }
    }
    let converter = Converter {
        dest_kind: dest.store_kind(),
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
    let read_opts = ReadOptions {
        expired_before: None,
        max_value_size: Some(DEFAULT_MAX_VALUE_SIZE),
    };
    let mut done = 0u64;
    let mut next = 0usize;
    // Rows per read batch: enough to fill a write batch in the common case.
    let read_chunk = batch_size.min(256);
    while next < order.len() {
        // Read a batch: up to batch_size entries or batch_bytes of values.
        let mut pending: Vec<Pending> = Vec::new();
        let mut bytes = 0usize;
        while next < order.len() && pending.len() < batch_size && bytes < opts.batch_bytes {
            let end = (next + read_chunk.min(batch_size - pending.len())).min(order.len());
            let ids: Vec<EntryId> = order[next..end].iter().map(|l| l.id).collect();
            next = end;
            done += ids.len() as u64;
            let now = now_secs();
            let ropts = ReadOptions {
                expired_before: Some(now),
                ..read_opts
            };
            for read in source.read_batch(&ids, &ropts)? {
                handle_read(
                    &converter,
                    &shard_names,
                    read,
                    now,
                    &mut pending,
                    &mut bytes,
                    &mut report,
                );
            }
        }
        let written = write_batch(&dest, &shard_names, pending, &mut report)?;
        if opts.drop_source {
            let entries: Vec<&Entry> = written.iter().map(|p| &*p.entry).collect();
            let removed = source.remove_unchanged(&entries)?;
            report.dropped += removed.removed;
            report.changed_in_source += removed.changed;
        }
        progress(Progress { done, total });
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            report.interrupted = true;
            break;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn handle_read(
    converter: &Converter,
    shard_names: &[String],
    read: Read,
    now: f64,
    pending: &mut Vec<Pending>,
    bytes: &mut usize,
    report: &mut MigrationReport,
) {
    let skipped = |id: EntryId, key: String, reason: SkipReason| Skipped {
        shard: shard_names[id.shard].clone(),
        rowid: id.row,
        key,
        reason,
    };
    match read {
        Read::Entry(entry) => match converter.convert(&entry, now) {
            Outcome::Entry { key, value, tag } => {
                *bytes += value.len();
                pending.push(Pending {
                    converted: entry.stored_key.is_none() && !matches!(entry.key, Item::Str(_)),
                    entry,
                    key,
                    value,
                    tag,
                });
            }
            Outcome::Skip(reason) => {
                report
                    .skipped
                    .push(skipped(entry.id, key_display(&entry.key), reason));
            }
        },
        Read::Expired { id, key } => {
            report
                .skipped
                .push(skipped(id, key_display(&key), SkipReason::Expired));
        }
        Read::TooLarge { id, key } => {
            report
                .skipped
                .push(skipped(id, key_display(&key), SkipReason::ValueTooLarge));
        }
        Read::Vanished(_) => report.vanished += 1,
        Read::Unsupported { id, key, reason } => {
            report
                .skipped
                .push(skipped(id, key, SkipReason::Unsupported(reason)));
        }
        Read::Failed { id, key, error } => report.errors.push(EntryError {
            shard: shard_names[id.shard].clone(),
            rowid: id.row,
            key,
            error,
        }),
    }
}

/// The destination options of an entry; `None` when it has expired by now.
fn set_options(p: &Pending, now: f64) -> Option<SetOptions> {
    let mut o = SetOptions::new();
    if let Some(at) = p.entry.expire_at {
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
    shard_names: &[String],
    pending: Vec<Pending>,
    report: &mut MigrationReport,
) -> Result<Vec<Pending>, MigrateError> {
    let now = now_secs();
    let mut live = Vec::with_capacity(pending.len());
    let mut entries = Vec::with_capacity(pending.len());
    let skipped = |p: &Pending, reason: SkipReason| Skipped {
        shard: shard_names[p.entry.id.shard].clone(),
        rowid: p.entry.id.row,
        key: key_display(&p.entry.key),
        reason,
    };
    for mut p in pending {
        // A key that was not a str never replaces a different destination value: after
        // a `--drop` run moved '5', the int key 5 must not overwrite it.
        if p.converted
            && dest
                .get(&p.key)?
                .is_some_and(|existing| existing != p.value)
        {
            report
                .skipped
                .push(skipped(&p, SkipReason::KeyCollision(p.key.clone())));
            continue;
        }
        match set_options(&p, now) {
            Some(o) => {
                entries.push((p.key.clone(), std::mem::take(&mut p.value), o));
                live.push(p);
            }
            // Expired between reading and writing.
            None => report.skipped.push(skipped(&p, SkipReason::Expired)),
        }
    }
    if entries.is_empty() || dest.set_many_checked(&entries).is_ok() {
        report.migrated += entries.len() as u64;
        return Ok(live);
    }
    // Something in the batch failed: write one by one to find which.
    let mut written = Vec::with_capacity(live.len());
    for (p, (k, v, o)) in live.into_iter().zip(entries) {
        match dest.set_checked(&k, &v, &o) {
            Ok(()) => {
                report.migrated += 1;
                written.push(p);
            }
            Err(StoreError::Cache(
                e @ (sciqlop_cache::Error::KeyTooLong { .. }
                | sciqlop_cache::Error::ValueTooLarge { .. }
                | sciqlop_cache::Error::InvalidArgument(_)),
            )) => report.errors.push(EntryError {
                shard: shard_names[p.entry.id.shard].clone(),
                rowid: p.entry.id.row,
                key: key_display(&p.entry.key),
                error: e.to_string(),
            }),
            // A failure of the destination itself (disk full, read-only…): stop here;
            // what was committed stays, a re-run finishes the job.
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
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
            Ok(open_as(dst, found, opts.shards)?)
        }
        Err(StoreError::Missing(_)) => Ok(open_as(dst, wanted, opts.shards)?),
        Err(StoreError::NotAStore { reason, .. }) => {
            let empty = std::fs::read_dir(dst)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                Ok(open_as(dst, wanted, opts.shards)?)
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
        assert_eq!(key_text(&Item::Int(-7)), Ok("-7".to_owned()));
        assert_eq!(key_text(&Item::Float(0.5)), Ok("0.5".to_owned()));
        assert_eq!(
            key_text(&Item::Bytes(vec![0xff])),
            Err(SkipReason::NonUtf8Key)
        );
        assert_eq!(key_display(&Item::Bytes(b"a\xff".to_vec())), "b'a\\xff'");
        assert_eq!(
            key_display(&Item::Pickle(vec![1, 2])),
            "<pickled key, 2 bytes>"
        );
    }
}
