//! A Redis engine for sciqlop-cache: the same [`Store`](sciqlop_cache::Store) API (and
//! so the CLI and the plugin host) on a Redis server or a Redis Cluster, for caches that
//! several processes on several machines share.
//!
//! ```no_run
//! use sciqlop_cache_redis::{OpenRedis, RedisCache};
//! let cache = RedisCache::open("redis://127.0.0.1:6379/0?namespace=analysis")?;
//! cache.set("k", b"v")?;
//! // Or by location, as every tool does, after registering the engine once:
//! sciqlop_cache_redis::register();
//! let any = sciqlop_cache::AnyStore::builder().open_location("redis://127.0.0.1:6379/0")?;
//! # Ok::<(), sciqlop_cache::Error>(())
//! ```
//!
//! # Locations
//!
//! `redis://[[USER]:PASSWORD@]HOST:PORT[/DB][?namespace=NAME&timeout_ms=N]` for one
//! server, `redis+cluster://[[USER]:PASSWORD@]HOST:PORT,HOST:PORT…[?…]` for a Redis
//! Cluster (any of its nodes; the client follows `MOVED`/`ASK` redirections). `NAME`
//! (default `default`) is the store inside the server: stores of different names are
//! independent. See [`location`].
//!
//! # How it maps the contract
//!
//! - A value is a Redis string under `sqc{NAME}:v:NS:KEY`, read with one `GET`; an
//!   entry that expires carries the server's own TTL (`PXAT`), so it is never returned
//!   after its expiry.
//! - Every write runs in one Lua script (by SHA) that also keeps the entry's metadata
//!   (version, size, expiry, tag), the exact count and size totals, the key index (byte
//!   order, prefixes), the tag sets and the LRU order, and evicts least recently used
//!   entries while the store is over `max_size`. Scripts run atomically on the server:
//!   no read-modify-write race between clients.
//! - Counters are `INCRBY` on the value: ASCII decimal, the encoding of the SQLite
//!   engine, so a value moved between engines stays a counter.
//! - Optimistic transactions ([`Store::optimistic`](sciqlop_cache::Store::optimistic))
//!   are checked and applied by one script: a read that changed is
//!   [`Error::Conflict`](sciqlop_cache::Error::Conflict) and nothing is written.
//! - Locks are keys with the owner's token and the lock's TTL.
//!
//! # Redis Cluster: one store, one hash slot
//!
//! Every key of a store has the hash tag `{NAME}`, so a store lives in one slot (on one
//! node, and its replicas): each operation, batches and optimistic commits included,
//! touches one slot and is atomic. Several stores (names) spread over the cluster's
//! nodes. A store is bounded by what one node holds.
//!
//! # Failover and replication
//!
//! With replicas, a failed primary is replaced by its replica (after the cluster's
//! `cluster-node-timeout`); calls meanwhile fail with
//! [`Error::Remote`](sciqlop_cache::Error::Remote) within the location's timeout, and
//! the next ones reach the new primary (the client refreshes its slot map). Redis
//! replicates asynchronously: a coordinated `CLUSTER FAILOVER` loses no acknowledged
//! write, but writes a dying primary acknowledged and had not sent to its replica are
//! lost; this engine does not wait for replicas (`WAIT`). A script's writes are
//! replicated together, so a replica never holds half of one operation.
//!
//! # Documented exceptions (see [`Capabilities`](sciqlop_cache::Capabilities))
//!
//! - No open-ended transactions (`begin`/`transact`): Redis has no rollback; use
//!   optimistic transactions. Hence no savepoints.
//! - No value files: values live in the server's memory (no zero-copy reads); the
//!   largest value is the server's `proto-max-bulk-len` (512 MiB by default), reported
//!   as [`Error::ValueTooLarge`](sciqlop_cache::Error::ValueTooLarge).
//! - `volume` is the server's `used_memory` (every store on it), not this store's.
//! - `check` verifies the totals against the entries and finds entries whose value is
//!   gone (e.g. evicted by a server configured with an `allkeys-*` `maxmemory-policy`:
//!   use the default `noeviction` or a `volatile-*` policy); `fix` repairs both.
//! - `clear`, `delete_prefix` and `evict_tag` walk the keys inside one script: the
//!   server serves nobody else meanwhile (milliseconds per thousand entries).
//! - The recency of reads is sent in batches of 64 (and by `maintain`/`evict`): LRU
//!   order across processes is approximate by that much.

mod engine;
pub mod location;
pub mod testing;

use std::sync::Arc;

use sciqlop_cache::engine::registry::{self, EngineFactory};
use sciqlop_cache::{Config, Engine, Kind, Result, Store};

pub use engine::RedisEngine;

/// A cache on Redis.
pub type RedisCache = Store<sciqlop_cache::CacheKind, RedisEngine>;
/// An index on Redis.
pub type RedisIndex = Store<sciqlop_cache::IndexKind, RedisEngine>;

/// Opening a typed store on Redis.
pub trait OpenRedis: Sized {
    /// Opens (creating it if needed) the store at `location` with default settings.
    ///
    /// # Errors
    ///
    /// Those of [`RedisEngine::open`].
    fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &Config::default())
    }
    /// Opens the store at `location` with `config` (e.g. from
    /// `Cache::builder().max_size(..).config()`).
    ///
    /// # Errors
    ///
    /// Those of [`RedisEngine::open`].
    fn open_with(location: &str, config: &Config) -> Result<Self>;
}

impl<P: sciqlop_cache::Policy> OpenRedis for Store<P, RedisEngine> {
    fn open_with(location: &str, config: &Config) -> Result<Self> {
        let kind = Some(<P as sciqlop_cache::Policy>::KIND.unwrap_or(Kind::CACHE));
        Store::from_engine(Arc::new(RedisEngine::open(location, config, kind)?), config)
    }
}

struct Factory;

impl EngineFactory for Factory {
    fn schemes(&self) -> &[&str] {
        location::SCHEMES
    }

    fn open(&self, location: &str, config: &Config, kind: Option<Kind>) -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(RedisEngine::open(location, config, kind)?))
    }
}

/// Makes `redis://` and `redis+cluster://` locations openable by
/// [`open_location`](sciqlop_cache::engine::registry::open_location) (and so by
/// `Builder::open_location`, the CLI and the host). Calling it again is harmless.
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| registry::register(Arc::new(Factory)));
}
