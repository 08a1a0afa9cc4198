//! The public store API, written once over the engine contract.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Backend, BoxedTx, Engine, TxGuard};
use crate::options::{Builder, CheckReport, Config, EntryInfo, SetOptions, Stats};
use crate::policy::{CacheKind, IndexKind, Policy};
use crate::{Error, Result};

/// A persistent key-value store in one directory; [`Cache`] and [`Index`] are its two
/// kinds.
///
/// Keys are UTF-8 strings of at most [`max_key_len`](Builder::max_key_len) bytes (4096 by
/// default; the empty key is allowed); values are bytes of at most
/// [`max_value_size`](Builder::max_value_size) (4 GiB by default). Values below the file
/// threshold (8 KiB) are stored inline in SQLite, larger ones in their own file.
///
/// A store is `Send + Sync`: share it by reference or in an `Arc`. Several processes may
/// open the same directory at once.
pub struct Store<P: Policy> {
    engine: Engine<P>,
    /// What it was opened with (for `reopen`).
    config: Config,
    max_key_len: usize,
    max_value_size: u64,
    /// Set on the stores of a fanout: keys must route to this shard.
    shard: Option<(u32, u32)>,
    /// Keys being computed by `get_or_set_with` in this process.
    inflight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    _kind: PhantomData<P>,
}

/// Full-featured cache: expiry, tags, LRU eviction by size, hit/miss statistics.
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
pub type Cache = Store<CacheKind>;

/// Bare persistent key-value store: no expiry, eviction, tags or statistics overhead.
///
/// ```
/// use sciqlop_cache::Index;
/// let dir = tempfile::tempdir()?;
/// let index = Index::open(dir.path())?;
/// index.set("dataset/v2", b"metadata")?;
/// assert!(index.contains("dataset/v2")?);
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
pub type Index = Store<IndexKind>;

impl<P: Policy> std::fmt::Debug for Store<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kind", &P::NAME)
            .field("path", &self.engine.path())
            .finish_non_exhaustive()
    }
}

