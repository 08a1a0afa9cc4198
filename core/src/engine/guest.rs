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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::engine::{
    Capabilities, Engine, EngineTx, Namespace, ReadCheck, Reopen, Version, WriteOp,
};
use crate::options::{CheckReport, EntryInfo, Expiry, SetOptions, Stats};
use crate::policy::Kind;
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

/// A store of the host, seen from the guest: [`GuestEngine::open`] opens the plugin's
/// store `name`.
pub struct GuestEngine {
    path: PathBuf,
    store: wit::Store,
    tx: Mutex<Option<TxState>>,
    /// Stats at the last `reset_stats` (the host keeps running totals).
    stats_base: Mutex<Stats>,
}

impl std::fmt::Debug for GuestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestEngine")
            .field("store", &self.path)
            .finish_non_exhaustive()
    }
}

/// A cache of the host, inside a plugin (`Cache::open("name")`).
pub type Cache = crate::Store<crate::CacheKind, GuestEngine>;
/// An index of the host, inside a plugin.
pub type Index = crate::Store<crate::IndexKind, GuestEngine>;

impl GuestEngine {
    /// Opens the plugin's store `name` (the host may refuse it:
    /// [`Error::AccessDenied`]). Only inside a `wasm32-wasip2` component.
    ///
    /// # Errors
    ///
    /// - [`Error::AccessDenied`]: the host refuses the store `name` to this plugin.
    /// - [`Error::QuotaExceeded`]: the plugin has as many stores open as the host allows.
    /// - [`Error::InvalidArgument`]: the host rejects `name`.
    /// - [`Error::Remote`]: the host failed to open the store.
    /// - [`Error::Unsupported`]: called outside a `wasm32` component.
    pub fn open(name: &str) -> Result<Self> {
        if !cfg!(target_arch = "wasm32") {
            return Err(Error::Unsupported(
                "the guest engine runs inside a wasm32-wasip2 component, on its host's store",
            ));
        }
        let store = wit::open(name).map_err(|e| match e {
            wt::Error::AccessDenied => Error::AccessDenied {
                store: name.to_owned(),
            },
            e => to_error(e, name),
        })?;
        Ok(GuestEngine {
            path: PathBuf::from(name),
            store,
            tx: Mutex::new(None),
            stats_base: Mutex::new(Stats::default()),
        })
    }
}

impl<P: crate::Policy> crate::Store<P, GuestEngine> {
    /// Opens the plugin's store `name` on its host.
    ///
    /// # Errors
    ///
    /// Those of [`GuestEngine::open`], and [`Error::WrongKind`] when `P` is not the
    /// kind of the host's store (a guest store is a cache).
    pub fn open(name: &str) -> Result<Self> {
        crate::Store::from_engine(
            Arc::new(GuestEngine::open(name)?),
            &crate::Config::default(),
        )
    }
}

