//! A plugin's namespace: its cache, its grants and quotas, and the store and transaction
//! operations behind the WIT interface.
//!
//! # Layout: one cache per plugin, one namespace per store
//!
//! Each plugin gets one cache in its own directory, `ROOT/plugins/<plugin>/`, served
//! through the core's engine contract ([`PluginCache`] is a `Store` over
//! `dyn Engine`), and each of its stores is one of the core's namespaces in it: the
//! store `default` (also what `wasi:keyvalue` buckets `""` and `"default"` open) is the
//! cache's default namespace, and the store `s` is the namespace `s`. Keys and tags are
//! the plugin's own, untouched: what a C, C++, Python or CLI program sees when it opens
//! the directory (and [`Store::namespace`](sciqlop_cache::Store::namespace)`("s")`).
//!
//! One cache per plugin rather than one per (plugin, store) because the byte quota is
//! per plugin: the core's `max_size` then is exactly the plugin's quota, with LRU
//! eviction across all of the plugin's stores, and a plugin cannot multiply its quota by
//! opening more store names. Nothing is shared between plugins: another plugin's keys,
//! counts, sizes, statistics and errors live in another directory and another database.
//! A store's `len`, `clear`, `keys` and `evict-tag` are the core's, per namespace (exact
//! counts, `clear` atomic, no key walks); `size`, `stats` and `expire` report on the
//! plugin's whole cache. Compare-and-swap and transaction conflicts use the entry
//! versions the core keeps in the store, so they hold across host processes sharing a
//! root.
//!
//! Directories written by earlier hosts, which kept store `s`'s key `k` as the key `s/k`
//! (and its tags as `s/tag`) in the default namespace, are converted when the plugin's
//! scope is first opened, in one transaction (see [`LAYOUT_META`]).
//!
//! # A scope on Redis: several host processes, one plugin's data
//!
//! A plugin whose policy names a [`location`](PluginPolicy::location) (`redis://…` or
//! `redis+cluster://…`; in the configuration file, `location = "…"`) has its cache on
//! that Redis server or cluster instead of under the root: every host process given the
//! same location serves the same data, on one machine or many. The layout is the same:
//! the location's `namespace=NAME` is the plugin's key space on the server (without it,
//! the host adds `namespace=<plugin>`), its store `default` is that key space's default
//! namespace and the store `s` its namespace `s`, each counted, listed and cleared apart
//! (the Redis engine's namespaces). The byte quota is the Redis store's `max_size`, with
//! LRU eviction across the plugin's stores on the server. On a Redis Cluster a plugin's
//! whole key space lives in one hash slot (one node and its replicas).
//!
//! # Transactions: optimistic on every engine
//!
//! A plugin's transaction buffers its writes in the host and commits them with the
//! engine's optimistic commit ([`Engine::commit_optimistic`]): one atomic step that
//! checks the version of every key the transaction read and applies its writes, or
//! writes nothing and answers `conflict`. SQLite runs it as one write transaction; Redis,
//! which has no open-ended transactions, as one Lua script. The draft `wasi:keyvalue`
//! `increment` (on a u64) is a compare-and-swap loop on the same versions.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sciqlop_cache::engine::{ReadCheck, WriteOp, registry};
use sciqlop_cache::{Cache, CacheKind, Engine, Kind, Namespace, SetOptions, Store, Version};

use crate::HostError;
use crate::bindings::sciqlop::cache::types::{
    Error as WitError, KeyPage, SetOptions as WitSetOptions, Stats,
};
use crate::config::PluginPolicy;

/// Longest plugin or store name.
pub const MAX_NAME_LEN: usize = 64;
/// Most keys returned by one `keys` call.
pub const MAX_PAGE: u32 = 1000;
/// Most keys in one `get-many` / `set-many` call.
pub const MAX_BATCH: usize = 10_000;

/// Attempts of a compare-and-swap loop (the draft `increment`) before it gives up with
/// `conflict`: each failed attempt means another writer changed the key meanwhile.
const MAX_CAS_ATTEMPTS: u32 = 100;

/// Whether `name` is a valid plugin or store name: 1 to 64 of `[A-Za-z0-9_.-]`, not
/// starting with a dot (so never `.`/`..`, never a path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The directory of plugin `plugin` under `root`.
pub fn plugin_dir(root: &Path, plugin: &str) -> Result<PathBuf, HostError> {
    if !valid_name(plugin) {
        return Err(HostError::InvalidName(plugin.to_owned()));
    }
    Ok(root.join("plugins").join(plugin))
}

type OpResult<T> = Result<T, WitError>;

/// A plugin's cache: the core's `Cache` API over whatever engine serves it.
pub type PluginCache = Store<CacheKind, dyn Engine>;

/// The store whose data is the cache's default namespace.
pub const DEFAULT_STORE: &str = "default";

/// Metadata entry of a plugin's cache naming its layout: `namespaces` once the stores
/// are namespaces (absent in directories of earlier hosts, converted on open).
pub const LAYOUT_META: &str = "host.layout";
const LAYOUT: &str = "namespaces";

/// Bytes the transactions of one invocation buffer together (shared by its
/// [`TxHandle`]s): bounded by the plugin's byte quota, whatever the number of
/// transactions open at once.
pub(crate) type TxBudget = Arc<AtomicU64>;

