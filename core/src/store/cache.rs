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
        if expire.is_some() && !self.engine.kind().expiry {
            return Err(Error::Unsupported("expiry is for caches, not indexes"));
        }
        self.engine.touch(&self.ns, key, expire)
    }

    /// Removes every expired entry of the store now (every namespace); returns how many.
    pub fn expire(&self) -> Result<u64> {
        self.engine.expire()
    }

    /// Removes every entry of this namespace tagged `tag`; returns how many.
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
    /// [`set_metadata`](Store::set_metadata) to share it).
    pub fn set_max_size(&self, bytes: u64) -> Result<()> {
        self.engine.set_max_size(bytes)
    }

    /// Evicts least-recently-used entries now, if the values exceed the bound, down to
    /// 90 % of it; returns how many were evicted.
    pub fn evict(&self) -> Result<u64> {
        self.engine.evict()
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

    /// Typed [`get_or_set_with`](Self::get_or_set_with): values go through serde.
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
    /// Returns the value of `key`, computing and storing it on a miss (once per process
    /// for concurrent misses).
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