/// The one namespace of a guest store (a plugin opens other stores by name instead).
fn only_default(ns: &Namespace) -> Result<()> {
    if ns.is_default() {
        Ok(())
    } else {
        Err(Error::Unsupported(
            "namespaces of a plugin are its stores: open another one by name",
        ))
    }
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

impl GuestEngine {
    /// Releases the locks released inside a transaction that just ended.
    fn release_locks(&self, unlocks: Vec<(String, String)>) {
        for (name, owner) in unlocks {
            if let Err(e) = Engine::unlock(self, &name, &owner) {
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
pub(crate) struct GuestTx<'a> {
    engine: &'a GuestEngine,
    done: bool,
}

impl EngineTx for GuestTx<'_> {
    fn commit(mut self: Box<Self>) -> Result<()> {
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

impl Drop for GuestTx<'_> {
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

impl Engine for GuestEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "guest",
            value_files: false,
            savepoints: false,
            transactions: true,
            multi_process: true,
            check: false,
            atomic_batches: true,
            namespaces: false,
            versions: false,
            entry_info: false,
            metadata: false,
        }
    }

    fn kind(&self) -> Kind {
        Kind::CACHE
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn namespace(&self, name: &str) -> Result<Namespace> {
        if name.is_empty() {
            return Ok(Namespace::DEFAULT);
        }
        only_default(&Namespace::new(1, name)).map(|()| Namespace::DEFAULT)
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(vec![Namespace::DEFAULT])
    }

    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match Engine::get(self, ns, key)? {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        only_default(ns)?;
        self.route(key, |t| t.get(key), |s| s.get(key))
    }

    fn get_entry(&self, _ns: &Namespace, _key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        Err(Error::Unsupported(
            "entry metadata is not part of the plugin interface",
        ))
    }

    fn get_versioned(&self, _ns: &Namespace, _key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        Err(Error::Unsupported(
            "versions are not part of the plugin interface: use a transaction",
        ))
    }

    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        only_default(ns)?;
        let owned: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.store_only("get_many inside a guest transaction", "", |s| {
            s.get_many(&owned)
        })
    }

    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        only_default(ns)?;
        self.route(key, |t| t.contains(key), |s| s.contains(key))
    }

    fn info(&self, _ns: &Namespace, _key: &str) -> Result<Option<EntryInfo>> {
        Err(Error::Unsupported(
            "entry_info is not part of the plugin interface",
        ))
    }

    fn len(&self, ns: &Namespace) -> Result<u64> {
        only_default(ns)?;
        self.store_only("len inside a guest transaction", "", wit::Store::len)
    }

    fn size(&self, ns: &Namespace) -> Result<u64> {
        only_default(ns)?;
        self.store.size().map_err(|e| to_error(e, ""))
    }

    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        only_default(ns)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        self.store_only("keys inside a guest transaction", prefix, |s| {
            s.keys(prefix, after, limit).map(|p| p.keys)
        })
    }

    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        // Through key pages: the interface has no count.
        let mut n = 0;
        let mut after: Option<String> = None;
        loop {
            let page = Engine::keys_page(self, ns, prefix, after.as_deref(), 1000)?;
            n += page.len() as u64;
            if page.len() < 1000 {
                return Ok(n);
            }
            after = page.last().cloned();
        }
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        only_default(ns)?;
        let o = wit_options(opts);
        self.route(
            key,
            |t| t.set(key, value, o.as_ref()),
            |s| s.set(key, value, o.as_ref()),
        )
        .map_err(|e| with_len(e, value.len()))
    }

    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        only_default(ns)?;
        let owned: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let o = wit_options(opts);
        self.store_only("set_many inside a guest transaction", "", |s| {
            s.set_many(&owned, o.as_ref())
        })
    }

    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        only_default(ns)?;
        let o = wit_options(opts);
        self.route(
            key,
            |t| t.add(key, value, o.as_ref()),
            |s| s.add(key, value, o.as_ref()),
        )
        .map_err(|e| with_len(e, value.len()))
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        only_default(ns)?;
        self.route(key, |t| t.delete(key), |s| s.delete(key))
    }

    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        only_default(ns)?;
        let v = self.store_only("pop inside a guest transaction", key, |s| s.pop(key))?;
        Ok(v.map(|v| {
            let size = v.len() as u64;
            (
                v,
                EntryInfo {
                    size,
                    ..EntryInfo::empty()
                },
            )
        }))
    }

    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool> {
        only_default(ns)?;
        self.store_only("touch inside a guest transaction", key, |s| {
            s.touch(key, expire.map(millis))
        })
    }

    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        only_default(ns)?;
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

    fn clear(&self, ns: &Namespace) -> Result<u64> {
        only_default(ns)?;
        self.store_only("clear inside a guest transaction", "", wit::Store::clear)
    }

    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        // Not atomic through the interface: key pages, then deletes.
        let mut n = 0;
        loop {
            let page = Engine::keys_page(self, ns, prefix, None, 1000)?;
            if page.is_empty() {
                return Ok(n);
            }
            for k in &page {
                if Engine::delete(self, ns, k)? {
                    n += 1;
                }
            }
        }
    }

    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        only_default(ns)?;
        self.store_only("evict_tag inside a guest transaction", tag, |s| {
            s.evict_tag(tag)
        })
    }

    fn expire(&self) -> Result<u64> {
        self.store_only("expire inside a guest transaction", "", wit::Store::expire)
    }

    fn compare_and_swap(
        &self,
        _ns: &Namespace,
        _key: &str,
        _expected: Option<Version>,
        _new: Option<&[u8]>,
        _opts: &SetOptions,
    ) -> Result<bool> {
        Err(Error::Unsupported(
            "versions are not part of the plugin interface: use a transaction",
        ))
    }

    fn commit_optimistic(&self, _reads: &[ReadCheck], _writes: &[WriteOp]) -> Result<()> {
        Err(Error::Unsupported(
            "inside a plugin, `transact` is the host's optimistic transaction",
        ))
    }

    fn begin(&self, _scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>> {
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
        Ok(Box::new(GuestTx {
            engine: self,
            done: false,
        }))
    }

    fn in_transaction(&self) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
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

    fn total_size(&self) -> Result<u64> {
        self.store.size().map_err(|e| to_error(e, ""))
    }

    fn volume(&self) -> Result<u64> {
        self.total_size()
    }

    fn check(&self, _fix: bool) -> Result<CheckReport> {
        Err(Error::Unsupported(
            "check runs on the host, not inside a plugin",
        ))
    }

    fn maintain(&self) -> Result<()> {
        Ok(())
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

    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(self.reopen()?))
    }
}

impl Reopen for GuestEngine {
    fn reopen(&self) -> Result<Self> {
        GuestEngine::open(&self.path.to_string_lossy())
    }
}