/// A plugin's namespace: opened once per host and shared by all its invocations.
pub struct PluginScope {
    name: String,
    cache: PluginCache,
    policy: PluginPolicy,
    /// Store names known to have a namespace (not `default`), bounded by `max_stores`.
    stores: Mutex<HashSet<String>>,
    /// At least the entries of all the plugin's stores: counted exactly when it passes
    /// `max_entries`, raised by every write that may add entries meanwhile.
    entries: AtomicU64,
}

impl std::fmt::Debug for PluginScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginScope")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Handle of an open store (the WIT `store` resource): the view of its namespace.
#[derive(Debug)]
pub struct StoreHandle {
    store: Arc<PluginCache>,
}

/// Handle of a transaction (the WIT `transaction` resource).
///
/// Writes are buffered here and applied at `commit` by the engine's optimistic commit,
/// which checks in the same atomic step that every key the transaction read still has
/// the version it read (the core's entry versions: `conflict` otherwise, even after an
/// A→B→A change or a write by another process). So a transaction never holds a lock of
/// the store while the guest runs, and a guest that traps or drops the handle leaves
/// nothing behind.
#[derive(Debug)]
pub struct TxHandle {
    store: Arc<PluginCache>,
    open: bool,
    /// For each internal key the transaction read: the value it read first and the
    /// entry's version then (`None`: absent), checked again at commit.
    reads: HashMap<String, (Option<Vec<u8>>, Option<Version>)>,
    /// The transaction's own view of keys it wrote.
    view: HashMap<String, Option<Vec<u8>>>,
    ops: Vec<TxOp>,
    /// Bytes held by `reads`, `view` and `ops`, also counted in `budget`.
    held: u64,
    /// What every transaction of the invocation holds together, bounded by the
    /// plugin's byte quota.
    budget: TxBudget,
}

impl TxHandle {
    /// Gives back what the transaction held to the invocation's budget.
    fn release_held(&mut self) {
        self.budget.fetch_sub(self.held, Ordering::Relaxed);
        self.held = 0;
    }
}

impl Drop for TxHandle {
    fn drop(&mut self) {
        self.release_held();
    }
}

/// A write buffered by a transaction. An `add` is a `Set` (its read of the key, checked
/// at commit, found it absent); an `incr` is a `Counter` (its read of the counter is
/// checked at commit too).
#[derive(Debug)]
enum TxOp {
    /// The value with these options.
    Set(String, Vec<u8>, SetOptions),
    /// A counter's new value, keeping the expiry and tag of the key as the transaction
    /// sees it.
    Counter(String, Vec<u8>),
    /// Removes the key.
    Delete(String),
}

