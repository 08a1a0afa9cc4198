//! Engines behind the public [`Store`](crate::Store) API.
//!
//! The public API (validation, typed values, memoize, locks, key iteration) is written
//! once in `store.rs` against the [`Backend`] contract; each engine implements only the
//! raw operations. Natively the engine is SQLite plus value files; other engines (the
//! WIT import inside a WebAssembly guest) implement the same contract.

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::options::{CheckReport, Config, EntryInfo, SetOptions, Stats};

#[cfg(all(feature = "sqlite", not(feature = "guest")))]
pub(crate) mod sqlite;

#[cfg(all(feature = "sqlite", not(feature = "guest")))]
pub(crate) use sqlite::Engine;

#[cfg(feature = "guest")]
pub mod guest;

#[cfg(feature = "guest")]
pub(crate) use guest::Engine;

/// Name of the database file inside a store directory.
pub(crate) const DB_FILE: &str = "sciqlop-cache.db";

/// One open transaction level; dropping it without `commit` rolls it back.
pub(crate) trait TxGuard {
    /// Commits this level (the outermost level commits to the database).
    fn commit(self) -> Result<()>;
}

/// A [`TxGuard`] behind a box, for the public [`Transaction`](crate::Transaction).
pub(crate) trait BoxedTx {
    /// Commits this level.
    fn commit_boxed(self: Box<Self>) -> Result<()>;
}

impl<T: TxGuard> BoxedTx for T {
    fn commit_boxed(self: Box<Self>) -> Result<()> {
        (*self).commit()
    }
}

/// The raw operations every engine provides. Keys and values arrive validated.
pub(crate) trait Backend: Sized + Send + Sync {
    /// Transaction guard type.
    type Tx<'a>: TxGuard
    where
        Self: 'a;

    fn open(dir: &Path, config: Config) -> Result<Self>;
    fn path(&self) -> &Path;
    fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>>;
    /// The value of `key`, owned (engines avoid a second copy where they can).
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }
    /// Values of several keys, in order.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Writes several entries, all or none.
    fn set_many(&self, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        let tx = self.begin()?;
        for (k, v) in entries {
            self.set(k, v, opts)?;
        }
        tx.commit()
    }
    fn set(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<()>;
    fn add(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool>;
    fn delete(&self, key: &str) -> Result<bool>;
    fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.pop_entry(key)?.map(|(v, _)| v))
    }
    /// The value of `key` with what is known of its entry, in one read.
    fn get_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// Removes `key` and returns its value and entry, atomically.
    fn pop_entry(&self, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// A value of the store's own metadata (not an entry).
    fn metadata(&self, name: &str) -> Result<Option<String>>;
    /// Sets (or with `None` removes) a value of the store's metadata.
    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()>;
    /// The current bound on bytes of values (0: none).
    fn max_size(&self) -> u64;
    /// Changes the bound on bytes of values from now on (0: none).
    fn set_max_size(&self, bytes: u64) -> Result<()>;
    /// Evicts least-recently-used entries now if the bound is exceeded; returns how many.
    fn evict(&self) -> Result<u64>;
    fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool>;
    fn contains(&self, key: &str) -> Result<bool>;
    fn info(&self, key: &str) -> Result<Option<EntryInfo>>;
    fn len(&self) -> Result<u64>;
    fn keys_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    fn clear(&self) -> Result<u64>;
    fn expire(&self) -> Result<u64>;
    fn evict_tag(&self, tag: &str) -> Result<u64>;
    /// Adds `delta` (an `i128`, so that `decr` by `i64::MIN` can be expressed) to the
    /// counter at `key`, created as `default + delta` when absent.
    fn incr(&self, key: &str, delta: i128, default: i64) -> Result<i64>;
    /// Whether this thread has a transaction open on this store.
    fn in_transaction(&self) -> bool;
    fn stats(&self) -> Stats;
    fn reset_stats(&self);
    fn size(&self) -> Result<u64>;
    fn volume(&self) -> Result<u64>;
    fn check(&self, fix: bool) -> Result<CheckReport>;
    fn begin(&self) -> Result<Self::Tx<'_>>;
    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool>;
    /// Releases the lock; inside a transaction, once the transaction ends (whether it
    /// commits or rolls back), so a rollback cannot bring a released lock back.
    fn unlock(&self, name: &str, owner: &str) -> Result<()>;
    fn maintain(&self) -> Result<()>;
}
