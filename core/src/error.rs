//! The error type of every fallible operation.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a cache operation.
///
/// Messages are written for the person reading a log: they say what was being done and
/// with which path or key. Variants are `#[non_exhaustive]` so new failure modes can be
/// added without breaking matches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Io {
        /// What the cache was doing (e.g. "writing value file /x/data/ab/….val").
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An error reported by the engine (SQLite, a server) that has no more specific
    /// variant. The engine's own error is the source (its type is not part of the API).
    #[error("storage engine error in {path}: {source}")]
    Engine {
        /// The database file, or the engine's location.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The path given to `open` exists and is not a directory.
    #[error("cache path {0} exists and is not a directory")]
    NotADirectory(PathBuf),

    /// A path of the store cannot be written (a read-only file system, missing
    /// permission), or the store was opened read-only: the write is refused.
    #[error("{path} is not writable: {reason}")]
    ReadOnly {
        /// What cannot be written: the database file, the store's directory or one of
        /// its directories.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The path (a database file or a directory) is not a sciqlop-cache store (another
    /// application's SQLite file, garbage, or a newer format).
    #[error("{path} is not a sciqlop-cache store: {reason}")]
    NotACache {
        /// The database file or the directory.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },

    /// The directory holds a store of another kind (e.g. an `Index` opened as a `Cache`).
    #[error(
        "{path} holds {} store, not {} store",
        with_article(found),
        with_article(expected)
    )]
    WrongKind {
        /// The directory.
        path: PathBuf,
        /// The kind that was asked for.
        expected: &'static str,
        /// The kind found on disk.
        found: String,
    },

    /// A read-only store opened at rest (without SQLite's locks, as no WAL index could
    /// be made) was changed by another process during this read: the answer could mix
    /// two versions of the database, so it is not given. Reads after this one use
    /// SQLite's locks; try again.
    #[error(
        "{path} was changed by another process during a read of the read-only store; try again"
    )]
    StoreChanged {
        /// The database file.
        path: PathBuf,
    },

    /// The database is damaged.
    #[error("database {path} is corrupt: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// The key is longer than the configured maximum.
    #[error("key of {len} bytes is longer than the maximum of {max} bytes")]
    KeyTooLong {
        /// Length of the rejected key in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },

    /// The value is larger than the configured maximum.
    #[error("value of {len} bytes is larger than the maximum of {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value in bytes.
        len: u64,
        /// The configured maximum.
        max: u64,
    },

    /// An argument is out of its domain (e.g. an expiry too far in the future).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// `incr`/`decr` on a value that is not a counter.
    #[error("value of key {key:?} is not a counter (counters are ASCII decimal i64)")]
    NotACounter {
        /// The key.
        key: String,
    },

    /// `incr`/`decr` would overflow an i64.
    #[error("counter {key:?} would overflow")]
    CounterOverflow {
        /// The key.
        key: String,
    },

    /// The row of a file-backed value points at a file that is gone.
    #[error(
        "value file {path} of key {key:?} is missing (repair the store: `sqcache check --fix`, or check with fix from code)"
    )]
    ValueFileMissing {
        /// The key.
        key: String,
        /// The missing file.
        path: PathBuf,
    },

    /// A file-backed value's file is shorter or longer than recorded.
    #[error(
        "value file {path} of key {key:?} has {actual} bytes, {expected} expected (repair the store: `sqcache check --fix`, or check with fix from code)"
    )]
    ValueFileTruncated {
        /// The key.
        key: String,
        /// The damaged file.
        path: PathBuf,
        /// Size recorded in the database.
        expected: u64,
        /// Size found on disk.
        actual: u64,
    },

    /// The row of a file-backed value names something the store refuses to read: not
    /// one of its own value files (a path outside the store), a link, or not a regular
    /// file. Nothing outside the store is read or deleted.
    #[error(
        "value file {path} of key {key:?} {reason} (repair the store: `sqcache check --fix`, or check with fix from code)"
    )]
    ValueFileInvalid {
        /// The key.
        key: String,
        /// The path as stored (or resolved inside the store).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A value file's bytes do not match the checksum recorded when it was written: it
    /// was changed behind the store's back (or the disk damaged it).
    #[error(
        "value file {path} of key {key:?} was changed since it was written (checksum mismatch; remove the entry: `sqcache check --fix`, or check with fix from code)"
    )]
    ValueFileCorrupt {
        /// The key.
        key: String,
        /// The damaged file.
        path: PathBuf,
    },

    /// A typed value could not be encoded.
    #[error("cannot encode value for key {key:?}: {source}")]
    Encode {
        /// The key.
        key: String,
        /// The codec's error.
        #[source]
        source: postcard::Error,
    },

    /// A stored value could not be decoded as the requested type.
    #[error("value of key {key:?} cannot be decoded as the requested type: {source}")]
    Decode {
        /// The key.
        key: String,
        /// The codec's error.
        #[source]
        source: postcard::Error,
    },

    /// `lock_timeout` gave up.
    #[error("lock {name:?} not acquired within {waited:?}")]
    LockTimeout {
        /// The lock name.
        name: String,
        /// How long it waited.
        waited: std::time::Duration,
    },

    /// A key was used in a transaction of a fanout shard it does not belong to.
    #[error(
        "key {key:?} belongs to shard {key_shard}, not to shard {tx_shard} of this transaction"
    )]
    WrongShard {
        /// The key.
        key: String,
        /// The shard the key routes to.
        key_shard: u32,
        /// The shard of the transaction.
        tx_shard: u32,
    },

    /// A fanout directory was opened with another shard count than it was created with.
    #[error("{path} was created with {on_disk} shards, {requested} requested")]
    ShardCountMismatch {
        /// The directory.
        path: PathBuf,
        /// The count recorded on disk.
        on_disk: u32,
        /// The count asked for.
        requested: u32,
    },

    /// A lock held by another thread or process (a write transaction, a checkpoint) was
    /// not released within the store's busy timeout; nothing was done. Retry, or raise
    /// the timeout (`Builder::busy_timeout`).
    #[error("{path} stayed locked by another writer for more than {timeout:?}; nothing was done")]
    Busy {
        /// The database file (or store directory) that was locked.
        path: PathBuf,
        /// The timeout that ran out.
        timeout: std::time::Duration,
    },

    /// The database rolled the transaction back after an earlier error in it (e.g. the
    /// disk filled up); nothing of it was written. Retry the whole transaction.
    #[error("transaction was rolled back by the database after an earlier error; retry it")]
    TransactionAborted,

    /// The key was rejected by the engine (e.g. a plugin host's key rules).
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// Something that must exist does not (e.g. a remote engine's resource).
    #[error("not found: {0}")]
    NotFound(String),

    /// The host refused to open this store for this plugin.
    #[error("access to store {store:?} denied")]
    AccessDenied {
        /// The store name.
        store: String,
    },

    /// A quota of the plugin (bytes, open handles, …) would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),

    /// An optimistic transaction found that a key it read changed before commit; nothing
    /// was written.
    #[error("transaction conflict: a key it read was changed meanwhile; retry it")]
    Conflict,

    /// The operation does not exist for this engine or in this context.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),

    /// An error reported by a remote engine (the host of a WebAssembly guest).
    #[error("{0}")]
    Remote(String),
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            context: "I/O error".to_owned(),
            source,
        }
    }
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `kind` with its indefinite article ("an index", "a cache", "a fanout").
fn with_article(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}
