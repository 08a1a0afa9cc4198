//! The public store API, written once over the [engine contract](crate::engine).
//!
//! | module | concern |
//! | --- | --- |
//! | `mod.rs` | `Store`: opening, validation, values, counters, namespaces, totals |
//! | `cache` | what only caches offer (expiry, tags, stats, eviction) and memoization |
//! | `keys` | key iteration and prefix operations |
//! | `tx` | transactions (closure and caller-owned), optimistic ones, compare-and-swap |
//! | `locks` | cross-process locks |

mod cache;
mod keys;
mod locks;
mod tx;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Capabilities, Engine, Namespace, Reopen};
use crate::options::{Builder, CheckReport, Config, EntryInfo, SetOptions};
use crate::policy::{Kind, Policy};
use crate::{Error, Result};

pub use keys::Keys;
pub use locks::Lock;
pub use tx::{Optimistic, Transaction};

/// The engine a [`Store`] uses when none is named: SQLite where it is compiled in.
#[cfg(feature = "sqlite")]
pub type DefaultEngine = crate::engine::sqlite::SqliteEngine;
/// The engine a [`Store`] uses when none is named: the host's, inside a plugin.
#[cfg(all(feature = "guest", not(feature = "sqlite")))]
pub type DefaultEngine = crate::engine::guest::GuestEngine;
/// The engine a [`Store`] uses when none is named: chosen at run time.
#[cfg(not(any(feature = "sqlite", feature = "guest")))]
pub type DefaultEngine = dyn Engine;

/// The engine of a fanout's shards when none is named (held by value, so sized): the
/// [`DefaultEngine`], or a handle to one chosen at run time in a build with none.
#[cfg(any(feature = "sqlite", feature = "guest"))]
pub type DefaultShardEngine = DefaultEngine;
/// The engine of a fanout's shards when none is named (held by value, so sized): the
/// [`DefaultEngine`], or a handle to one chosen at run time in a build with none.
#[cfg(not(any(feature = "sqlite", feature = "guest")))]
pub type DefaultShardEngine = Arc<dyn Engine>;

/// A persistent key-value store over an engine `E`; [`Cache`] and [`Index`] are its two
/// kinds on the SQLite engine, and `Store<P, dyn Engine>` chooses the engine at run time
/// (see [`Builder::open_location`]).
///
/// Keys are UTF-8 strings of at most [`max_key_len`](Builder::max_key_len) bytes (4096 by
/// default; the empty key is allowed); values are bytes of at most
/// [`max_value_size`](Builder::max_value_size) (4 GiB by default). With the SQLite
/// engine, values below the file threshold (8 KiB) are stored inline, larger ones in
/// their own file.
///
/// A store is `Send + Sync`: share it by reference or in an `Arc`. Several processes may
/// open the same directory at once. A store is a view of one [namespace](Self::namespace)
/// of its engine (the default one unless made with `namespace`).
///
/// # Errors of every operation
///
/// Every fallible method lists the variants particular to it under its own `# Errors`
/// heading; any of them can also fail with these, on the SQLite engine (other engines
/// report their own failures too, e.g. [`Error::Remote`], [`Error::QuotaExceeded`] or
/// [`Error::Unsupported`] for what they cannot do):
///
/// - [`Error::Io`]: the operating system failed a read or a write (a full disk is an
///   `Io` error of kind [`StorageFull`](std::io::ErrorKind::StorageFull)).
/// - [`Error::Engine`]: SQLite failed in a way no more specific variant describes.
/// - [`Error::Corrupt`]: the database is damaged ([`check`](Self::check) says where,
///   [`salvage`](crate::salvage) copies out what is readable).
/// - [`Error::TransactionAborted`]: the call ran inside a transaction that the database
///   already rolled back after an earlier error (e.g. a full disk); retry the whole
///   transaction.
/// - [`Error::StoreChanged`]: a read of a read-only store opened at rest overlapped a
///   write by another process; try again.
pub struct Store<P: Policy, E: ?Sized + Engine = DefaultEngine> {
    engine: Arc<E>,
    ns: Namespace,
    max_key_len: usize,
    max_value_size: u64,
    /// Keys being computed by `get_or_set_with` in this process.
    inflight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    _kind: PhantomData<P>,
}

