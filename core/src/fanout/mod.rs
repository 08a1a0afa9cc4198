//! Sharded stores: keys routed to one of N independent stores, so writers to different
//! shards proceed in parallel (each shard has its own database and write lock).
//!
//! A fanout is a [`Store`] over a [`FanoutEngine`], the engine that routes each key to
//! its shard: so it has the whole store API ([`Fanout`] dereferences to it), with
//! routing written once. What differs: a transaction runs on the shard of a key
//! ([`Fanout::transact`], [`Fanout::begin`]); batches are atomic per shard.
//!
//! A fanout directory holds `sciqlop-fanout.toml` (format, kind, shard count) and one
//! store directory per shard: `000`, `001`, … Keys are routed by [`shard_of`]: xxh3-64
//! of the key's UTF-8 bytes modulo the shard count, stable across processes, platforms
//! and releases. The shard count is fixed at creation; reopening with another count is
//! [`Error::ShardCountMismatch`] rather than silent misrouting.
//!
//! ```
//! use sciqlop_cache::{FanoutCache, SetOptions};
//! let dir = tempfile::tempdir()?;
//! let cache = FanoutCache::builder().shards(4).max_size(1 << 30).open(dir.path())?;
//! cache.set("key", b"value")?;
//! assert_eq!(cache.get("key")?.as_deref(), Some(&b"value"[..]));
//! // A transaction runs on the shard of its key.
//! cache.transact("counter", |tx| {
//!     let n = tx.incr("counter", 1, 0)?;
//!     tx.incr("counter", n, 0)
//! })?;
//! assert_eq!(cache.get_counter("counter")?, Some(2));
//! # Ok::<(), sciqlop_cache::Error>(())
//! ```

mod engine;
mod marker;

#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::hash::xxh3_64;

use crate::engine::{Engine, Reopen};
use crate::options::Builder;
use crate::policy::Policy;
#[cfg(feature = "sqlite")]
use crate::policy::{CacheKind, IndexKind};
use crate::store::{Store, Transaction};
use crate::{Error, Result};

pub use engine::FanoutEngine;
#[cfg(feature = "sqlite")]
pub(crate) use marker::looks_like_fanout;
pub use marker::{MARKER, shard_count_on_disk};

/// The shard of `key` among `count` shards: xxh3-64 of the key's UTF-8 bytes modulo
/// `count`. Part of the on-disk format: it never changes.
///
/// ```
/// assert_eq!(sciqlop_cache::fanout::shard_of("key", 8), sciqlop_cache::fanout::shard_of("key", 8));
/// assert!(sciqlop_cache::fanout::shard_of("anything", 8) < 8);
/// ```
pub fn shard_of(key: &str, count: u32) -> u32 {
    (xxh3_64(key.as_bytes()) % u64::from(count.max(1))) as u32
}

/// Shard count of a new fanout directory when none is given.
pub const DEFAULT_SHARDS: u32 = 8;
/// Most shards a fanout may have.
pub const MAX_SHARDS: u32 = 1024;

