//! The guest engine: inside a `wasm32-wasip2` component, a store is the host's, reached
//! through the `sciqlop:cache` WIT import. `Cache::open(name)` opens the plugin's store
//! `name` (the host scopes it to the plugin and may refuse it: [`Error::AccessDenied`]).
//!
//! Differences from the native engine, all surfaced as errors rather than silently:
//! - expiry is carried in milliseconds (sub-millisecond parts are dropped);
//! - a transaction is the host's optimistic transaction: writes are applied at commit,
//!   which fails with [`Error::Conflict`] if a key it read changed meanwhile. Inside it,
//!   `get`, `contains`, `set`, `add`, `delete`, `incr`/`decr` are available; other
//!   operations are [`Error::Unsupported`]. Nested `transact` calls join the outer one
//!   but cannot roll back on their own: an inner `Err` makes the outer commit fail with
//!   [`Error::TransactionAborted`];
//! - `check` runs on the host ([`Error::Unsupported`] here), `maintain` is the host's
//!   business (a no-op here), `size` and `volume` are the plugin's bytes as the host's
//!   quota counts them;
//! - locks are entries under the reserved prefix [`LOCK_PREFIX`] (visible to `keys`).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::engine::{Backend, TxGuard};
use crate::options::{CheckReport, Config, EntryInfo, Expiry, SetOptions, Stats};
use crate::policy::Policy;
use crate::{Error, Result};

/// The `sciqlop:cache` import bindings (world `imports`), for plugin crates to reuse
/// with `wit_bindgen::generate!({ .., with: { "sciqlop:cache/cache@0.1.0":
/// sciqlop_cache::wit_bindings::sciqlop::cache::cache, .. } })`.
#[allow(missing_docs, clippy::all, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "imports",
    });
}

use bindings::sciqlop::cache::cache as wit;
use bindings::sciqlop::cache::types as wt;

/// Key prefix of the entries that hold locks inside a guest.
pub const LOCK_PREFIX: &str = "sciqlop-cache.lock/";

/// A store of the host, seen from the guest.
pub(crate) struct Engine<P> {
    path: PathBuf,
    store: wit::Store,
    tx: Mutex<Option<TxState>>,
    /// Stats at the last `reset_stats` (the host keeps running totals).
    stats_base: Mutex<Stats>,
    _kind: PhantomData<P>,
}

struct TxState {
    tx: wit::Transaction,
    depth: u32,
    failed: bool,
    /// Locks released inside the transaction: released once it ends.
    unlocks: Vec<(String, String)>,
}

fn to_error(e: wt::Error, key: &str) -> Error {
    match e {
        wt::Error::NotFound => Error::NotFound(format!("{key:?}")),
        wt::Error::AccessDenied => Error::AccessDenied {
            store: key.to_owned(),
        },
        wt::Error::InvalidKey(m) => Error::InvalidKey(m),
        wt::Error::InvalidArgument(m) => Error::InvalidArgument(m),
        // The caller knows the length: see `with_len`.
        wt::Error::TooLarge(max) => Error::ValueTooLarge { len: 0, max },
        wt::Error::QuotaExceeded(m) => Error::QuotaExceeded(m),
        wt::Error::NotACounter => Error::NotACounter {
            key: key.to_owned(),
        },
        wt::Error::Overflow => Error::CounterOverflow {
            key: key.to_owned(),
        },
        wt::Error::Conflict => Error::Conflict,
        wt::Error::TransactionClosed => Error::TransactionAborted,
        wt::Error::Io(m) => Error::Remote(m),
    }
}

/// Fills in the length of a rejected value.
fn with_len(e: Error, len: usize) -> Error {
    match e {
        Error::ValueTooLarge { max, .. } => Error::ValueTooLarge {
            len: len as u64,
            max,
        },
        e => e,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn wit_options(opts: &SetOptions) -> Option<wt::SetOptions> {
    if opts.expire.is_none() && opts.tag.is_none() {
        return None;
    }
    Some(wt::SetOptions {
        expire_ms: opts.expire.map(|e| match e {
            Expiry::After(d) => millis(d),
            Expiry::At(t) => millis(t.duration_since(SystemTime::now()).unwrap_or_default()),
        }),
        tag: opts.tag.clone(),
    })
}

impl<P: Policy> Engine<P> {
    /// Releases the locks released inside a transaction that just ended.
    fn release_locks(&self, unlocks: Vec<(String, String)>) {
        for (name, owner) in unlocks {
            if let Err(e) = Backend::unlock(self, &name, &owner) {
                tracing::warn!(lock = %name, error = %e, "releasing lock failed; it will expire");
            }
        }
    }

    /// Runs `in_tx` on the open transaction, or `outside` on the store.
    fn route<T>(
        &self,
        key: &str,
        in_tx: impl FnOnce(&wit::Transaction) -> Result<T, wt::Error>,
        outside: impl FnOnce(&wit::Store) -> Result<T, wt::Error>,
    ) -> Result<T> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some(t) if t.failed => Err(Error::TransactionAborted),
            Some(t) => in_tx(&t.tx).map_err(|e| to_error(e, key)),
            None => outside(&self.store).map_err(|e| to_error(e, key)),
        }
    }

    /// Runs a store-only operation; refused inside a transaction.
    fn store_only<T>(
        &self,
        what: &'static str,
        key: &str,
        f: impl FnOnce(&wit::Store) -> Result<T, wt::Error>,
    ) -> Result<T> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_some() {
            return Err(Error::Unsupported(what));
        }
        f(&self.store).map_err(|e| to_error(e, key))
    }
}