impl<P: Policy> Store<P> {
    /// Opens (creating if needed) the store in directory `path` with default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().open(path)
    }

    /// A builder to configure the store before opening it.
    pub fn builder() -> Builder<P> {
        Builder::default()
    }

    pub(crate) fn open_with(path: &Path, config: Config) -> Result<Self> {
        let (max_key_len, max_value_size) = (config.max_key_len, config.max_value_size);
        Ok(Store {
            engine: Engine::open(path, config.clone())?,
            config,
            max_key_len,
            max_value_size,
            shard: None,
            inflight: Mutex::new(HashMap::new()),
            _kind: PhantomData,
        })
    }

    /// Opens the same directory again with the same settings: a new, independent
    /// handle (its own connections and background thread).
    ///
    /// This is how a child process made by `fork()` keeps using a store it inherited:
    /// SQLite connections must not be used across `fork`, so the child calls `reopen`
    /// and uses the new handle. Dropping the inherited handle in the child is safe (it
    /// leaves the parent's connections and thread alone).
    pub fn reopen(&self) -> Result<Self> {
        let mut s = Self::open_with(self.path(), self.config.clone())?;
        s.shard = self.shard;
        Ok(s)
    }

    /// Marks this store as shard `index` of `count`: keys routing elsewhere are refused.
    pub(crate) fn set_shard(&mut self, index: u32, count: u32) {
        self.shard = Some((index, count));
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.max_key_len {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.max_key_len,
            });
        }
        if let Some((index, count)) = self.shard {
            let key_shard = crate::fanout::shard_of(key, count);
            if key_shard != index {
                return Err(Error::WrongShard {
                    key: key.to_owned(),
                    key_shard,
                    tx_shard: index,
                });
            }
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() as u64 > self.max_value_size {
            return Err(Error::ValueTooLarge {
                len: value.len() as u64,
                max: self.max_value_size,
            });
        }
        Ok(())
    }

    /// The value of `key`, or `None` if absent or expired.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        self.engine.get(key)
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
    pub fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.check_key(key)?;
        self.engine.get_with(key, f)
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
    pub fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.engine.get_many(&keys)
    }

    /// Writes several entries in one transaction: all or none.
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
        let entries: Vec<(K, V)> = entries.into_iter().collect();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        for (k, v) in &refs {
            self.check_key(k)?;
            self.check_value(v)?;
        }
        self.engine.set_many(&refs, opts)
    }

    /// Stores `value` under `key`, replacing any previous value (and its expiry and tag).
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.set_opts(key, value.as_ref(), &SetOptions::default())
    }

    fn set_opts(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.engine.set(key, value, opts)
    }

    fn add_opts(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.engine.add(key, value, opts)
    }

    /// Stores `value` only if `key` is absent (an expired entry counts as absent).
    /// Atomic across threads and processes; returns whether it stored.
    pub fn add(&self, key: &str, value: impl AsRef<[u8]>) -> Result<bool> {
        self.add_opts(key, value.as_ref(), &SetOptions::default())
    }

    /// Removes `key`; returns whether a live entry was removed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        self.engine.delete(key)
    }

    /// Removes `key` and returns its value, atomically.
    pub fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        self.engine.pop(key)
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
    pub fn get_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.check_key(key)?;
        self.engine.get_entry(key)
    }

    /// Removes `key` and returns its value with its size, expiry and tag, atomically.
    pub fn pop_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.check_key(key)?;
        self.engine.pop_entry(key)
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
    pub fn metadata(&self, name: &str) -> Result<Option<String>> {
        self.engine.metadata(name)
    }

    /// Sets the metadata value `name` (`None` removes it); see [`metadata`](Self::metadata).
    pub fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.engine.set_metadata(name, value)
    }

    /// Whether `key` holds a live entry.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        self.engine.contains(key)
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
    pub fn entry_info(&self, key: &str) -> Result<Option<EntryInfo>> {
        self.check_key(key)?;
        self.engine.info(key)
    }

    /// Number of live entries (exact; no table scan).
    pub fn len(&self) -> Result<u64> {
        self.engine.len()
    }

    /// Whether the store holds no live entry.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Iterates over all live keys in byte order, a page at a time (no lock is held
    /// between pages: keys written meanwhile may or may not appear).
    pub fn keys(&self) -> Keys<'_, P> {
        self.keys_with_prefix("")
    }

    /// Iterates over the live keys that start with `prefix`, in byte order.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// for k in ["a/1", "a/2", "b/1"] { cache.set(k, b"")?; }
    /// let keys: Vec<String> = cache.keys_with_prefix("a/").collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["a/1", "a/2"]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn keys_with_prefix(&self, prefix: &str) -> Keys<'_, P> {
        Keys {
            store: self,
            prefix: prefix.to_owned(),
            after: None,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// One page of at most `limit` live keys starting with `prefix`, strictly after
    /// `after` (a cursor: the last key of the previous page).
    pub fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.engine.keys_page(prefix, after, limit)
    }

    /// Removes every entry; returns how many were removed.
    pub fn clear(&self) -> Result<u64> {
        self.engine.clear()
    }

    /// Adds `delta` to the counter at `key` (created as `default + delta` when absent or
    /// expired) and returns the new value. Atomic across threads and processes. Counters
    /// are stored as ASCII decimal (see [`counter`](crate::counter)), keep their expiry
    /// and tag, and `incr` on any other value is [`Error::NotACounter`].
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.check_key(key)?;
        self.engine.incr(key, i128::from(delta), default)
    }

    /// Subtracts `delta` from the counter at `key`; see [`incr`](Self::incr).
    pub fn decr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.check_key(key)?;
        self.engine.incr(key, -i128::from(delta), default)
    }

    /// Whether this thread has a transaction open on this store.
    pub(crate) fn in_transaction(&self) -> bool {
        self.engine.in_transaction()
    }

    /// The counter at `key`, or `None` when absent; [`Error::NotACounter`] when the value
    /// is not a counter.
    pub fn get_counter(&self, key: &str) -> Result<Option<i64>> {
        match self.get_with(key, crate::counter::decode)? {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
        }
    }

    /// Bytes of stored values (expired entries count until purged).
    pub fn size(&self) -> Result<u64> {
        self.engine.size()
    }

    /// Bytes on disk: the database, its WAL and shared-memory files, and value files.
    pub fn volume(&self) -> Result<u64> {
        self.engine.volume()
    }

    /// Verifies the store: SQLite integrity, value files without rows, rows without
    /// (intact) files, recorded sizes, maintained totals. With `fix`, repairs what it
    /// found (rows whose file is lost are removed).
    pub fn check(&self, fix: bool) -> Result<CheckReport> {
        self.engine.check(fix)
    }

    /// Runs `f` in a transaction: everything it does on this store from this thread
    /// commits together, or not at all when `f` returns `Err` or panics. The closure's
    /// argument is the store itself; nested `transact` calls join the outer transaction
    /// (an inner `Err` rolls back only the inner part). Other threads and processes see
    /// nothing until the commit, and their writes wait for it — so the closure must not
    /// wait for another thread's write to this store (that thread waits for the commit).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("balance", b"100")?;
    /// let r: Result<(), sciqlop_cache::Error> = cache.transact(|tx| {
    ///     tx.decr("balance", 30, 0)?;
    ///     tx.set("log", b"withdrew 30")?;
    ///     Ok(())
    /// });
    /// r?;
    /// assert_eq!(cache.get_counter("balance")?, Some(70));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn transact<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.engine.begin()?;
        let out = f(self)?;
        tx.commit()?;
        Ok(out)
    }

    /// Begins a transaction that the caller ends: [`Transaction::commit`], or
    /// [`Transaction::rollback`] (also what dropping it does). The same semantics as
    /// [`transact`](Self::transact), for code that cannot wrap the work in a closure (a
    /// `with` block of a binding, a C handle): while it is open, everything this thread
    /// does on the store joins it; transactions begun inside it are savepoints.
    ///
    /// The transaction belongs to the thread that began it: it is not `Send`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// let tx = cache.begin()?;
    /// cache.set("a", b"1")?;
    /// tx.rollback();
    /// assert_eq!(cache.get("a")?, None);
    ///
    /// let tx = cache.begin()?;
    /// cache.set("a", b"2")?;
    /// tx.commit()?;
    /// assert_eq!(cache.get("a")?.as_deref(), Some(&b"2"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn begin(&self) -> Result<Transaction<'_>> {
        Ok(Transaction {
            tx: Box::new(self.engine.begin()?),
        })
    }

    /// Takes the cross-process lock `name`, waiting as long as it takes. The lock expires
    /// after `expire` even if its holder crashed; it is released when the guard drops.
    pub fn lock(&self, name: &str, expire: Duration) -> Result<Lock<'_, P>> {
        self.lock_timeout(name, expire, Duration::MAX)
    }

    /// Takes the lock `name` if it is free.
    ///
    /// Not inside a transaction ([`Error::InvalidArgument`]): the transaction already
    /// keeps every other writer out, and rolling it back would take the lock back
    /// behind the guard's back. Take the lock first, then begin the transaction.
    /// Releasing a lock inside a transaction is fine: it is released when the
    /// transaction ends, whether it commits or not.
    pub fn try_lock(&self, name: &str, expire: Duration) -> Result<Option<Lock<'_, P>>> {
        self.check_key(name)?;
        if self.engine.in_transaction() {
            return Err(Error::InvalidArgument(format!(
                "cannot take lock {name:?} inside a transaction: take it before the transaction begins"
            )));
        }
        let owner = format!("{:032x}", crate::platform::unique_token());
        if self.engine.try_lock(name, &owner, expire)? {
            Ok(Some(Lock {
                store: self,
                name: name.to_owned(),
                owner,
                released: false,
            }))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock `name`, waiting at most `timeout` ([`Error::LockTimeout`]).
    pub fn lock_timeout(
        &self,
        name: &str,
        expire: Duration,
        timeout: Duration,
    ) -> Result<Lock<'_, P>> {
        if !crate::platform::PLATFORM.threads {
            // No sleeping (and no other thread to release it) in a browser: one try.
            return self
                .try_lock(name, expire)?
                .ok_or_else(|| Error::LockTimeout {
                    name: name.to_owned(),
                    waited: Duration::ZERO,
                });
        }
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(lock) = self.try_lock(name, expire)? {
                return Ok(lock);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::LockTimeout {
                    name: name.to_owned(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Stores a serde value (postcard encoding: compact, stable, documented).
    pub fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set(key, encode(key, value)?)
    }

    /// Reads a serde value; [`Error::Decode`] when the stored bytes are not a `T`.
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
    /// value files.
    pub fn maintain(&self) -> Result<()> {
        self.engine.maintain()
    }

    /// Computes-once helper shared by the memoize methods: concurrent misses of one key
    /// in this process wait for the first computation instead of repeating it.
    fn single_flight<T, E: From<Error>>(
        &self,
        key: &str,
        lookup: impl Fn() -> Result<Option<T>, E>,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(v) = lookup()? {
            return Ok(v);
        }
        let slot = self
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone();
        let out = {
            let _turn = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match lookup()? {
                Some(v) => Ok(v),
                None => compute(),
            }
        };
        let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&slot) == 2 {
            map.remove(key);
        }
        out
    }
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
    })
}