/// N stores of kind `P` behind one key space. See the [module docs](self).
///
/// A fanout has the whole [`Store`] API: it dereferences to a `Store` over a
/// [`FanoutEngine`], which decides where each call runs.
///
/// - **One key, one shard.** A method of one key (`get`, `get_with`, `set`, `set_with`,
///   `add`, `delete`, `pop`, `contains`, `entry_info`, `touch`, `incr`/`decr`,
///   `compare_and_swap`, the locks) runs on the key's shard (by [`shard_of`]), atomic as
///   on a single store; writers of keys of different shards never wait for each other.
/// - **Batches, shard by shard.** `set_many` and `get_many` split their keys by shard:
///   `set_many` is atomic per shard, not across them
///   ([`Capabilities::atomic_batches`](crate::Capabilities::atomic_batches) is false).
/// - **Every shard.** `len`, `size`, `count_prefix`, `keys`/`keys_page` (merged in byte
///   order), `volume`, `stats`, `check` (one report for all), `maintain` and `evict`
///   visit the shards one after the other and add up their answers (not one snapshot).
///   `clear`, `delete_prefix`, `evict_tag` and `expire` change every shard, each
///   atomically but not all together, and are refused inside a transaction
///   ([`Error::InvalidArgument`]).
/// - **Transactions, on one shard.** [`transact`](Self::transact) and
///   [`begin`](Self::begin) take the key whose shard they run on; a write of a key of
///   another shard inside is [`Error::WrongShard`]. An
///   [optimistic](Store::optimistic) transaction must keep to the keys of one shard
///   ([`Error::Unsupported`] at its commit).
/// - **The whole fanout.** Namespaces exist in every shard; [metadata](Store::metadata)
///   lives in shard 0; the [size bound](Store::set_max_size) is split evenly among the
///   shards.
///
/// Each method fails as its `Store` documentation says (`# Errors`), with the error of
/// the shard it ran on; a method over every shard stops at the first shard that fails
/// (the shards before it keep what was done).
///
/// ```
/// use sciqlop_cache::FanoutCache;
/// let dir = tempfile::tempdir()?;
/// let cache = FanoutCache::builder().shards(4).open(dir.path())?;
/// assert_eq!(cache.shard_count(), 4);
///
/// // One key, one shard.
/// cache.set("a", b"1")?;
/// assert_eq!(cache.get("a")?.as_deref(), Some(&b"1"[..]));
///
/// // Every shard: the keys are spread over them, the totals add up.
/// cache.set_many((0..99).map(|i| (format!("k{i:02}"), b"v")))?;
/// assert_eq!(cache.len()?, 100);
/// assert_eq!(cache.shards().iter().map(|s| s.len()).sum::<Result<u64, _>>()?, 100);
/// let keys: Vec<String> = cache.keys_with_prefix("k").collect::<Result<_, _>>()?;
/// assert_eq!((keys[0].as_str(), keys.len()), ("k00", 99)); // in byte order
/// assert!(cache.check(false)?.ok);
/// assert_eq!(cache.clear()?, 100);
/// assert!(cache.is_empty()?);
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
pub struct Fanout<P: Policy, E: Engine = crate::store::DefaultShardEngine> {
    store: Store<P, FanoutEngine<E>>,
}

/// Sharded [`Cache`](crate::Cache).
#[cfg(feature = "sqlite")]
pub type FanoutCache = Fanout<CacheKind, crate::engine::sqlite::SqliteEngine>;
/// Sharded [`Index`](crate::Index).
#[cfg(feature = "sqlite")]
pub type FanoutIndex = Fanout<IndexKind, crate::engine::sqlite::SqliteEngine>;

impl<P: Policy, E: Engine> std::ops::Deref for Fanout<P, E> {
    type Target = Store<P, FanoutEngine<E>>;

    /// The whole [`Store`] API, routed to the shards.
    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl<P: Policy, E: Engine> std::fmt::Debug for Fanout<P, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("kind", &P::NAME)
            .field("path", &self.store.path())
            .field("shards", &self.shard_count())
            .finish()
    }
}

/// Builder of a [`Fanout`]: the [`Builder`] settings of the shards plus the shard count.
/// `max_size` bounds the whole fanout (each shard gets an equal part).
#[derive(Debug, Clone)]
pub struct FanoutBuilder<P> {
    inner: Builder<P>,
    shards: Option<u32>,
}