/// Full-featured cache on the SQLite engine: expiry, tags, LRU eviction by size,
/// hit/miss statistics.
///
/// ```
/// use sciqlop_cache::{Cache, SetOptions};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let cache = Cache::open(dir.path())?;
/// cache.set("sensor/temp", b"21.5")?;
/// cache.set_with("session/abc", b"token", &SetOptions::new().expire(Duration::from_secs(3600)).tag("session"))?;
/// assert_eq!(cache.get("sensor/temp")?.as_deref(), Some(&b"21.5"[..]));
/// assert_eq!(cache.evict_tag("session")?, 1);
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
#[cfg(feature = "sqlite")]
pub type Cache = Store<crate::policy::CacheKind, crate::engine::sqlite::SqliteEngine>;

/// Bare persistent key-value store on the SQLite engine: no expiry, eviction, tags or
/// statistics overhead.
///
/// ```
/// use sciqlop_cache::Index;
/// let dir = tempfile::tempdir()?;
/// let index = Index::open(dir.path())?;
/// index.set("dataset/v2", b"metadata")?;
/// assert!(index.contains("dataset/v2")?);
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
#[cfg(feature = "sqlite")]
pub type Index = Store<crate::policy::IndexKind, crate::engine::sqlite::SqliteEngine>;

/// A store of any kind on any engine, both found at run time (tools that open whatever
/// they are given: see [`Builder::open_location`]).
pub type AnyStore = Store<crate::policy::AnyKind, dyn Engine>;

impl<P: Policy, E: ?Sized + Engine> std::fmt::Debug for Store<P, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.engine.kind().name)
            .field("engine", &self.engine.capabilities().name)
            .field("path", &self.engine.path())
            .field("namespace", &self.ns.name())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sqlite")]
impl<P: Policy> Store<P, crate::engine::sqlite::SqliteEngine> {
    /// Opens (creating if needed) the store in directory `path` with default settings.
    ///
    /// ```
    /// use sciqlop_cache::Cache;
    /// let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// assert!(cache.is_empty()?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NotADirectory`]: `path` exists and is not a directory.
    /// - [`Error::WrongKind`]: the directory holds a store of another kind, or a fanout.
    /// - [`Error::NotACache`]: the directory holds another program's database or files
    ///   (a store is made only in a new or empty directory).
    /// - [`Error::ReadOnly`]: the store would have to be created (or its format
    ///   upgraded) where this process cannot write.
    /// - [`Error::Busy`]: another process held the database locked (creating it,
    ///   switching it to WAL mode) for longer than the busy timeout.
    /// - [`Error::Io`]: the directory cannot be created or looked into.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().open(path)
    }
}

impl<P: Policy, E: ?Sized + Engine> Store<P, E> {
    /// A builder to configure the store before opening it.
    pub fn builder() -> Builder<P> {
        Builder::default()
    }

    /// A store over an open engine, with `config`'s key and value limits. The engine's
    /// kind must be `P`'s ([`Error::WrongKind`] otherwise).
    ///
    /// # Errors
    ///
    /// - [`Error::WrongKind`]: the engine holds a store of another kind than `P`.
    pub fn from_engine(engine: Arc<E>, config: &Config) -> Result<Self> {
        let kind = engine.kind();
        if let Some(want) = P::KIND
            && want != kind
        {
            return Err(Error::WrongKind {
                path: engine.path().to_owned(),
                expected: want.name,
                found: kind.name.to_owned(),
            });
        }
        Ok(Store {
            engine,
            ns: Namespace::DEFAULT,
            max_key_len: config.max_key_len,
            max_value_size: config.max_value_size,
            inflight: Mutex::new(HashMap::new()),
            _kind: PhantomData,
        })
    }

    /// The engine under the store.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// What the engine can do.
    pub fn capabilities(&self) -> Capabilities {
        self.engine.capabilities()
    }

    /// The kind of the store (as created on disk).
    pub fn kind(&self) -> Kind {
        self.engine.kind()
    }

    /// The directory (or location) of the store.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    /// The namespace this store is a view of.
    pub fn current_namespace(&self) -> &Namespace {
        &self.ns
    }

