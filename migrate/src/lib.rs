//! # sciqlop-cache-migrate
//!
//! Readers of other caches' on-disk formats, for migrating their data into
//! sciqlop-cache. A reader ([`Source`]) lists a source's entries in access order and
//! reads them as typed [`Entry`]s: the key and value as the Python objects the source
//! stored ([`Item`]: `str`, `bytes`, `int`, `float`, or a pickle), the absolute
//! expiry and the tag. What to make of them is the caller's business: the `sqcache`
//! CLI turns them into text keys and raw bytes, the Python package into its own typed
//! keys and serialized values. Readers never write to a source, except
//! [`Source::remove_unchanged`] for a migration that moves entries.
//!
//! Formats: Python `diskcache` 5.x ([`diskcache::DiskcacheSource`]: `Cache`,
//! `FanoutCache`, `Index`) and the original sciqlop-cache, C++ and `pysciqlop-cache`
//! 0.1 to 0.3 ([`original::OriginalSource`]: `Cache`, `Index`, `FanoutCache`,
//! `FanoutIndex`).
//!
//! ```no_run
//! use sciqlop_cache_migrate::{Read, ReadOptions, Source, diskcache::DiskcacheSource};
//! let src = DiskcacheSource::open("old-diskcache".as_ref(), false)?;
//! let listed = src.list()?;
//! let ids: Vec<_> = listed.iter().map(|l| l.id).collect();
//! for read in src.read_batch(&ids, &ReadOptions::default())? {
//!     if let Read::Entry(e) = read {
//!         println!("{:?} = {:?} (expires {:?}, tag {:?})", e.key, e.value, e.expire_at, e.tag);
//!     }
//! }
//! # Ok::<(), sciqlop_cache_migrate::SourceError>(())
//! ```

use std::path::PathBuf;

pub mod diskcache;
pub mod original;
pub mod pyrepr;
mod shards;

/// A source row as read, to recognise it unchanged in [`Source::remove_unchanged`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RowVersion {
    Diskcache(diskcache::RowVersion),
    Original(original::RowVersion),
}

/// A Python object as a source stored it.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// Anything else, as the pickle the source stored (unpickling runs code: only for
    /// sources you trust, and only in Python).
    Pickle(Vec<u8>),
}

impl Item {
    /// The object as Python's `repr` would show it (a pickle as
    /// `<pickled …, N bytes>`), for reports.
    pub fn display(&self, what: &str) -> String {
        match self {
            Item::Str(s) => pyrepr::str_repr(s),
            Item::Bytes(b) => pyrepr::bytes_repr(b),
            Item::Int(i) => i.to_string(),
            Item::Float(f) => pyrepr::float(*f),
            Item::Pickle(b) => format!("<pickled {what}, {} bytes>", b.len()),
        }
    }

    /// The type's name (`str`, `bytes`, `int`, `float`, `pickle`).
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Str(_) => "str",
            Item::Bytes(_) => "bytes",
            Item::Int(_) => "int",
            Item::Float(_) => "float",
            Item::Pickle(_) => "pickle",
        }
    }
}

/// Where an entry is in its source: the shard (index into [`Source::shard_names`]) and
/// the source's own row id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    /// The shard.
    pub shard: usize,
    /// The row in that shard.
    pub row: i64,
}

/// One entry of a listing ([`Source::list`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Where it is.
    pub id: EntryId,
    /// Its key when the key is not a `str` (`str` keys are not loaded while listing,
    /// which keeps a listing of millions of entries small).
    pub non_str_key: Option<Item>,
}

/// One entry as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where it is.
    pub id: EntryId,
    /// The key.
    pub key: Item,
    /// The key as the source stored it, when the source encodes keys as this project's
    /// Python package does (the original's: a non-`str` key is text starting with NUL):
    /// a migration keeps it verbatim.
    pub stored_key: Option<String>,
    /// The value.
    pub value: Item,
    /// When it expires, in Unix seconds, if ever.
    pub expire_at: Option<f64>,
    /// Its tag, if any.
    pub tag: Option<Item>,
    /// The row as read, to recognise it unchanged in [`Source::remove_unchanged`].
    pub(crate) version: RowVersion,
}

/// What became of one entry asked for in [`Source::read_batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// Read.
    Entry(Box<Entry>),
    /// It had expired (with [`ReadOptions::expired_before`]); its value was not read.
    Expired {
        /// Where it is.
        id: EntryId,
        /// Its key.
        key: Item,
    },
    /// Its value is larger than [`ReadOptions::max_value_size`]; not read.
    TooLarge {
        /// Where it is.
        id: EntryId,
        /// Its key.
        key: Item,
    },
    /// It is gone from the source (deleted or evicted since the listing).
    Vanished(EntryId),
    /// The row is not in a form the source's library writes.
    Unsupported {
        /// Where it is.
        id: EntryId,
        /// Its key, shown as Python would (see [`Item::display`]).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading it failed (e.g. its value file is missing or unreadable).
    Failed {
        /// Where it is.
        id: EntryId,
        /// Its key, shown as Python would.
        key: String,
        /// What went wrong.
        error: String,
    },
}

/// Options of [`Source::read_batch`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadOptions {
    /// Entries that expire at or before this Unix time are returned as
    /// [`Read::Expired`] without reading their value.
    pub expired_before: Option<f64>,
    /// Entries whose recorded size is larger are returned as [`Read::TooLarge`]
    /// without reading their value.
    pub max_value_size: Option<u64>,
}

/// How many entries [`Source::remove_unchanged`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed.
    pub removed: u64,
    /// Entries kept because they changed in the source since they were read.
    pub changed: u64,
}

/// Why a source could not be read (per-entry problems are [`Read`] outcomes instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source directory does not exist.
    #[error("source directory {0} does not exist")]
    Missing(PathBuf),
    /// The directory is not a source of this format.
    #[error("{path} is not a {format} directory ({reason})")]
    NotASource {
        /// The directory.
        path: PathBuf,
        /// The format that was expected.
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A database error.
    #[error("reading {format} database {path} failed: {source}")]
    Sqlite {
        /// The format.
        format: &'static str,
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
}

/// A reader of one source directory. A migration lists the entries once (one
/// consistent snapshot), then reads them in batches, each batch from one snapshot,
/// so what is copied is the newest committed state of each entry.
pub trait Source {
    /// The format's name (e.g. `"diskcache"`).
    fn format(&self) -> &'static str;

    /// The names of the source's shards (`[""]` for a single store).
    fn shard_names(&self) -> Vec<&str>;

    /// The serializer the source recorded for its values (the original's Python
    /// package: `pickle`, `msgspec`, …), to record in the destination; `None` when
    /// values are raw or typed [`Item`]s.
    fn serializer(&self) -> Option<String> {
        None
    }

    /// Every entry, in ascending access order (least recently used first), so that
    /// writing them in this order gives the destination the same recency.
    fn list(&self) -> Result<Vec<Listed>, SourceError>;

    /// Whether the source holds an entry whose key is the `str` `key` (to find
    /// non-`str` keys whose text form collides with a `str` key).
    fn has_str_key(&self, key: &str) -> Result<bool, SourceError>;

    /// Reads the entries `ids`, each shard's from one snapshot; one outcome per id, in
    /// order.
    fn read_batch(&self, ids: &[EntryId], opts: &ReadOptions) -> Result<Vec<Read>, SourceError>;

    /// Removes `entries` from the source where they are unchanged since they were read
    /// (one transaction per shard), then their value files. Needs a source opened
    /// writable.
    fn remove_unchanged(&self, entries: &[&Entry]) -> Result<Removed, SourceError>;
}