impl<P: Policy> FanoutBuilder<P> {
    /// Number of shards of a new directory (default 8, at most [`MAX_SHARDS`]). An
    /// existing directory keeps its count; asking for another is
    /// [`Error::ShardCountMismatch`] at [`open`](Self::open).
    #[must_use]
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = Some(n);
        self
    }

    /// Applies any shard setting of [`Builder`] (file threshold, clock, limits…).
    ///
    /// ```
    /// use sciqlop_cache::FanoutCache;
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let cache = FanoutCache::builder()
    ///     .shards(2)
    ///     .configure(|b| b.max_key_len(64).busy_timeout(Duration::from_secs(5)))
    ///     .open(dir.path())?;
    /// assert!(cache.set(&"k".repeat(65), b"v").is_err());
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(Builder<P>) -> Builder<P>) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Bound on the bytes of values of the whole fanout (see [`Builder::max_size`]).
    #[must_use]
    pub fn max_size(self, bytes: u64) -> Self {
        self.configure(|b| b.max_size(bytes))
    }

    /// Values of at least `bytes` bytes are stored in their own file, in every shard
    /// (default 8 KiB; see [`Builder::file_threshold`]).
    #[must_use]
    pub fn file_threshold(self, bytes: usize) -> Self {
        self.configure(|b| b.file_threshold(bytes))
    }

    /// The clock of every shard, in place of the wall clock (for tests of expiry and
    /// LRU: see [`ManualClock`](crate::ManualClock) and [`Builder::clock`]).
    #[must_use]
    pub fn clock(self, clock: Arc<dyn crate::Clock>) -> Self {
        self.configure(|b| b.clock(clock))
    }

    /// How often each shard's background thread flushes recency, purges expired
    /// entries and evicts (default 1 s; `Duration::ZERO`: no threads, see
    /// [`Builder::maintenance_interval`]).
    #[must_use]
    pub fn maintenance_interval(self, every: Duration) -> Self {
        self.configure(|b| b.maintenance_interval(every))
    }

    /// Opens (creating if needed) the fanout in directory `path`: its marker file, then
    /// one SQLite store per shard (`000`, `001`, …).
    ///
    /// ```
    /// use sciqlop_cache::{Error, FanoutCache};
    /// let dir = tempfile::tempdir()?;
    /// let cache = FanoutCache::builder().shards(4).max_size(1 << 30).open(dir.path())?;
    /// assert_eq!(cache.shard_count(), 4);
    /// drop(cache);
    /// // The count is fixed at creation.
    /// let other = FanoutCache::builder().shards(8).open(dir.path());
    /// assert!(matches!(other, Err(Error::ShardCountMismatch { on_disk: 4, .. })));
    /// assert_eq!(FanoutCache::open(dir.path())?.shard_count(), 4);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`]: the shard count is not between 1 and
    ///   [`MAX_SHARDS`], or `P` is [`AnyKind`](crate::AnyKind) (a fanout is opened as
    ///   a cache or an index).
    /// - [`Error::ShardCountMismatch`]: [`shards`](Self::shards) asked for another count
    ///   than the directory's (from its marker, or from its shard directories when the
    ///   marker is gone).
    /// - [`Error::WrongKind`]: the directory holds a fanout of another kind, or a
    ///   single store.
    /// - [`Error::NotACache`]: the directory holds another program's store or files and
    ///   no fanout, or a marker file that is not a valid fanout marker.
    /// - [`Error::NotADirectory`]: `path` exists and is not a directory.
    /// - [`Error::Io`]: the directory or the marker file cannot be created or read.
    /// - Any error of opening a shard's store (see [`Store::open`]), e.g.
    ///   [`Error::ReadOnly`] or [`Error::Busy`].
    #[cfg(feature = "sqlite")]
    pub fn open(
        self,
        path: impl AsRef<Path>,
    ) -> Result<Fanout<P, crate::engine::sqlite::SqliteEngine>> {
        use crate::engine::sqlite::SqliteEngine;
        let dir = path.as_ref();
        if let Some(n) = self.shards
            && !(1..=MAX_SHARDS).contains(&n)
        {
            return Err(Error::InvalidArgument(format!(
                "shard count must be between 1 and {MAX_SHARDS}, not {n}"
            )));
        }
        let kind = P::KIND.ok_or_else(|| {
            Error::InvalidArgument("a fanout is opened as a cache or an index".into())
        })?;
        if !dir.join(MARKER).exists() {
            // Another library's store, left as it is (no marker, no shard made beside it).
            if let Some(reason) = crate::engine::foreign::foreign_store(dir) {
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason,
                });
            }
            let db = dir.join(crate::engine::DB_FILE);
            if db.exists()
                && let Some(reason) = crate::engine::foreign::original_db(&db)
            {
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason,
                });
            }
            if !db.exists()
                && let Some(found) = crate::engine::foreign::unrelated_fanout_entry(dir)
            {
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason: format!(
                        "it is not empty ({found}) and holds no fanout: open a new or empty directory"
                    ),
                });
            }
        }
        let count =
            marker::read_or_create_marker(dir, kind, self.shards, self.inner.config.read_only)?;
        let config = self.inner.config;
        let mut shard_config = config.clone();
        shard_config.max_size = config.max_size.div_ceil(u64::from(count));
        let shards = (0..count)
            .map(|i| {
                SqliteEngine::open(&marker::shard_dir(dir, i), shard_config.clone(), Some(kind))
            })
            .collect::<Result<Vec<_>>>()?;
        Fanout::from_engine(Arc::new(FanoutEngine::new(dir, shards)?), &config)
    }
}