impl PluginScope {
    /// Opens (creating if needed) the namespace of `plugin`: under `root`, or at the
    /// policy's [`location`](PluginPolicy::location) when it names one (a Redis server
    /// or cluster; see the [module documentation](self)).
    ///
    /// # Errors
    ///
    /// [`HostError::InvalidName`] for an invalid plugin name, [`HostError::Io`] when its
    /// directory cannot be made, [`HostError::Cache`] when its cache cannot be opened
    /// (e.g. the Redis server cannot be reached: the core's error names the location).
    pub fn open(root: &Path, plugin: &str, policy: PluginPolicy) -> Result<Arc<Self>, HostError> {
        let dir = plugin_dir(root, plugin)?;
        let limits = &policy.limits;
        let err = |e| HostError::Cache {
            plugin: plugin.to_owned(),
            source: e,
        };
        let builder = Cache::builder()
            .max_size(limits.max_bytes)
            // Keys of directories of earlier hosts carry a store prefix until converted;
            // the plugin's own limit is checked first. Saturating: a configured limit
            // near usize::MAX (the TOML file takes any u64) must not overflow.
            .max_key_len(limits.max_key_len.saturating_add(MAX_NAME_LEN + 1))
            .max_value_size(limits.max_value_size);
        let config = builder.config().clone();
        let engine: Arc<dyn Engine> = match &policy.location {
            Some(location) => {
                sciqlop_cache_redis::register();
                let location = scope_location(location, plugin);
                registry::open_location(&location, &config, Some(Kind::CACHE)).map_err(err)?
            }
            None => {
                std::fs::create_dir_all(&dir).map_err(|e| HostError::Io {
                    context: format!("creating {}", dir.display()),
                    source: e,
                })?;
                builder.open(&dir).map_err(err)?.engine().clone()
            }
        };
        let cache = PluginCache::from_engine(engine, &config).map_err(err)?;
        convert_prefixed_layout(&cache).map_err(err)?;
        let names = named_stores(&cache).map_err(err)?;
        let entries = AtomicU64::new(count_entries(&cache, &names).map_err(err)?);
        Ok(Arc::new(PluginScope {
            name: plugin.to_owned(),
            cache,
            policy,
            stores: Mutex::new(names),
            entries,
        }))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's policy.
    pub fn policy(&self) -> &PluginPolicy {
        &self.policy
    }

    /// The plugin's cache, for the embedder (e.g. to inspect or seed a plugin's data):
    /// the store `default`'s entries; [`store`](Self::store) for the others.
    pub fn cache(&self) -> &PluginCache {
        &self.cache
    }

    /// The view of the plugin's store `name` (its namespace), for the embedder.
    pub fn store(&self, name: &str) -> Result<PluginCache, HostError> {
        if !valid_name(name) {
            return Err(HostError::InvalidName(name.to_owned()));
        }
        self.namespace_of(name).map_err(|e| HostError::Cache {
            plugin: self.name.clone(),
            source: e,
        })
    }

    fn namespace_of(&self, name: &str) -> sciqlop_cache::Result<PluginCache> {
        self.cache
            .namespace(if name == DEFAULT_STORE { "" } else { name })
    }

    /// Checks a store name against validity and grants.
    pub(crate) fn open_store(&self, name: &str) -> OpResult<StoreHandle> {
        if !valid_name(name) {
            return Err(WitError::InvalidArgument(format!(
                "store name must be 1 to {MAX_NAME_LEN} of [A-Za-z0-9_.-], not starting with '.'"
            )));
        }
        if !self.policy.grants(name) {
            return Err(WitError::AccessDenied);
        }
        self.count_store(name)?;
        let store = self.namespace_of(name).map_err(|e| self.map(e))?;
        Ok(StoreHandle {
            store: Arc::new(store),
        })
    }

    /// Admits store `name` under `max_stores`: a name the cache already holds, or a new
    /// one while there is room (each new name is a namespace kept on disk, and in the
    /// memory of every process that opened it).
    fn count_store(&self, name: &str) -> OpResult<()> {
        if name == DEFAULT_STORE {
            return Ok(());
        }
        // A poisoned lock only means another thread panicked while holding a set of
        // names, which stays valid.
        let mut known = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if known.contains(name) {
            return Ok(());
        }
        let max = self.policy.limits.max_stores as usize;
        if known.len() >= max {
            // Other host processes may have made names meanwhile: count them exactly.
            *known = named_stores(&self.cache).map_err(|e| self.map(e))?;
            if !known.contains(name) && known.len() >= max {
                return Err(WitError::QuotaExceeded(format!(
                    "the plugin already has {} stores, the maximum (max_stores); opening a new store name {name:?} would make one more",
                    known.len()
                )));
            }
        }
        known.insert(name.to_owned());
        Ok(())
    }

    /// Admits a write of `keys` to `store` under `max_entries`. Cheap while the running
    /// estimate stays under the limit; past it the entries are counted exactly, and
    /// when there is no room for the keys that are new, the write is refused (writes to
    /// existing keys always pass).
    fn admit(&self, store: &PluginCache, keys: &[&str]) -> OpResult<()> {
        let max = self.policy.limits.max_entries;
        let n = keys.len() as u64;
        if self.entries.fetch_add(n, Ordering::Relaxed) + n <= max {
            return Ok(());
        }
        let names = self
            .stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let total = count_entries(&self.cache, &names).map_err(|e| self.map(e))?;
        self.entries.store(total, Ordering::Relaxed);
        if total + n <= max {
            self.entries.fetch_add(n, Ordering::Relaxed);
            return Ok(());
        }
        let mut new = 0u64;
        for k in keys {
            if !store.contains(k).map_err(|e| self.map(e))? {
                new += 1;
            }
        }
        if total + new > max {
            return Err(WitError::QuotaExceeded(format!(
                "the plugin's stores hold {total} entries and the maximum is {max} (max_entries): delete some first, or write to existing keys"
            )));
        }
        self.entries.fetch_add(new, Ordering::Relaxed);
        Ok(())
    }

    /// `key`, checked against the plugin's key length limit.
    fn key<'k>(&self, key: &'k str) -> OpResult<&'k str> {
        let max = self.policy.limits.max_key_len;
        if key.len() > max {
            return Err(WitError::InvalidKey(format!(
                "key of {} bytes is longer than the maximum of {max} bytes",
                key.len()
            )));
        }
        Ok(key)
    }

    fn check_value(&self, key_len: usize, value: &[u8]) -> OpResult<()> {
        let limits = &self.policy.limits;
        let len = value.len() as u64;
        if len > limits.max_value_size {
            return Err(WitError::TooLarge(limits.max_value_size));
        }
        let entry = len + key_len as u64;
        if entry > limits.max_bytes {
            return Err(WitError::QuotaExceeded(format!(
                "entry of {entry} bytes is larger than the plugin's byte quota of {} bytes",
                limits.max_bytes
            )));
        }
        Ok(())
    }

    fn options(&self, o: Option<&WitSetOptions>) -> OpResult<SetOptions> {
        let mut opts = SetOptions::new();
        if let Some(o) = o {
            if let Some(ms) = o.expire_ms {
                opts = opts.expire(Duration::from_millis(ms));
            }
            if let Some(tag) = &o.tag {
                opts = opts.tag(self.tag(tag)?);
            }
        }
        Ok(opts)
    }

    fn tag<'t>(&self, tag: &'t str) -> OpResult<&'t str> {
        let max = self.policy.limits.max_key_len;
        if tag.len() > max {
            return Err(WitError::InvalidArgument(format!(
                "tag longer than {max} bytes"
            )));
        }
        Ok(tag)
    }

    /// Maps a core error to the WIT error. Storage failures are logged on the host with
    /// their details; the plugin gets a message without host paths.
    fn map(&self, e: sciqlop_cache::Error) -> WitError {
        use sciqlop_cache::Error as E;
        match e {
            E::KeyTooLong { len, max } => {
                WitError::InvalidKey(format!("key of {len} bytes is longer than {max} bytes"))
            }
            E::ValueTooLarge { max, .. } => WitError::TooLarge(max),
            E::InvalidArgument(m) => WitError::InvalidArgument(m),
            E::NotACounter { .. } => WitError::NotACounter,
            E::CounterOverflow { .. } => WitError::Overflow,
            other => {
                tracing::warn!(plugin = %self.name, error = %other, "storage error in a plugin's cache");
                WitError::Io("storage error on the host".to_owned())
            }
        }
    }

    // ---- store operations ----

    pub(crate) fn get(&self, h: &StoreHandle, key: &str) -> OpResult<Option<Vec<u8>>> {
        let k = self.key(key)?;
        h.store.get(k).map_err(|e| self.map(e))
    }

    pub(crate) fn set(
        &self,
        h: &StoreHandle,
        key: &str,
        value: &[u8],
        o: Option<&WitSetOptions>,
    ) -> OpResult<()> {
        let k = self.key(key)?;
        self.check_value(k.len(), value)?;
        let opts = self.options(o)?;
        self.admit(&h.store, &[k])?;
        h.store.set_with(k, value, &opts).map_err(|e| self.map(e))
    }

    pub(crate) fn add(
        &self,
        h: &StoreHandle,
        key: &str,
        value: &[u8],
        o: Option<&WitSetOptions>,
    ) -> OpResult<bool> {
        let k = self.key(key)?;
        self.check_value(k.len(), value)?;
        let opts = self.options(o)?;
        self.admit(&h.store, &[k])?;
        h.store.add_with(k, value, &opts).map_err(|e| self.map(e))
    }

    pub(crate) fn delete(&self, h: &StoreHandle, key: &str) -> OpResult<bool> {
        let k = self.key(key)?;
        h.store.delete(k).map_err(|e| self.map(e))
    }

    pub(crate) fn pop(&self, h: &StoreHandle, key: &str) -> OpResult<Option<Vec<u8>>> {
        let k = self.key(key)?;
        h.store.pop(k).map_err(|e| self.map(e))
    }

    pub(crate) fn touch(
        &self,
        h: &StoreHandle,
        key: &str,
        expire_ms: Option<u64>,
    ) -> OpResult<bool> {
        let k = self.key(key)?;
        h.store
            .touch(k, expire_ms.map(Duration::from_millis))
            .map_err(|e| self.map(e))
    }

    pub(crate) fn contains(&self, h: &StoreHandle, key: &str) -> OpResult<bool> {
        let k = self.key(key)?;
        h.store.contains(k).map_err(|e| self.map(e))
    }

    pub(crate) fn incr(
        &self,
        h: &StoreHandle,
        key: &str,
        delta: i64,
        default: i64,
    ) -> OpResult<i64> {
        let k = self.key(key)?;
        self.admit(&h.store, &[k])?;
        h.store.incr(k, delta, default).map_err(|e| self.map(e))
    }

    pub(crate) fn decr(
        &self,
        h: &StoreHandle,
        key: &str,
        delta: i64,
        default: i64,
    ) -> OpResult<i64> {
        let k = self.key(key)?;
        self.admit(&h.store, &[k])?;
        h.store.decr(k, delta, default).map_err(|e| self.map(e))
    }

    pub(crate) fn evict_tag(&self, h: &StoreHandle, tag: &str) -> OpResult<u64> {
        let t = self.tag(tag)?;
        h.store.evict_tag(t).map_err(|e| self.map(e))
    }

    pub(crate) fn expire(&self) -> OpResult<u64> {
        self.cache.expire().map_err(|e| self.map(e))
    }

    /// Removes every key of the store, atomically (the core's clear of its namespace).
    pub(crate) fn clear(&self, h: &StoreHandle) -> OpResult<u64> {
        h.store.clear().map_err(|e| self.map(e))
    }

    /// Live keys of the store (the core's exact count of its namespace).
    pub(crate) fn len(&self, h: &StoreHandle) -> OpResult<u64> {
        h.store.len().map_err(|e| self.map(e))
    }

    /// Bytes of values of all the plugin's stores (what its quota bounds).
    pub(crate) fn size(&self) -> OpResult<u64> {
        self.cache.engine().total_size().map_err(|e| self.map(e))
    }

    pub(crate) fn stats(&self) -> Stats {
        let s = self.cache.stats();
        Stats {
            hits: s.hits,
            misses: s.misses,
        }
    }

    pub(crate) fn keys(
        &self,
        h: &StoreHandle,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> OpResult<KeyPage> {
        let prefix = self.key(prefix)?;
        let after = cursor.map(|c| self.key(c)).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let mut keys = h
            .store
            .keys_page(prefix, after, limit + 1)
            .map_err(|e| self.map(e))?;
        let more = keys.len() > limit;
        keys.truncate(limit);
        let cursor = if more { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, cursor })
    }

    pub(crate) fn get_many(
        &self,
        h: &StoreHandle,
        keys: &[String],
    ) -> OpResult<Vec<Option<Vec<u8>>>> {
        if keys.len() > MAX_BATCH {
            return Err(WitError::QuotaExceeded(format!(
                "more than {MAX_BATCH} keys in one call"
            )));
        }
        // The answer is copied into the guest's memory, so it cannot usefully exceed it.
        let budget = self.policy.limits.max_memory as u64;
        let mut total = 0u64;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let v = self.get(h, key)?;
            total += v.as_ref().map_or(0, |v| v.len() as u64);
            if total > budget {
                return Err(WitError::QuotaExceeded(
                    "get-many answer larger than the plugin's memory limit".into(),
                ));
            }
            out.push(v);
        }
        Ok(out)
    }

    pub(crate) fn set_many(
        &self,
        h: &StoreHandle,
        entries: &[(String, Vec<u8>)],
        o: Option<&WitSetOptions>,
    ) -> OpResult<()> {
        if entries.len() > MAX_BATCH {
            return Err(WitError::QuotaExceeded(format!(
                "more than {MAX_BATCH} entries in one call"
            )));
        }
        let opts = self.options(o)?;
        let mut bytes = 0u64;
        for (key, value) in entries {
            let k = self.key(key)?;
            self.check_value(k.len(), value)?;
            bytes += (k.len() + value.len()) as u64;
        }
        // One call never writes more than the whole quota: what the background eviction
        // has to bring back is then at most one call's bytes.
        let max = self.policy.limits.max_bytes;
        if bytes > max {
            return Err(WitError::QuotaExceeded(format!(
                "a batch of {bytes} bytes is larger than the plugin's byte quota of {max} bytes"
            )));
        }
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        self.admit(&h.store, &keys)?;
        h.store
            .set_many_with(entries.iter().map(|(k, v)| (k, v)), &opts)
            .map_err(|e| self.map(e))
    }

    // ---- transactions ----

    /// A transaction on `h`'s store, its buffers counted in `budget` (the invocation's).
    pub(crate) fn begin(&self, h: &StoreHandle, budget: &TxBudget) -> TxHandle {
        TxHandle {
            store: h.store.clone(),
            open: true,
            reads: HashMap::new(),
            view: HashMap::new(),
            ops: Vec::new(),
            held: 0,
            budget: budget.clone(),
        }
    }

    /// Counts `bytes` more held by `tx`; refused (and not counted) when the
    /// transactions of the invocation would hold more than the byte quota together.
    fn tx_hold(&self, tx: &mut TxHandle, bytes: usize) -> OpResult<()> {
        let add = bytes as u64 + 64;
        let max = self.policy.limits.max_bytes;
        let total = tx.budget.fetch_add(add, Ordering::Relaxed) + add;
        if total > max {
            tx.budget.fetch_sub(add, Ordering::Relaxed);
            return Err(WitError::QuotaExceeded(format!(
                "open transactions would buffer {total} bytes, more than the plugin's byte quota of {max} bytes"
            )));
        }
        tx.held += add;
        Ok(())
    }

    fn tx_key(&self, tx: &TxHandle, key: &str) -> OpResult<String> {
        if !tx.open {
            return Err(WitError::TransactionClosed);
        }
        self.key(key).map(str::to_owned)
    }

    /// The value of key `k` as the transaction sees it, recording first reads.
    fn tx_current(&self, tx: &mut TxHandle, k: &str) -> OpResult<Option<Vec<u8>>> {
        if let Some(v) = tx.view.get(k) {
            return Ok(v.clone());
        }
        if let Some((v, _)) = tx.reads.get(k) {
            return Ok(v.clone());
        }
        let (v, version) = match tx.store.get_versioned(k).map_err(|e| self.map(e))? {
            Some((v, version)) => (Some(v), Some(version)),
            None => (None, None),
        };
        self.tx_hold(tx, k.len() + v.as_ref().map_or(0, Vec::len))?;
        tx.reads.insert(k.to_owned(), (v.clone(), version));
        Ok(v)
    }

    fn tx_write(
        &self,
        tx: &mut TxHandle,
        k: String,
        value: Option<Vec<u8>>,
        op: TxOp,
    ) -> OpResult<()> {
        let bytes = 2 * (k.len() + value.as_ref().map_or(0, Vec::len));
        self.tx_hold(tx, bytes)?;
        tx.view.insert(k, value);
        tx.ops.push(op);
        Ok(())
    }

    pub(crate) fn tx_get(&self, tx: &mut TxHandle, key: &str) -> OpResult<Option<Vec<u8>>> {
        let k = self.tx_key(tx, key)?;
        self.tx_current(tx, &k)
    }

    pub(crate) fn tx_contains(&self, tx: &mut TxHandle, key: &str) -> OpResult<bool> {
        Ok(self.tx_get(tx, key)?.is_some())
    }

    pub(crate) fn tx_set(
        &self,
        tx: &mut TxHandle,
        key: &str,
        value: Vec<u8>,
        o: Option<&WitSetOptions>,
    ) -> OpResult<()> {
        let k = self.tx_key(tx, key)?;
        self.check_value(k.len(), &value)?;
        let opts = self.options(o)?;
        self.tx_write(
            tx,
            k.clone(),
            Some(value.clone()),
            TxOp::Set(k, value, opts),
        )
    }

    pub(crate) fn tx_add(
        &self,
        tx: &mut TxHandle,
        key: &str,
        value: Vec<u8>,
        o: Option<&WitSetOptions>,
    ) -> OpResult<bool> {
        let k = self.tx_key(tx, key)?;
        self.check_value(k.len(), &value)?;
        let opts = self.options(o)?;
        if self.tx_current(tx, &k)?.is_some() {
            return Ok(false);
        }
        self.tx_write(
            tx,
            k.clone(),
            Some(value.clone()),
            TxOp::Set(k, value, opts),
        )?;
        Ok(true)
    }

    pub(crate) fn tx_delete(&self, tx: &mut TxHandle, key: &str) -> OpResult<bool> {
        let k = self.tx_key(tx, key)?;
        let existed = self.tx_current(tx, &k)?.is_some();
        self.tx_write(tx, k.clone(), None, TxOp::Delete(k))?;
        Ok(existed)
    }

    pub(crate) fn tx_incr(
        &self,
        tx: &mut TxHandle,
        key: &str,
        delta: i64,
        default: i64,
    ) -> OpResult<i64> {
        let k = self.tx_key(tx, key)?;
        let current = match self.tx_current(tx, &k)? {
            None => default,
            Some(v) => sciqlop_cache::counter::decode(&v).ok_or(WitError::NotACounter)?,
        };
        let next = current.checked_add(delta).ok_or(WitError::Overflow)?;
        let encoded = sciqlop_cache::counter::encode(next);
        self.tx_write(
            tx,
            k.clone(),
            Some(encoded.clone()),
            TxOp::Counter(k, encoded),
        )?;
        Ok(next)
    }

    pub(crate) fn tx_decr(
        &self,
        tx: &mut TxHandle,
        key: &str,
        delta: i64,
        default: i64,
    ) -> OpResult<i64> {
        let neg = delta.checked_neg().ok_or(WitError::Overflow)?;
        self.tx_incr(tx, key, neg, default)
    }

    pub(crate) fn tx_rollback(&self, tx: &mut TxHandle) {
        tx.open = false;
        tx.reads.clear();
        tx.view.clear();
        tx.ops.clear();
        tx.release_held();
    }

    pub(crate) fn tx_commit(&self, tx: &mut TxHandle) -> OpResult<()> {
        if !tx.open {
            return Err(WitError::TransactionClosed);
        }
        tx.open = false;
        let reads = std::mem::take(&mut tx.reads);
        let ops = std::mem::take(&mut tx.ops);
        tx.view.clear();
        if ops.is_empty() && reads.is_empty() {
            return Ok(());
        }
        let written: HashSet<&str> = ops
            .iter()
            .filter_map(|op| match op {
                TxOp::Set(k, ..) | TxOp::Counter(k, _) => Some(k.as_str()),
                TxOp::Delete(_) => None,
            })
            .collect();
        if let Err(e) = self.admit(&tx.store, &written.into_iter().collect::<Vec<_>>()) {
            tx.release_held();
            return Err(e);
        }
        let ns = tx.store.current_namespace().clone();
        let writes = match self.tx_writes(&tx.store, &ns, &reads, ops) {
            Ok(w) => w,
            Err(e) => {
                tx.release_held();
                return Err(e);
            }
        };
        let checks: Vec<ReadCheck> = reads
            .into_iter()
            .map(|(key, (_, version))| ReadCheck {
                ns: ns.clone(),
                key,
                version,
            })
            .collect();
        // One atomic step on the engine (a SQLite write transaction, a Redis script):
        // the checks and the writes together, so no writer of any process slips in
        // between. Versions are the core's (persistent): a change A→B→A in between is a
        // conflict too.
        let result = tx.store.engine().commit_optimistic(&checks, &writes);
        drop((checks, writes));
        tx.release_held();
        match result {
            Ok(()) => Ok(()),
            Err(sciqlop_cache::Error::Conflict) => Err(WitError::Conflict),
            Err(e) => Err(self.map(e)),
        }
    }

    /// The writes of a transaction's `ops` for the optimistic commit. A counter keeps
    /// the expiry and tag of its key as the transaction sees it: those of the
    /// transaction's last write of the key, else none when its read found the key
    /// absent, else those stored now (the commit checks that the value read is still
    /// there; only a `touch` meanwhile, which changes no version, is not seen).
    fn tx_writes(
        &self,
        store: &PluginCache,
        ns: &Namespace,
        reads: &HashMap<String, (Option<Vec<u8>>, Option<Version>)>,
        ops: Vec<TxOp>,
    ) -> OpResult<Vec<WriteOp>> {
        let mut options: HashMap<String, SetOptions> = HashMap::new();
        let mut writes = Vec::with_capacity(ops.len());
        for op in ops {
            writes.push(match op {
                TxOp::Set(key, value, opts) => {
                    options.insert(key.clone(), opts.clone());
                    WriteOp::Set {
                        ns: ns.clone(),
                        key,
                        value,
                        opts,
                    }
                }
                TxOp::Delete(key) => {
                    options.insert(key.clone(), SetOptions::new());
                    WriteOp::Delete {
                        ns: ns.clone(),
                        key,
                    }
                }
                TxOp::Counter(key, value) => {
                    let opts = match options.get(&key) {
                        Some(o) => o.clone(),
                        None => {
                            let stored = reads.get(&key).is_some_and(|(_, v)| v.is_some());
                            let o = if stored {
                                self.options_kept(store, &key)?
                            } else {
                                SetOptions::new()
                            };
                            options.insert(key.clone(), o.clone());
                            o
                        }
                    };
                    WriteOp::Set {
                        ns: ns.clone(),
                        key,
                        value,
                        opts,
                    }
                }
            });
        }
        Ok(writes)
    }

    /// The options that keep the stored expiry and tag of `key` (none when absent).
    fn options_kept(&self, store: &PluginCache, key: &str) -> OpResult<SetOptions> {
        Ok(store
            .entry_info(key)
            .map_err(|e| self.map(e))?
            .map_or_else(SetOptions::new, |info| SetOptions::keeping(&info)))
    }
}

