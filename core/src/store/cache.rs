//! What only caches offer (expiry, tags, statistics, the size bound and eviction), and
//! memoization with single flight.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, encode};
use crate::engine::Engine;
use crate::options::{SetOptions, Stats};
use crate::policy::{CacheApi, IndexKind, Policy};
use crate::{Error, Result};

impl<P: Policy, E: ?Sized + Engine> Store<P, E> {
    /// Computes-once helper shared by the memoize methods: concurrent misses of one key
    /// in this process wait for the first computation instead of repeating it.
    fn single_flight<T, Er: From<Error>>(
        &self,
        key: &str,
        lookup: impl Fn() -> Result<Option<T>, Er>,
        compute: impl FnOnce() -> Result<T, Er>,
    ) -> Result<T, Er> {
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

impl<P: CacheApi, E: ?Sized + Engine> Store<P, E> {
    /// Stores `value` with options: expiry and/or tag, replacing any previous value,
    /// expiry and tag.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// use std::time::Duration;
    /// let opts = SetOptions::new().expire(Duration::from_secs(3600)).tag("session");
    /// cache.set_with("session/abc", b"token", &opts)?;
    /// let info = cache.entry_info("session/abc")?.expect("live");
    /// assert_eq!(info.tag.as_deref(), Some("session"));
    /// assert!(info.expire.is_some());
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than
    ///   [`max_key_len`](crate::Builder::max_key_len).
    /// - [`Error::ValueTooLarge`]: `value` is larger than
    ///   [`max_value_size`](crate::Builder::max_value_size).
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<()> {
        self.set_opts(key, value.as_ref(), opts)
    }

    /// [`set_many`](Store::set_many) with options applied to every entry: writes them
    /// in one transaction, all or none (per shard in a fanout).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// cache.set_many_with([("a", b"1"), ("b", b"2")], &SetOptions::new().tag("batch"))?;
    /// assert_eq!(cache.evict_tag("batch")?, 2);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written (of that shard, in a fanout) when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: a key is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: a value is larger than the maximum.
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, a key
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_many_with<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        opts: &SetOptions,
    ) -> Result<()> {
        self.set_many_opts(entries, opts)
    }

    /// [`add`](Store::add) with options: stores `value` with its expiry and tag only if
    /// `key` is absent (or expired), atomically; returns whether it stored.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// use std::time::Duration;
    /// let opts = SetOptions::new().expire(Duration::from_secs(60));
    /// assert!(cache.add_with("once", b"1", &opts)?);
    /// assert!(!cache.add_with("once", b"2", &opts)?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `value` is larger than the maximum.
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn add_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<bool> {
        self.add_opts(key, value.as_ref(), opts)
    }

    /// Stores a serde value (see [`set_value`](Store::set_value)) with options.
    ///
    /// # Errors
    ///
    /// - [`Error::Encode`]: `value` cannot be encoded.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: the encoding is larger than the maximum.
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_value_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        opts: &SetOptions,
    ) -> Result<()> {
        self.set_with(key, encode(key, value)?, opts)
    }