    /// A view of the namespace `name` of the same store (created if needed): an
    /// independent key space with its own count, size, keys and `clear`, sharing the
    /// store's connections, size bound and eviction. `""` is the default namespace.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// let sessions = cache.namespace("sessions")?;
    /// sessions.set("k", b"in sessions")?;
    /// cache.set("k", b"in the default namespace")?;
    /// assert_eq!(sessions.len()?, 1);
    /// assert_eq!(sessions.clear()?, 1);
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"in the default namespace"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the namespace does not exist yet and the store is
    ///   read-only (an existing one opens for reading).
    /// - [`Error::Busy`]: creating it waited longer than the busy timeout for another
    ///   writer.
    /// - [`Error::Unsupported`]: the engine has no named namespaces
    ///   ([`Capabilities::namespaces`]).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn namespace(&self, name: &str) -> Result<Self> {
        Ok(Store {
            engine: self.engine.clone(),
            ns: self.engine.namespace(name)?,
            max_key_len: self.max_key_len,
            max_value_size: self.max_value_size,
            inflight: Mutex::new(HashMap::new()),
            _kind: PhantomData,
        })
    }

    /// The names of every namespace of the store (`""`, the default one, first).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.namespace("sessions")?;
    /// assert_eq!(cache.namespaces()?, ["", "sessions"]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn namespaces(&self) -> Result<Vec<String>> {
        Ok(self
            .engine
            .namespaces()?
            .iter()
            .map(|n| n.name().to_owned())
            .collect())
    }

    pub(crate) fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.max_key_len {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.max_key_len,
            });
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() as u64 > self.max_value_size {
            return Err(Error::ValueTooLarge {
                len: value.len() as u64,
                max: self.max_value_size,
            });
        }
        Ok(())
    }

    /// Refuses options the store's kind does not support (an expiry or a tag on an
    /// index opened as [`AnyKind`](crate::AnyKind)).
    fn check_options(&self, opts: &SetOptions) -> Result<()> {
        if opts.expire.is_none() && opts.tag.is_none() {
            return Ok(());
        }
        let kind = self.engine.kind();
        if (opts.expire.is_some() && !kind.expiry) || (opts.tag.is_some() && !kind.tags) {
            return Err(Error::Unsupported(
                "expiry and tags are for caches, not indexes",
            ));
        }
        Ok(())
    }

    /// The value of `key`, or `None` if absent or expired.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert_eq!(cache.get("k")?, None);
    /// cache.set("k", b"v")?;
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than [`max_key_len`](Builder::max_key_len).
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written
    ///   (checked when [`verify_values`](Builder::verify_values) is on, the default).
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store (a path
    ///   outside it, a link, not a regular file).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        self.engine.get(&self.ns, key)
    }

    /// Calls `f` with the value of `key` without copying it out of the database when it
    /// is stored inline; returns what `f` returns, or `None` on a miss.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"hello")?;
    /// assert_eq!(cache.get_with("k", |v| v.len())?, Some(5));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`get`](Self::get) (`f` is not called then):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.check_key(key)?;
        let mut f = Some(f);
        let mut out = None;
        self.engine
            .get_with(&self.ns, key, &mut |b| out = f.take().map(|f| f(b)))?;
        Ok(out)
    }

    /// Values of several keys, in order (`None` for each miss).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_many([("a", b"1"), ("b", b"2")])?;
    /// let v = cache.get_many(&["a", "missing", "b"])?;
    /// assert_eq!(v, [Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// The keys are read one after the other, not in one snapshot: a write by another
    /// thread or process between two of them may be seen by the second only.
    ///
    /// # Errors
    ///
    /// The first error of reading any of the keys (then no value is returned):
    ///
    /// - [`Error::KeyTooLong`]: a key is longer than the maximum (checked before any read).
    /// - [`Error::ValueFileMissing`]: a value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: a value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: a value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: a row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.engine.get_many(&self.ns, &keys)
    }

    /// Writes several entries in one transaction: all or none (per shard in a fanout).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_many([("a", &b"1"[..]), ("b", b"22"), ("c", b"")])?;
    /// assert_eq!((cache.len()?, cache.size()?), (3, 3));
    /// // Owned keys and values work too.
    /// cache.set_many((0..3).map(|i| (format!("n/{i}"), i.to_string())))?;
    /// assert_eq!(cache.count_prefix("n/")?, 3);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written (of that shard, in a fanout: shards written before stay
    /// written) when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: a key is longer than the maximum (checked before any
    ///   write).
    /// - [`Error::ValueTooLarge`]: a value is larger than
    ///   [`max_value_size`](Builder::max_value_size) (checked before any write).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, a key
    ///   belongs to another shard (checked before any write).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_many<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        self.set_many_opts(entries, &SetOptions::default())
    }

    fn set_many_opts<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        opts: &SetOptions,
    ) -> Result<()> {
        self.check_options(opts)?;
        let entries: Vec<(K, V)> = entries.into_iter().collect();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        for (k, v) in &refs {
            self.check_key(k)?;
            self.check_value(v)?;
        }
        self.engine.set_many(&self.ns, &refs, opts)
    }

    /// Stores `value` under `key`, replacing any previous value (and its expiry and tag).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::{Error, SetOptions};
    /// cache.set_with("k", b"old", &SetOptions::new().tag("t"))?;
    /// cache.set("k", b"new")?;
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"new"[..]));
    /// assert_eq!(cache.entry_info("k")?.expect("live").tag, None);
    ///
    /// let long_key = "k".repeat(5000); // over the 4096 bytes allowed by default
    /// assert!(matches!(cache.set(&long_key, b"v"), Err(Error::KeyTooLong { .. })));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than [`max_key_len`](Builder::max_key_len).
    /// - [`Error::ValueTooLarge`]: `value` is larger than
    ///   [`max_value_size`](Builder::max_value_size).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.set_opts(key, value.as_ref(), &SetOptions::default())
    }

    fn set_opts(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.check_options(opts)?;
        self.engine.set(&self.ns, key, value, opts)
    }

    fn add_opts(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.check_options(opts)?;
        self.engine.add(&self.ns, key, value, opts)
    }

    /// Stores `value` only if `key` is absent (an expired entry counts as absent).
    /// Atomic across threads and processes; returns whether it stored.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert!(cache.add("k", b"first")?);
    /// assert!(!cache.add("k", b"second")?);
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"first"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `value` is larger than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn add(&self, key: &str, value: impl AsRef<[u8]>) -> Result<bool> {
        self.add_opts(key, value.as_ref(), &SetOptions::default())
    }

    /// Removes `key`; returns whether a live entry was removed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"v")?;
    /// assert!(cache.delete("k")?);
    /// assert!(!cache.delete("k")?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        self.engine.delete(&self.ns, key)
    }

    /// Removes `key` and returns its value, atomically (`None`: it was absent or
    /// expired).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("job", b"payload")?;
    /// assert_eq!(cache.pop("job")?.as_deref(), Some(&b"payload"[..]));
    /// assert_eq!(cache.pop("job")?, None);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is removed when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.pop_entry(key)?.map(|(v, _)| v))
    }

    /// The value of `key` with its size, expiry and tag, read together (one snapshot).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// cache.set_with("k", b"abc", &SetOptions::new().tag("t"))?;
    /// let (value, info) = cache.get_entry("k")?.expect("live");
    /// assert_eq!((value.as_slice(), info.tag.as_deref()), (&b"abc"[..], Some("t")));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`get`](Self::get):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.check_key(key)?;
        self.engine.get_entry(&self.ns, key)
    }

    /// Removes `key` and returns its value with its size, expiry and tag, atomically.
    ///
    /// # Errors
    ///
    /// Those of [`pop`](Self::pop): nothing is removed when one of these happens.
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn pop_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.check_key(key)?;
        self.engine.pop_entry(&self.ns, key)
    }

    /// Whether `key` holds a live entry (its value is not read).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert!(!cache.contains("k")?);
    /// cache.set("k", b"")?;
    /// assert!(cache.contains("k")?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        self.engine.contains(&self.ns, key)
    }

    /// Size, expiry, tag and tier of a live entry, without reading its value.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// use std::time::Duration;
    /// cache.set_with("k", b"abc", &SetOptions::new().tag("t").expire(Duration::from_secs(60)))?;
    /// let info = cache.entry_info("k")?.expect("live");
    /// assert_eq!((info.size, info.tag.as_deref()), (3, Some("t")));
    /// assert!(info.expire.is_some());
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn entry_info(&self, key: &str) -> Result<Option<EntryInfo>> {
        self.check_key(key)?;
        self.engine.info(&self.ns, key)
    }

    /// Number of live entries of this namespace (exact; no table scan). In a
    /// [`Fanout`](crate::Fanout), the sum of the shards' counts, read one shard after
    /// the other.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("a", b"12")?;
    /// cache.set("b", b"345")?;
    /// assert_eq!(cache.len()?, 2);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn len(&self) -> Result<u64> {
        self.engine.len(&self.ns)
    }

    /// Whether the namespace holds no live entry.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert!(cache.is_empty()?);
    /// cache.set("k", b"v")?;
    /// assert!(!cache.is_empty()?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry of this namespace, atomically; returns how many were removed.
    /// Two exceptions: on a full disk, where even the store's reserve cannot hold the
    /// whole deletion, it deletes in batches (readers may see a partly cleared
    /// namespace); and a [`Fanout`](crate::Fanout) clears one shard after the other
    /// (each shard atomically).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_many([("a", b"1"), ("b", b"2")])?;
    /// assert_eq!(cache.clear()?, 2);
    /// assert!(cache.is_empty()?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::InvalidArgument`]: called inside a transaction of a
    ///   [`Fanout`](crate::Fanout) shard (a clear spans every shard).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn clear(&self) -> Result<u64> {
        self.engine.clear(&self.ns)
    }

    /// Adds `delta` to the counter at `key` (created as `default + delta` when absent or
    /// expired) and returns the new value. Atomic across threads and processes. Counters
    /// are stored as ASCII decimal (see [`counter`](crate::counter)), keep their expiry
    /// and tag, and `incr` on any other value is [`Error::NotACounter`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::Error;
    /// assert_eq!(cache.incr("hits", 5, 10)?, 15); // absent: default + delta
    /// assert_eq!(cache.incr("hits", 1, 0)?, 16);
    /// assert_eq!(cache.get("hits")?.as_deref(), Some(&b"16"[..]));
    ///
    /// cache.set("name", b"text")?;
    /// assert!(matches!(cache.incr("name", 1, 0), Err(Error::NotACounter { .. })));
    /// cache.set("top", i64::MAX.to_string())?;
    /// assert!(matches!(cache.incr("top", 1, 0), Err(Error::CounterOverflow { .. })));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The counter is left as it was when one of these happens:
    ///
    /// - [`Error::NotACounter`]: the live value at `key` is not a counter.
    /// - [`Error::CounterOverflow`]: the result does not fit in an `i64`.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    /// - [`Error::ValueFileMissing`]: the counter lives in a file (a file threshold of
    ///   a few bytes) that is gone; a damaged one is
    ///   [`ValueFileTruncated`](Error::ValueFileTruncated),
    ///   [`ValueFileCorrupt`](Error::ValueFileCorrupt) or
    ///   [`ValueFileInvalid`](Error::ValueFileInvalid), as for [`get`](Self::get).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.check_key(key)?;
        self.engine.incr(&self.ns, key, i128::from(delta), default)
    }

    /// Subtracts `delta` from the counter at `key` (created as `default - delta` when
    /// absent or expired) and returns the new value; atomic, like [`incr`](Self::incr).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert_eq!(cache.decr("stock", 1, 10)?, 9); // absent: default - delta
    /// assert_eq!(cache.decr("stock", 10, 0)?, -1);
    /// assert_eq!(cache.get_counter("stock")?, Some(-1));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`incr`](Self::incr); the counter is left as it was:
    ///
    /// - [`Error::NotACounter`]: the live value at `key` is not a counter.
    /// - [`Error::CounterOverflow`]: the result does not fit in an `i64`.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    /// - [`Error::ValueFileMissing`]: the counter lives in a file that is gone.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn decr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.check_key(key)?;
        self.engine.incr(&self.ns, key, -i128::from(delta), default)
    }

    /// The counter at `key`, or `None` when absent; [`Error::NotACounter`] when the value
    /// is not a counter.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// assert_eq!(cache.get_counter("n")?, None);
    /// cache.set("n", b"42")?; // counters are ASCII decimal: this is one
    /// assert_eq!(cache.get_counter("n")?, Some(42));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NotACounter`]: the live value at `key` is not a counter.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get_counter(&self, key: &str) -> Result<Option<i64>> {
        match self.get_with(key, crate::counter::decode)? {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
        }
    }

    /// Bytes of stored values of this namespace (expired entries count until purged).
    /// Keys and the database's own overhead are not counted: see [`volume`](Self::volume).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("a", b"12")?;
    /// cache.set("b", b"345")?;
    /// assert_eq!(cache.size()?, 5);
    /// assert!(cache.volume()? > cache.size()?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn size(&self) -> Result<u64> {
        self.engine.size(&self.ns)
    }

    /// Bytes the whole store takes on disk (every namespace): the database, its WAL and
    /// shared-memory files, value files and the 1 MiB reserve (SQLite engine).
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn volume(&self) -> Result<u64> {
        self.engine.volume()
    }

    /// Verifies the store: SQLite integrity, value files without rows, rows without
    /// (intact) files, recorded sizes, maintained totals. With `fix`, repairs what it
    /// found (rows whose file is lost are removed). A damaged database is reported in
    /// [`CheckReport::sqlite_errors`], not as an error, and never repaired in place
    /// ([`salvage`](crate::salvage) copies out what is readable). Holds the write lock
    /// while it runs (a read-only store is checked in one read transaction). A
    /// [`Fanout`](crate::Fanout) checks its shards one after the other and merges their
    /// reports.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"v")?;
    /// let report = cache.check(false)?;
    /// assert!(report.ok && report.sqlite_integrity_ok);
    /// assert_eq!((report.orphaned_files, report.dangling_rows), (0, 0));
    /// assert!(cache.check(true)?.ok); // nothing to fix
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: `fix` on a read-only store (without `fix`, a read-only
    ///   store is checked).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::Io`]: listing the value files, or removing an orphan one, failed.
    /// - [`Error::Unsupported`]: the engine cannot check ([`Capabilities::check`]).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn check(&self, fix: bool) -> Result<CheckReport> {
        self.engine.check(fix)
    }

    /// Stores a serde value (postcard encoding: compact, stable, documented).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_value("point", &(1.5f64, 2.5f64))?;
    /// assert_eq!(cache.get_value::<(f64, f64)>("point")?, Some((1.5, 2.5)));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::Encode`]: `value` cannot be encoded.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: the encoding is larger than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set(key, encode(key, value)?)
    }

    /// Reads a serde value; [`Error::Decode`] when the stored bytes are not a `T`.
    ///
    /// # Errors
    ///
    /// - [`Error::Decode`]: the stored bytes are not a `T`.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_with(key, |b| postcard::from_bytes::<T>(b))?
            .transpose()
            .map_err(|source| Error::Decode {
                key: key.to_owned(),
                source,
            })
    }

    /// Runs the upkeep the background thread does, now: flushes buffered recency
    /// updates, purges expired entries, evicts down to the size bound, deletes queued
    /// value files. Does nothing on a read-only store.
    ///
    /// # Errors
    ///
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn maintain(&self) -> Result<()> {
        self.engine.maintain()
    }

    /// A value of the store's own metadata, set by [`set_metadata`](Self::set_metadata)
    /// by this or any other process (e.g. the serializer a binding records).
    /// Metadata is not an entry: it is not counted, listed, expired or evicted.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_metadata("serializer", Some("pickle"))?;
    /// assert_eq!(cache.metadata("serializer")?.as_deref(), Some("pickle"));
    /// cache.set_metadata("serializer", None)?;
    /// assert_eq!(cache.metadata("serializer")?, None);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn metadata(&self, name: &str) -> Result<Option<String>> {
        self.engine.metadata(name)
    }

    /// Sets the metadata value `name` (`None` removes it), for every process that opens
    /// the store; read it with [`metadata`](Self::metadata).
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.engine.set_metadata(name, value)
    }

    /// A store over another handle of the same engine (same namespace and limits).
    pub(crate) fn with_engine<F: ?Sized + Engine>(&self, engine: Arc<F>) -> Store<P, F> {
        Store {
            engine,
            ns: self.ns.clone(),
            max_key_len: self.max_key_len,
            max_value_size: self.max_value_size,
            inflight: Mutex::new(HashMap::new()),
            _kind: PhantomData,
        }
    }
}