impl Store<CacheKind> {
    /// Stores `value` with options: expiry and/or tag.
    pub fn set_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<()> {
        self.set_opts(key, value.as_ref(), opts)
    }

    /// [`set_many`](Store::set_many) with options applied to every entry.
    pub fn set_many_with<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        opts: &SetOptions,
    ) -> Result<()> {
        self.set_many_opts(entries, opts)
    }

    /// [`add`](Store::add) with options.
    pub fn add_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<bool> {
        self.add_opts(key, value.as_ref(), opts)
    }

    /// Stores a serde value with options.
    pub fn set_value_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        opts: &SetOptions,
    ) -> Result<()> {
        self.set_with(key, encode(key, value)?, opts)
    }

    /// Gives a live entry a new expiry (`None`: never); returns whether the key was live.
    pub fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.check_key(key)?;
        self.engine.touch(key, expire)
    }

    /// Removes every expired entry now; returns how many.
    pub fn expire(&self) -> Result<u64> {
        self.engine.expire()
    }

    /// Removes every entry tagged `tag`; returns how many.
    pub fn evict_tag(&self, tag: &str) -> Result<u64> {
        self.engine.evict_tag(tag)
    }

    /// The bound on bytes of values (0: unbounded).
    pub fn max_size(&self) -> u64 {
        self.engine.max_size()
    }

    /// Changes the bound on bytes of values (0: unbounded) for this handle from now on;
    /// if the store is over the new bound, eviction starts in the background. Other
    /// handles and processes keep their own bound (record it with
    /// [`set_metadata`](Store::set_metadata) to share it).
    pub fn set_max_size(&self, bytes: u64) -> Result<()> {
        self.engine.set_max_size(bytes)
    }

    /// Evicts least-recently-used entries now, if the values exceed the bound, down to
    /// 90 % of it; returns how many were evicted.
    pub fn evict(&self) -> Result<u64> {
        self.engine.evict()
    }

    /// Hits and misses of reads through this instance.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Resets hits and misses to zero.
    pub fn reset_stats(&self) {
        self.engine.reset_stats();
    }

    /// Returns the value of `key`, computing and storing it with `opts` on a miss.
    /// Concurrent misses in this process compute once.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// let v = cache.get_or_set_with("answer", &SetOptions::new(), || {
    ///     Ok::<_, sciqlop_cache::Error>(b"42".to_vec())
    /// })?;
    /// assert_eq!(v, b"42");
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn get_or_set_with<E: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        self.single_flight(
            key,
            || self.get(key).map_err(E::from),
            || {
                let v = compute()?;
                self.set_with(key, &v, opts)?;
                Ok(v)
            },
        )
    }

    /// Typed [`get_or_set_with`](Self::get_or_set_with): values go through serde.
    pub fn get_or_set_value_with<T: Serialize + DeserializeOwned, E: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.single_flight(
            key,
            || self.get_value::<T>(key).map_err(E::from),
            || {
                let v = compute()?;
                self.set_value_with(key, &v, opts)?;
                Ok(v)
            },
        )
    }
}