#[cfg(feature = "sqlite")]
impl<P: Policy> Fanout<P, crate::engine::sqlite::SqliteEngine> {
    /// Opens (creating with [`DEFAULT_SHARDS`], 8, if needed) the fanout in directory
    /// `path`, with default settings; an existing fanout keeps its shard count.
    ///
    /// ```
    /// use sciqlop_cache::FanoutIndex;
    /// let dir = tempfile::tempdir()?;
    /// let index = FanoutIndex::open(dir.path())?;
    /// assert_eq!(index.shard_count(), sciqlop_cache::fanout::DEFAULT_SHARDS);
    /// index.set("dataset/v2", b"metadata")?;
    /// assert!(index.contains("dataset/v2")?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`FanoutBuilder::open`]:
    ///
    /// - [`Error::WrongKind`]: the directory holds a fanout of another kind, or a
    ///   single store.
    /// - [`Error::NotACache`]: the directory holds another program's store or files and
    ///   no fanout, or an invalid marker file.
    /// - [`Error::NotADirectory`]: `path` exists and is not a directory.
    /// - [`Error::InvalidArgument`]: `P` is [`AnyKind`](crate::AnyKind).
    /// - [`Error::Io`]: the directory or the marker file cannot be created or read.
    /// - Any error of opening a shard's store (see [`Store::open`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().open(path)
    }
}

impl<P: Policy, E: Engine> Fanout<P, E> {
    /// A builder to configure the fanout before opening it.
    pub fn builder() -> FanoutBuilder<P> {
        FanoutBuilder {
            inner: Builder::default(),
            shards: None,
        }
    }

    /// A fanout over an open [`FanoutEngine`], with `config`'s key and value limits.
    ///
    /// # Errors
    ///
    /// - [`Error::WrongKind`]: the shards are of another kind than `P`.
    pub fn from_engine(
        engine: Arc<FanoutEngine<E>>,
        config: &crate::options::Config,
    ) -> Result<Self> {
        Ok(Fanout {
            store: Store::from_engine(engine, config)?,
        })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.store.engine().shard_engines().len() as u32
    }