impl<P: Policy, E: Reopen> Store<P, E> {
    /// Opens the same store again with the same settings: a new, independent handle
    /// (its own connections and background thread), on the same namespace.
    ///
    /// This is how a child process made by `fork()` keeps using a store it inherited:
    /// SQLite connections must not be used across `fork`, so the child calls `reopen`
    /// and uses the new handle. Dropping the inherited handle in the child is safe (it
    /// leaves the parent's connections and thread alone).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"v")?;
    /// let again = cache.reopen()?;
    /// assert_eq!(again.get("k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of opening the store (see [`Store::open`]), e.g.:
    ///
    /// - [`Error::Busy`]: another process held the database locked for longer than
    ///   the busy timeout.
    /// - [`Error::ReadOnly`]: the store must be recreated (its directory was removed)
    ///   where this process cannot write.
    /// - [`Error::Io`]: the directory cannot be looked into.
    pub fn reopen(&self) -> Result<Self> {
        Ok(self.with_engine(Arc::new(self.engine.reopen()?)))
    }
}

impl<P: Policy> Store<P, dyn Engine> {
    /// Opens the same store again, with the engine chosen at run time: a new,
    /// independent handle on the same namespace (see [`Store::reopen`] for why, e.g.
    /// after `fork`).
    ///
    /// # Errors
    ///
    /// Those of opening the store with its engine (see [`Store::open`]).
    pub fn reopen(&self) -> Result<Self> {
        Ok(self.with_engine(self.engine.reopen_dyn()?))
    }
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
    })
}