    /// Gives a live entry a new expiry (`None`: never), counted from now; returns
    /// whether the key was live. Its value, tag and [version](crate::Version) are kept.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use std::time::Duration;
    /// cache.set("k", b"v")?;
    /// assert!(cache.touch("k", Some(Duration::from_secs(60)))?);
    /// assert!(cache.entry_info("k")?.expect("live").expire.is_some());
    /// assert!(cache.touch("k", None)?); // never expires again
    /// assert_eq!(cache.entry_info("k")?.expect("live").expire, None);
    /// assert!(!cache.touch("missing", None)?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.check_key(key)?;
        if expire.is_some() && !self.engine.kind().expiry {
            return Err(Error::Unsupported("expiry is for caches, not indexes"));
        }
        self.engine.touch(&self.ns, key, expire)
    }

    /// Removes every expired entry of the store now (every namespace; every shard of a
    /// fanout); returns how many. It deletes in short batches, not atomically. Expired
    /// entries are never returned or counted by [`len`](Store::len) anyway; purging
    /// them frees their space (they count in [`size`](Store::size) until then), which
    /// the background thread also does, every [maintenance
    /// interval](crate::Builder::maintenance_interval).
    ///
    /// ```
    /// use sciqlop_cache::{Cache, ManualClock, SetOptions};
    /// use std::{sync::Arc, time::Duration};
    /// let dir = tempfile::tempdir()?;
    /// let clock = ManualClock::new(1_000_000);
    /// let cache = Cache::builder()
    ///     .clock(Arc::new(clock.clone()))
    ///     .maintenance_interval(Duration::ZERO) // no background purge in this example
    ///     .open(dir.path())?;
    /// cache.set_with("k", b"v", &SetOptions::new().expire(Duration::from_secs(10)))?;
    /// cache.set("kept", b"v")?;
    /// clock.advance(Duration::from_secs(11));
    /// assert_eq!((cache.len()?, cache.size()?), (1, 2));
    /// assert_eq!(cache.expire()?, 1);
    /// assert_eq!((cache.len()?, cache.size()?), (1, 1));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::InvalidArgument`]: called inside a transaction of a
    ///   [`Fanout`](crate::Fanout) shard (the purge spans every shard).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn expire(&self) -> Result<u64> {
        self.engine.expire()
    }

    /// Removes every entry of this namespace tagged `tag`, atomically (shard by shard
    /// in a fanout); returns how many.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// let session = SetOptions::new().tag("session");
    /// cache.set_with("s/1", b"a", &session)?;
    /// cache.set_with("s/2", b"b", &session)?;
    /// cache.set("other", b"c")?;
    /// assert_eq!(cache.evict_tag("session")?, 2);
    /// assert_eq!(cache.len()?, 1);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::InvalidArgument`]: called inside a transaction of a
    ///   [`Fanout`](crate::Fanout) shard (tags span every shard).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn evict_tag(&self, tag: &str) -> Result<u64> {
        self.engine.evict_tag(&self.ns, tag)
    }

    /// Hits and misses of reads through this handle (every namespace).
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Resets hits and misses to zero.
    pub fn reset_stats(&self) {
        self.engine.reset_stats();
    }

    /// The bound on bytes of values (0: unbounded).
    pub fn max_size(&self) -> u64 {
        self.engine.max_size()
    }

    /// Changes the bound on bytes of values (0: unbounded) for this handle from now on;
    /// if the store is over the new bound, eviction starts in the background. Other
    /// handles and processes keep their own bound (record it with
    /// [`set_metadata`](Store::set_metadata) to share it). A fanout gives each shard
    /// an equal part.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set_max_size(1 << 20)?;
    /// assert_eq!(cache.max_size(), 1 << 20);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: bounding a read-only store that was unbounded (the index
    ///   eviction needs cannot be made).
    /// - [`Error::Busy`]: making that index waited longer than the busy timeout for
    ///   another writer.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn set_max_size(&self, bytes: u64) -> Result<()> {
        self.engine.set_max_size(bytes)
    }

    /// Evicts least-recently-used entries now, if the values exceed the bound, down to
    /// 90 % of it; returns how many were evicted. It deletes in short batches, not
    /// atomically (a fanout evicts each shard down to its part of the bound).
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only and over its bound.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn evict(&self) -> Result<u64> {
        self.engine.evict()
    }

    /// Returns the value of `key`, computing and storing it with `opts` on a miss.
    /// Concurrent misses through this handle compute once (other handles, processes
    /// and [`namespace`](Store::namespace) views compute on their own).
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
    ///
    /// # Errors
    ///
    /// - `compute`'s own error, returned as it is (nothing is stored).
    /// - The errors of reading (those of [`get`](Store::get), e.g.
    ///   [`Error::KeyTooLong`], [`Error::ValueFileMissing`]) and of storing (those of
    ///   [`set_with`](Store::set_with), e.g. [`Error::ReadOnly`], [`Error::Busy`],
    ///   [`Error::ValueTooLarge`]), converted with `Er::from`; when storing fails, the
    ///   computed value is lost.
    pub fn get_or_set_with<Er: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<Vec<u8>, Er>,
    ) -> Result<Vec<u8>, Er> {
        self.single_flight(
            key,
            || self.get(key).map_err(Er::from),
            || {
                let v = compute()?;
                self.set_with(key, &v, opts)?;
                Ok(v)
            },
        )
    }

    /// Typed [`get_or_set_with`](Self::get_or_set_with): values go through serde
    /// (postcard, as [`set_value`](Store::set_value)).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// let v: (u32, String) = cache.get_or_set_value_with("pair", &SetOptions::new(), || {
    ///     Ok::<_, sciqlop_cache::Error>((7, "seven".to_owned()))
    /// })?;
    /// assert_eq!(cache.get_value::<(u32, String)>("pair")?, Some(v));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - `compute`'s own error, returned as it is (nothing is stored).
    /// - [`Error::Decode`]: the stored value is not a `T`.
    /// - [`Error::Encode`]: the computed value cannot be encoded.
    /// - The other errors of [`get`](Store::get) and [`set_with`](Store::set_with),
    ///   converted with `Er::from`.
    pub fn get_or_set_value_with<T: Serialize + DeserializeOwned, Er: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.single_flight(
            key,
            || self.get_value::<T>(key).map_err(Er::from),
            || {
                let v = compute()?;
                self.set_value_with(key, &v, opts)?;
                Ok(v)
            },
        )
    }
}

impl<E: ?Sized + Engine> Store<IndexKind, E> {
    /// Returns the value of `key`, computing and storing it on a miss (once per handle
    /// for concurrent misses through it).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let index = sciqlop_cache::Index::open(dir.path())?;
    /// let v = index.get_or_set_with("answer", || {
    ///     Ok::<_, sciqlop_cache::Error>(b"42".to_vec())
    /// })?;
    /// assert_eq!(v, b"42");
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - `compute`'s own error, returned as it is (nothing is stored).
    /// - The errors of reading (those of [`get`](Store::get), e.g.
    ///   [`Error::KeyTooLong`], [`Error::ValueFileMissing`]) and of storing (those of
    ///   [`set`](Store::set), e.g. [`Error::ReadOnly`], [`Error::Busy`],
    ///   [`Error::ValueTooLarge`]), converted with `Er::from`.
    pub fn get_or_set_with<Er: From<Error>>(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<Vec<u8>, Er>,
    ) -> Result<Vec<u8>, Er> {
        self.single_flight(
            key,
            || self.get(key).map_err(Er::from),
            || {
                let v = compute()?;
                self.set(key, &v)?;
                Ok(v)
            },
        )
    }
}