impl Store<IndexKind> {
    /// Returns the value of `key`, computing and storing it on a miss (once per process
    /// for concurrent misses).
    pub fn get_or_set_with<E: From<Error>>(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        self.single_flight(
            key,
            || self.get(key).map_err(E::from),
            || {
                let v = compute()?;
                self.set(key, &v)?;
                Ok(v)
            },
        )
    }
}

/// Iterator over live keys, fetched a page at a time. Items are `Result<String>`.
pub struct Keys<'a, P: Policy> {
    store: &'a Store<P>,
    prefix: String,
    after: Option<String>,
    buf: VecDeque<String>,
    done: bool,
}

impl<P: Policy> Iterator for Keys<'_, P> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        const PAGE: usize = 256;
        if self.buf.is_empty() && !self.done {
            match self
                .store
                .keys_page(&self.prefix, self.after.as_deref(), PAGE)
            {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    self.after = page.last().cloned();
                    self.buf.extend(page);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// A transaction begun with [`Store::begin`]: committed with [`commit`](Self::commit),
/// rolled back with [`rollback`](Self::rollback) or when dropped.
#[must_use = "a transaction is rolled back when dropped without commit"]
pub struct Transaction<'a> {
    tx: Box<dyn BoxedTx + 'a>,
}

impl Transaction<'_> {
    /// Commits: the outermost transaction makes its writes durable and visible, a nested
    /// one (a savepoint) joins its parent.
    pub fn commit(self) -> Result<()> {
        self.tx.commit_boxed()
    }

    /// Rolls back everything done since [`Store::begin`] (value files included).
    pub fn rollback(self) {
        drop(self);
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

/// A held cross-process lock; released on drop (or explicitly with
/// [`release`](Lock::release) to see errors).
#[must_use = "the lock is released when the guard is dropped"]
pub struct Lock<'a, P: Policy> {
    store: &'a Store<P>,
    name: String,
    owner: String,
    released: bool,
}

impl<P: Policy> Lock<'_, P> {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Releases the lock now.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.store.engine.unlock(&self.name, &self.owner)
    }
}

impl<P: Policy> Drop for Lock<'_, P> {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.store.engine.unlock(&self.name, &self.owner)
        {
            tracing::warn!(lock = %self.name, error = %e, "releasing lock failed; it will expire");
        }
    }
}

impl<P: Policy> std::fmt::Debug for Lock<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