/// Handle of a `wasi:keyvalue` draft2 compare-and-swap: the key and what it held (bytes
/// and write version) when the handle was made.
#[derive(Debug)]
pub struct CasHandle {
    store: Arc<PluginCache>,
    key: String,
    seen: Option<Vec<u8>>,
    /// The entry's version then (`None`: absent), kept by the core.
    version: Option<Version>,
}

/// Why a swap failed.
pub(crate) enum SwapError {
    /// The key changed (even if back to the same bytes): retry with a fresh handle.
    Changed,
    /// Any other failure.
    Op(WitError),
}

/// `wasi:keyvalue` operations that the `sciqlop:cache` interface does not have.
impl PluginScope {
    /// Up to `limit` keys of the store after skipping `offset` of them (ascending byte
    /// order); the second value is the offset of the next page, none at the end.
    pub(crate) fn keys_at_offset(
        &self,
        h: &StoreHandle,
        offset: u64,
        limit: u32,
    ) -> OpResult<(Vec<String>, Option<u64>)> {
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let mut skipped = 0u64;
        let mut after: Option<String> = None;
        // Skip whole pages first: the cost is linear in the offset.
        while skipped < offset {
            let want = usize::try_from(offset - skipped)
                .unwrap_or(usize::MAX)
                .min(MAX_PAGE as usize);
            let page = h
                .store
                .keys_page("", after.as_deref(), want)
                .map_err(|e| self.map(e))?;
            skipped += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == want => after = Some(last.clone()),
                _ => return Ok((Vec::new(), None)),
            }
        }
        let mut keys = h
            .store
            .keys_page("", after.as_deref(), limit + 1)
            .map_err(|e| self.map(e))?;
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next = more.then(|| offset + keys.len() as u64);
        Ok((keys, next))
    }

    /// `increment` of `wasi:keyvalue@0.2.0-draft`: the counter is the shared ASCII decimal
    /// i64; a `delta` above `i64::MAX`, a stored negative counter (not a u64) and a result
    /// above `i64::MAX` are errors, and nothing is written then.
    ///
    /// A compare-and-swap loop on the entry's version (one atomic step per attempt on
    /// every engine, Redis included); the counter keeps its expiry and tag. After
    /// [`MAX_CAS_ATTEMPTS`] attempts lost to other writers, `conflict`.
    pub(crate) fn increment_u64(&self, h: &StoreHandle, key: &str, delta: u64) -> OpResult<u64> {
        let k = self.key(key)?;
        self.admit(&h.store, &[k])?;
        let delta = i64::try_from(delta).map_err(|_| {
            WitError::InvalidArgument(format!("delta {delta} is larger than i64::MAX"))
        })?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (current, version) = match h.store.get_versioned(k).map_err(|e| self.map(e))? {
                None => (0, None),
                Some((v, version)) => (
                    sciqlop_cache::counter::decode(&v).ok_or(WitError::NotACounter)?,
                    Some(version),
                ),
            };
            if current < 0 {
                return Err(WitError::InvalidArgument(format!(
                    "counter is {current}, negative: not representable as u64"
                )));
            }
            // Both operands are non-negative: the sum can only overflow, never go
            // negative.
            let next = current.checked_add(delta).ok_or(WitError::Overflow)?;
            let opts = match version {
                Some(_) => self.options_kept(&h.store, k)?,
                None => SetOptions::new(),
            };
            let encoded = sciqlop_cache::counter::encode(next);
            let swapped = h
                .store
                .compare_and_swap_with(k, version, &encoded, &opts)
                .map_err(|e| self.map(e))?;
            if swapped {
                return u64::try_from(next).map_err(|_| WitError::Overflow);
            }
        }
        Err(WitError::Conflict)
    }

    /// Starts a compare-and-swap on `key`: remembers its bytes and the version the core
    /// keeps for the entry.
    pub(crate) fn cas_new(&self, h: &StoreHandle, key: &str) -> OpResult<CasHandle> {
        let k = self.key(key)?;
        let (seen, version) = match h.store.get_versioned(k).map_err(|e| self.map(e))? {
            Some((v, version)) => (Some(v), Some(version)),
            None => (None, None),
        };
        Ok(CasHandle {
            store: h.store.clone(),
            key: k.to_owned(),
            seen,
            version,
        })
    }

    /// What the handle saw.
    pub(crate) fn cas_current(&self, cas: &CasHandle) -> Option<Vec<u8>> {
        cas.seen.clone()
    }

    /// A fresh handle on the key of `cas` (after a failed swap).
    pub(crate) fn cas_renew(&self, cas: &CasHandle) -> OpResult<CasHandle> {
        let h = StoreHandle {
            store: cas.store.clone(),
        };
        self.cas_new(&h, &cas.key)
    }

    /// Writes `value` if the entry still has the version `cas` saw (no write by any
    /// thread or process since, even one writing the same bytes back); an absent key is
    /// only inserted. The core's compare-and-swap: atomic across processes.
    pub(crate) fn cas_swap(&self, cas: &CasHandle, value: &[u8]) -> Result<(), SwapError> {
        self.check_value(cas.key.len(), value)
            .map_err(SwapError::Op)?;
        self.admit(&cas.store, &[&cas.key]).map_err(SwapError::Op)?;
        match cas
            .store
            .compare_and_swap(&cas.key, cas.version, Some(value))
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(SwapError::Changed),
            Err(e) => Err(SwapError::Op(self.map(e))),
        }
    }
}