    /// The shard store that holds `key` (bypasses routing: every key used on it must
    /// route there).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::FanoutCache::builder().shards(4).open(dir.path())?;
    /// cache.set("k", b"v")?;
    /// let shard = cache.shard_for("k");
    /// assert_eq!(shard.get("k")?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(shard.len()?, 1);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn shard_for(&self, key: &str) -> Store<P, E> {
        let engines = self.store.engine().shard_engines();
        let i = shard_of(key, engines.len() as u32) as usize;
        self.store.with_engine(engines[i].clone())
    }

    /// Every shard store, in order (bypassing routing, as [`shard_for`](Self::shard_for)).
    pub fn shards(&self) -> Vec<Store<P, E>> {
        self.store
            .engine()
            .shard_engines()
            .iter()
            .map(|e| self.store.with_engine(e.clone()))
            .collect()
    }

    /// Runs `f` in a transaction on the shard of `key`: everything `f` does on that
    /// shard from this thread commits together, or not at all when `f` returns `Err` or
    /// panics, as [`Store::transact`] does on one store; the other shards are not
    /// locked. Every key written inside must route to that shard; another key fails
    /// with [`Error::WrongShard`] (and, returned from `f`, rolls the transaction back).
    /// Use keys with a common routing, e.g. one key per transaction, or check with
    /// [`shard_of`]. Reads of other shards' keys are allowed (outside the transaction).
    /// Operations over every shard (`clear`, `expire`…) are refused inside.
    ///
    /// ```
    /// use sciqlop_cache::{Error, FanoutCache, fanout::shard_of};
    /// let dir = tempfile::tempdir()?;
    /// let cache = FanoutCache::builder().shards(4).open(dir.path())?;
    /// cache.transact("balance", |tx| {
    ///     tx.set("balance", b"100")?;
    ///     tx.decr("balance", 30, 0)
    /// })?;
    /// assert_eq!(cache.get_counter("balance")?, Some(70));
    ///
    /// // A key of another shard is refused, and the transaction rolled back.
    /// let elsewhere = (0..)
    ///     .map(|i| format!("k{i}"))
    ///     .find(|k| shard_of(k, 4) != shard_of("a", 4))
    ///     .expect("a key of another shard");
    /// let r = cache.transact("a", |tx| {
    ///     tx.set("a", b"1")?;
    ///     tx.set(&elsewhere, b"2")
    /// });
    /// assert!(matches!(r, Err(Error::WrongShard { .. })));
    /// assert_eq!(cache.get("a")?, None);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing of the transaction is written when it returns an error:
    ///
    /// - `f`'s own error, returned as it is.
    /// - [`Error::WrongShard`]: begun inside a transaction of another shard; or,
    ///   returned by `f`, a write of a key of another shard.
    /// - [`Error::ReadOnly`]: the fanout is read-only.
    /// - [`Error::Busy`]: another thread's or process's transaction (or write) held the
    ///   shard for longer than the busy timeout, before `f` ran.
    /// - [`Error::TransactionAborted`]: the database rolled the transaction back after
    ///   an error inside it that `f` did not return (e.g. a full disk); retry it.
    ///
    /// The store's errors are converted with `Er::from`. Also the [errors of every
    /// operation](Store#errors-of-every-operation) (from the commit).
    pub fn transact<T, Er: From<Error>>(
        &self,
        key: &str,
        f: impl FnOnce(&Store<P, FanoutEngine<E>>) -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.store.transact_on(key, f)
    }

    /// Begins a transaction on the shard of `key` that the caller ends:
    /// [`Transaction::commit`], or [`Transaction::rollback`] (also what dropping it
    /// does). While it is open, every write of this thread joins it and must be of a
    /// key of that shard ([`Error::WrongShard`] otherwise), as in
    /// [`transact`](Self::transact); it belongs to this thread, like [`Store::begin`]'s.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::FanoutCache::builder().shards(4).open(dir.path())?;
    /// let tx = cache.begin("k")?;
    /// cache.set("k", b"1")?;
    /// tx.rollback();
    /// assert_eq!(cache.get("k")?, None);
    ///
    /// let tx = cache.begin("k")?;
    /// cache.set("k", b"2")?;
    /// tx.commit()?;
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"2"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::WrongShard`]: begun inside a transaction of another shard.
    /// - [`Error::ReadOnly`]: the fanout is read-only.
    /// - [`Error::Busy`]: another thread's or process's transaction (or write) held the
    ///   shard for longer than the busy timeout.
    /// - [`Error::TransactionAborted`]: begun (as a savepoint) inside a transaction the
    ///   database already rolled back.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn begin(&self, key: &str) -> Result<Transaction<'_>> {
        self.store.begin_on(key)
    }
}

impl<P: Policy, E: Reopen> Fanout<P, E> {
    /// Opens the same fanout again with the same settings: a new, independent handle
    /// on every shard (its own connections and background threads), on the same
    /// namespace. A child process made by `fork()` uses this instead of the inherited
    /// handle, as with [`Store::reopen`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::FanoutCache::builder().shards(4).open(dir.path())?;
    /// cache.set("k", b"v")?;
    /// let again = cache.reopen()?;
    /// assert_eq!((again.shard_count(), again.get("k")?.as_deref()), (4, Some(&b"v"[..])));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error of reopening a shard (see [`Store::open`]), e.g.:
    ///
    /// - [`Error::Busy`]: another process held a shard's database locked for longer
    ///   than the busy timeout.
    /// - [`Error::ReadOnly`]: a shard must be recreated (its directory was removed)
    ///   where this process cannot write.
    /// - [`Error::Io`]: a shard's directory cannot be looked into.
    pub fn reopen(&self) -> Result<Self> {
        Ok(Fanout {
            store: self.store.reopen()?,
        })
    }
}
