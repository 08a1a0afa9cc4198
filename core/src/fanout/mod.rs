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
    /// Number of shards of a new directory (default 8). An existing directory keeps its
    /// count; asking for another is [`Error::ShardCountMismatch`].
    #[must_use]
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = Some(n);
        self
    }

    /// Applies any shard setting of [`Builder`] (file threshold, clock, limits…).
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

    /// See [`Builder::file_threshold`].
    #[must_use]
    pub fn file_threshold(self, bytes: usize) -> Self {
        self.configure(|b| b.file_threshold(bytes))
    }

    /// See [`Builder::clock`].
    #[must_use]
    pub fn clock(self, clock: Arc<dyn crate::Clock>) -> Self {
        self.configure(|b| b.clock(clock))
    }

    /// See [`Builder::maintenance_interval`].
    #[must_use]
    pub fn maintenance_interval(self, every: Duration) -> Self {
        self.configure(|b| b.maintenance_interval(every))
    }

    /// Opens (creating if needed) the fanout in directory `path`.
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
        let count = marker::read_or_create_marker(dir, kind, self.shards)?;
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
    /// Opens (creating with 8 shards if needed) the fanout in directory `path`.
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

    /// Runs `f` in a transaction on the shard of `key`. Every key written inside must
    /// route to that shard; another key fails with [`Error::WrongShard`] (and, returned
    /// from `f`, rolls the transaction back). Use keys with a common routing, e.g. one
    /// key per transaction, or check with [`shard_of`].
    pub fn transact<T, Er: From<Error>>(
        &self,
        key: &str,
        f: impl FnOnce(&Store<P, FanoutEngine<E>>) -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.store.transact_on(key, f)
    }

    /// Begins a transaction on the shard of `key`; see [`Store::begin`] and
    /// [`transact`](Self::transact) for what it may touch.
    pub fn begin(&self, key: &str) -> Result<Transaction<'_>> {
        self.store.begin_on(key)
    }
}

impl<P: Policy, E: Reopen> Fanout<P, E> {
    /// Opens the same fanout again (see [`Store::reopen`], e.g. after `fork`).
    pub fn reopen(&self) -> Result<Self> {
        Ok(Fanout {
            store: self.store.reopen()?,
        })
    }
}