/// `location` with `namespace=<plugin>` added when it is a URL (not `file://`) without
/// a `namespace` option, so that plugins given the same server keep apart.
fn scope_location(location: &str, plugin: &str) -> String {
    match registry::scheme_of(location) {
        None | Some("file") => return location.to_owned(),
        Some(_) => {}
    }
    let query = location.split_once('?').map(|(_, q)| q);
    let named = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == "namespace")
    });
    if named {
        return location.to_owned();
    }
    let sep = if query.is_some() { '&' } else { '?' };
    format!("{location}{sep}namespace={plugin}")
}

/// Entries of the store `default` and of the stores `names`.
fn count_entries(cache: &PluginCache, names: &HashSet<String>) -> sciqlop_cache::Result<u64> {
    let mut total = cache.len()?;
    for name in names {
        total += cache.namespace(name)?.len()?;
    }
    Ok(total)
}

/// Names of the stores the cache holds besides `default` (its namespaces).
fn named_stores(cache: &PluginCache) -> sciqlop_cache::Result<HashSet<String>> {
    Ok(cache
        .namespaces()?
        .into_iter()
        .filter(|n| !n.is_empty() && n != DEFAULT_STORE)
        .collect())
}

/// Converts a plugin's cache written by an earlier host (store `s`'s key `k` kept as
/// `s/k` in the default namespace, tags as `s/tag`) to one namespace per store, in one
/// transaction, and records the layout; nothing to do when it is recorded. Entries keep
/// their value, expiry and tag; expired ones are dropped. Keys without a `/` (written
/// by other programs) stay in the default namespace, which is the store `default`.
fn convert_prefixed_layout(cache: &PluginCache) -> sciqlop_cache::Result<()> {
    if cache.metadata(LAYOUT_META)?.as_deref() == Some(LAYOUT) {
        return Ok(());
    }
    if !cache.capabilities().transactions {
        // An engine without transactions (Redis) never held an earlier host's layout:
        // its scopes are this host's. Recorded as it is.
        return cache.set_metadata(LAYOUT_META, Some(LAYOUT));
    }
    cache.transact(|c| {
        // Again inside the transaction: another host process may have converted it.
        if c.metadata(LAYOUT_META)?.as_deref() == Some(LAYOUT) {
            return Ok(());
        }
        // Every old key first: moving `default/a/b` to `a/b` must not make it a key of
        // the store `a` further on in the same scan.
        let mut old_keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = c.keys_page("", after.as_deref(), 1000)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            old_keys.extend(page.into_iter().filter(|k| {
                k.split_once('/')
                    .is_some_and(|(store, _)| valid_name(store))
            }));
            after = Some(last);
        }
        let mut stores: HashMap<String, PluginCache> = HashMap::new();
        for old in &old_keys {
            let Some((store, key)) = old.split_once('/') else {
                continue;
            };
            let Some((value, info)) = c.pop_entry(old)? else {
                continue; // expired meanwhile
            };
            let mut opts = SetOptions::new();
            if let Some(at) = info.expire {
                opts = opts.expire_at(at);
            }
            if let Some(tag) = &info.tag {
                let own = tag.strip_prefix(store).and_then(|t| t.strip_prefix('/'));
                opts = opts.tag(own.unwrap_or(tag));
            }
            let target = if store == DEFAULT_STORE {
                c
            } else {
                match stores.entry(store.to_owned()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(c.namespace(store)?),
                }
            };
            target.set_with(key, &value, &opts)?;
        }
        c.set_metadata(LAYOUT_META, Some(LAYOUT))
    })
}

#[cfg(test)]
mod tests {
    use super::scope_location;

    #[test]
    fn a_url_without_a_namespace_gets_the_plugin_name() {
        assert_eq!(
            scope_location("redis://h:1/0", "memo"),
            "redis://h:1/0?namespace=memo"
        );
        assert_eq!(
            scope_location("redis+cluster://h:1,h:2?timeout_ms=5", "memo"),
            "redis+cluster://h:1,h:2?timeout_ms=5&namespace=memo"
        );
        for kept in [
            "redis://h:1/0?namespace=shared",
            "redis://h:1/0?timeout_ms=5&namespace=shared",
            "/srv/plugins/memo",
            "file:///srv/plugins/memo",
        ] {
            assert_eq!(scope_location(kept, "memo"), kept);
        }
    }
}