/// An open level of a guest transaction.
pub(crate) struct GuestTx<'a, P: Policy> {
    engine: &'a Engine<P>,
    done: bool,
}

impl<P: Policy> TxGuard for GuestTx<'_, P> {
    fn commit(mut self) -> Result<()> {
        self.done = true;
        let mut guard = self
            .engine
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(state) = guard.as_mut() else {
            return Err(Error::TransactionAborted);
        };
        if state.depth > 1 {
            state.depth -= 1;
            return Ok(());
        }
        let state = guard.take().ok_or(Error::TransactionAborted)?;
        drop(guard);
        let out = if state.failed {
            state.tx.rollback();
            Err(Error::TransactionAborted)
        } else {
            state.tx.commit().map_err(|e| to_error(e, ""))
        };
        self.engine.release_locks(state.unlocks);
        out
    }
}

impl<P: Policy> Drop for GuestTx<'_, P> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut guard = self
            .engine
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(state) = guard.as_mut() {
            if state.depth > 1 {
                // No partial rollback through the interface: fail the whole transaction.
                state.depth -= 1;
                state.failed = true;
            } else if let Some(state) = guard.take() {
                drop(guard);
                state.tx.rollback();
                self.engine.release_locks(state.unlocks);
            }
        }
    }
}

impl<P: Policy> Backend for Engine<P> {
    type Tx<'a> = GuestTx<'a, P>;

    fn open(dir: &Path, _config: Config) -> Result<Self> {
        let name = dir.to_string_lossy().into_owned();
        let store = wit::open(&name).map_err(|e| match e {
            wt::Error::AccessDenied => Error::AccessDenied {
                store: name.clone(),
            },
            e => to_error(e, &name),
        })?;
        Ok(Engine {
            path: dir.to_owned(),
            store,
            tx: Mutex::new(None),
            stats_base: Mutex::new(Stats::default()),
            _kind: PhantomData,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.get(key)?.map(|v| f(&v)))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.route(key, |t| t.get(key), |s| s.get(key))
    }

    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let owned: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.store_only("get_many inside a guest transaction", "", |s| {
            s.get_many(&owned)
        })
    }

    fn set_many(&self, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        let owned: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let o = wit_options(opts);
        self.store_only("set_many inside a guest transaction", "", |s| {
            s.set_many(&owned, o.as_ref())
        })
    }

    fn set(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        let o = wit_options(opts);
        self.route(
            key,
            |t| t.set(key, value, o.as_ref()),
            |s| s.set(key, value, o.as_ref()),
        )
        .map_err(|e| with_len(e, value.len()))
    }

    fn add(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        let o = wit_options(opts);
        self.route(
            key,
            |t| t.add(key, value, o.as_ref()),
            |s| s.add(key, value, o.as_ref()),
        )
        .map_err(|e| with_len(e, value.len()))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.route(key, |t| t.delete(key), |s| s.delete(key))
    }

    fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store_only("pop inside a guest transaction", key, |s| s.pop(key))
    }

    fn get_entry(&self, _key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        Err(Error::Unsupported(
            "entry metadata is not part of the plugin interface",
        ))
    }

    fn pop_entry(&self, _key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        Err(Error::Unsupported(
            "entry metadata is not part of the plugin interface",
        ))
    }

    fn metadata(&self, _name: &str) -> Result<Option<String>> {
        Err(Error::Unsupported(
            "store metadata is not part of the plugin interface",
        ))
    }

    fn set_metadata(&self, _name: &str, _value: Option<&str>) -> Result<()> {
        Err(Error::Unsupported(
            "store metadata is not part of the plugin interface",
        ))
    }

    fn max_size(&self) -> u64 {
        0
    }

    fn set_max_size(&self, _bytes: u64) -> Result<()> {
        Err(Error::Unsupported(
            "a plugin's byte quota is set by its host",
        ))
    }

    fn evict(&self) -> Result<u64> {
        Err(Error::Unsupported("eviction runs on the host"))
    }

    fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.store_only("touch inside a guest transaction", key, |s| {
            s.touch(key, expire.map(millis))
        })
    }

    fn contains(&self, key: &str) -> Result<bool> {
        self.route(key, |t| t.contains(key), |s| s.contains(key))
    }

    fn info(&self, _key: &str) -> Result<Option<EntryInfo>> {
        Err(Error::Unsupported(
            "entry_info is not part of the plugin interface",
        ))
    }

    fn len(&self) -> Result<u64> {
        self.store_only("len inside a guest transaction", "", wit::Store::len)
    }

    fn keys_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        self.store_only("keys inside a guest transaction", prefix, |s| {
            s.keys(prefix, after, limit).map(|p| p.keys)
        })
    }

    fn clear(&self) -> Result<u64> {
        self.store_only("clear inside a guest transaction", "", wit::Store::clear)
    }

    fn expire(&self) -> Result<u64> {
        self.store_only("expire inside a guest transaction", "", wit::Store::expire)
    }

    fn evict_tag(&self, tag: &str) -> Result<u64> {
        self.store_only("evict_tag inside a guest transaction", tag, |s| {
            s.evict_tag(tag)
        })
    }

    fn incr(&self, key: &str, delta: i128, default: i64) -> Result<i64> {
        // The interface carries an s64 delta: `decr(i64::MIN)` is the one delta
        // outside it, and `decr` can express it.
        match i64::try_from(delta) {
            Ok(d) => self.route(
                key,
                |t| t.incr(key, d, default),
                |s| s.incr(key, d, default),
            ),
            Err(_) => {
                let d = i64::try_from(-delta).map_err(|_| Error::CounterOverflow {
                    key: key.to_owned(),
                })?;
                self.route(
                    key,
                    |t| t.decr(key, d, default),
                    |s| s.decr(key, d, default),
                )
            }
        }
    }

    fn in_transaction(&self) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    fn stats(&self) -> Stats {
        let now = self
            .store
            .stats()
            .map(|s| Stats {
                hits: s.hits,
                misses: s.misses,
            })
            .unwrap_or_default();
        let base = *self
            .stats_base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Stats {
            hits: now.hits.saturating_sub(base.hits),
            misses: now.misses.saturating_sub(base.misses),
        }
    }

    fn reset_stats(&self) {
        if let Ok(s) = self.store.stats() {
            *self
                .stats_base
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Stats {
                hits: s.hits,
                misses: s.misses,
            };
        }
    }

    fn size(&self) -> Result<u64> {
        self.store.size().map_err(|e| to_error(e, ""))
    }

    fn volume(&self) -> Result<u64> {
        self.size()
    }

    fn check(&self, _fix: bool) -> Result<CheckReport> {
        Err(Error::Unsupported(
            "check runs on the host, not inside a plugin",
        ))
    }

    fn begin(&self) -> Result<GuestTx<'_, P>> {
        let mut guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_mut() {
            Some(state) => state.depth += 1,
            None => {
                let tx = self.store.begin().map_err(|e| to_error(e, ""))?;
                *guard = Some(TxState {
                    tx,
                    depth: 1,
                    failed: false,
                    unlocks: Vec::new(),
                });
            }
        }
        Ok(GuestTx {
            engine: self,
            done: false,
        })
    }

    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        let key = format!("{LOCK_PREFIX}{name}");
        let opts = wt::SetOptions {
            expire_ms: Some(millis(expire).max(1)),
            tag: None,
        };
        self.store_only("locks inside a guest transaction", &key, |s| {
            s.add(&key, owner.as_bytes(), Some(&opts))
        })
    }

    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        {
            let mut guard = self
                .tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(state) = guard.as_mut() {
                state.unlocks.push((name.to_owned(), owner.to_owned()));
                return Ok(());
            }
        }
        let key = format!("{LOCK_PREFIX}{name}");
        self.store_only("locks inside a guest transaction", &key, |s| {
            // Delete only if still ours: read and delete in one optimistic transaction.
            let tx = s.begin()?;
            if tx.get(&key)?.as_deref() == Some(owner.as_bytes()) {
                tx.delete(&key)?;
                match tx.commit() {
                    // Someone took it over after it expired: not ours to delete.
                    Err(wt::Error::Conflict) => Ok(()),
                    r => r,
                }
            } else {
                tx.rollback();
                Ok(())
            }
        })
    }

    fn maintain(&self) -> Result<()> {
        Ok(())
    }
}
