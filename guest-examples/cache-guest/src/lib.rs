//! The one place where the guest examples talk to the `sciqlop:cache` WIT import.
//!
//! The API mirrors the core crate's `Cache` (`get`, `set_with`, `SetOptions::new().expire(..)
//! .tag(..)`, `incr`, `transact`, ...) so that the examples can switch to the core's
//! `guest` feature later by replacing this crate's body, not the examples.
//!
//! A plugin implements [`Plugin`] and exports it with [`export_plugin!`].

use std::time::Duration;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "cache_guest::bindings",
    });
}

use bindings::sciqlop::cache::cache as wit;
use bindings::sciqlop::cache::types as wit_types;

/// The typed error of every cache call (the WIT `error` variant).
pub type Error = wit_types::Error;

/// Result of a cache call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a plugin does when the host calls it.
pub trait Plugin {
    /// Runs once with the host's arguments; `Ok` is printed by the host.
    fn run(args: Vec<String>) -> std::result::Result<String, String>;
}

#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

impl<P: Plugin> bindings::Guest for Adapter<P> {
    fn run(args: Vec<String>) -> std::result::Result<String, String> {
        P::run(args)
    }
}

/// Exports a [`Plugin`] implementation as the component's `run`.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        type __CacheGuestAdapter = $crate::Adapter<$t>;
        $crate::bindings::export!(__CacheGuestAdapter with_types_in $crate::bindings);
    };
}

/// Options of a write: expiry and tag.
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    expire: Option<Duration>,
    tag: Option<String>,
}

impl SetOptions {
    /// No expiry, no tag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Expires after `d` (millisecond resolution).
    pub fn expire(mut self, d: Duration) -> Self {
        self.expire = Some(d);
        self
    }
    /// Tags the entry for [`Cache::evict_tag`].
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
    fn to_wit(&self) -> Option<wit_types::SetOptions> {
        if self.expire.is_none() && self.tag.is_none() {
            return None;
        }
        Some(wit_types::SetOptions {
            expire_ms: self.expire.map(duration_ms),
            tag: self.tag.clone(),
        })
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Hit and miss counters.
pub use wit_types::Stats;

/// A store of this plugin, opened by name.
pub struct Cache {
    store: wit::Store,
}

impl Cache {
    /// Opens the plugin's store `name`; `access-denied` if the host did not grant it.
    pub fn open(name: &str) -> Result<Self> {
        Ok(Cache {
            store: wit::open(name)?,
        })
    }
    /// Value of `key`, `None` if missing or expired.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store.get(key)
    }
    /// Stores `value` under `key` without expiry or tag.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.store.set(key, value.as_ref(), None)
    }
    /// Stores `value` under `key` with options.
    pub fn set_with(&self, key: &str, value: impl AsRef<[u8]>, options: &SetOptions) -> Result<()> {
        self.store
            .set(key, value.as_ref(), options.to_wit().as_ref())
    }
    /// Stores only if absent; returns whether it stored.
    pub fn add_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<bool> {
        self.store
            .add(key, value.as_ref(), options.to_wit().as_ref())
    }
    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.store.delete(key)
    }
    /// Removes `key` and returns its value.
    pub fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store.pop(key)
    }
    /// Whether `key` is present and live.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.store.contains(key)
    }
    /// New expiry for a live key (`None`: never); returns whether it existed.
    pub fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.store.touch(key, expire.map(duration_ms))
    }
    /// Adds `delta` to a counter; returns the new value.
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.store.incr(key, delta, default)
    }
    /// Subtracts `delta` from a counter; returns the new value.
    pub fn decr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.store.decr(key, delta, default)
    }
    /// Removes every entry tagged `tag`; returns how many.
    pub fn evict_tag(&self, tag: &str) -> Result<u64> {
        self.store.evict_tag(tag)
    }
    /// Removes expired entries now; returns how many.
    pub fn expire(&self) -> Result<u64> {
        self.store.expire()
    }
    /// Removes every entry of this store; returns how many.
    pub fn clear(&self) -> Result<u64> {
        self.store.clear()
    }
    /// Number of live entries in this store.
    pub fn len(&self) -> Result<u64> {
        self.store.len()
    }
    /// Whether this store has no live entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Bytes used by this plugin's stores.
    pub fn size(&self) -> Result<u64> {
        self.store.size()
    }
    /// Hits and misses.
    pub fn stats(&self) -> Result<Stats> {
        self.store.stats()
    }
    /// One page of keys starting with `prefix` after `after`.
    pub fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Ok(self.store.keys(prefix, after, limit)?.keys)
    }
    /// All keys starting with `prefix`, fetched page by page.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.store.keys(prefix, cursor.as_deref(), 256)?;
            out.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }
    /// Values of several keys, in order.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.store.get_many(keys)
    }
    /// Writes several entries atomically.
    pub fn set_many(&self, entries: &[(String, Vec<u8>)], options: &SetOptions) -> Result<()> {
        self.store.set_many(entries, options.to_wit().as_ref())
    }
    /// Runs `f` in a transaction: its writes commit together when it returns `Ok`, and
    /// are discarded when it returns `Err` (or the plugin traps). A `conflict` at commit
    /// is returned as is; the caller may retry.
    pub fn transact<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = Transaction {
            tx: self.store.begin()?,
        };
        match f(&tx) {
            Ok(v) => {
                tx.tx.commit()?;
                Ok(v)
            }
            Err(e) => {
                tx.tx.rollback();
                Err(e)
            }
        }
    }
}

/// An open transaction (see [`Cache::transact`]).
pub struct Transaction {
    tx: wit::Transaction,
}

impl Transaction {
    /// Value of `key` as this transaction sees it.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.tx.get(key)
    }
    /// Whether `key` is present as this transaction sees it.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.tx.contains(key)
    }
    /// Buffers a write.
    pub fn set_with(&self, key: &str, value: impl AsRef<[u8]>, options: &SetOptions) -> Result<()> {
        self.tx.set(key, value.as_ref(), options.to_wit().as_ref())
    }
    /// Buffers a write without options.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.tx.set(key, value.as_ref(), None)
    }
    /// Buffers a write if absent; returns whether it will write.
    pub fn add_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<bool> {
        self.tx.add(key, value.as_ref(), options.to_wit().as_ref())
    }
    /// Buffers a delete; returns whether the key existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.tx.delete(key)
    }
    /// Adds `delta` to a counter; returns the new value.
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.tx.incr(key, delta, default)
    }
    /// Subtracts `delta` from a counter; returns the new value.
    pub fn decr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.tx.decr(key, delta, default)
    }
}

/// Human-readable text of an error (the WIT variant has no `Display`).
pub fn describe(e: &Error) -> String {
    match e {
        Error::NotFound => "not found".into(),
        Error::AccessDenied => "access denied".into(),
        Error::InvalidKey(m) => format!("invalid key: {m}"),
        Error::TooLarge(max) => format!("value too large (maximum {max} bytes)"),
        Error::QuotaExceeded(m) => format!("quota exceeded: {m}"),
        Error::NotACounter => "not a counter".into(),
        Error::Overflow => "counter overflow".into(),
        Error::Conflict => "transaction conflict".into(),
        Error::TransactionClosed => "transaction closed".into(),
        Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        Error::Io(m) => format!("storage error: {m}"),
    }
}
