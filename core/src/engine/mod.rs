//! The engine contract: what a storage engine provides so that the whole public API
//! ([`Store`](crate::Store): validation, typed values, memoize, locks, key iteration,
//! optimistic transactions, fanouts) runs on it.
//!
//! ```text
//!   Store<P, E>  (store/)            the API, written once; P = the kind (Cache, Index, Any)
//!      │   Fanout<P, E> (fanout/)     a Store over a FanoutEngine: routing in one place
//!      ▼
//!   dyn Engine  (this module)        object-safe; chosen by type or at run time
//!      ├── SqliteEngine (sqlite/)    SQLite + value files (native, WASI, browsers)
//!      ├── FanoutEngine (../fanout)  N engines behind one key space
//!      ├── GuestEngine  (guest.rs)   the host's store, inside a wasm32-wasip2 plugin
//!      └── your engine                implement `Engine`, get the whole API
//! ```
//!
//! The trait is object safe (no generic methods; transactions are boxed guards), so
//! `Store<P, dyn Engine>` chooses the engine at run time while `Cache` (=
//! `Store<CacheKind, SqliteEngine>`) stays statically dispatched. Keys and values
//! arrive validated (key length, value size) by the API layer. What an engine cannot do
//! it reports in its [`Capabilities`] and answers with [`Error::Unsupported`](crate::Error::Unsupported).
//!
//! # Semantics every engine keeps (the conformance suite checks them)
//!
//! - An expired entry is never returned, counted by `len` or listed, and counts as
//!   absent for `add`, `touch` and compare-and-swap.
//! - Counters are ASCII decimal `i64` ([`counter`](crate::counter)); `incr` on anything
//!   else is [`Error::NotACounter`](crate::Error::NotACounter), never an overwrite.
//! - Every write of a value gives the entry a new [`Version`]; `touch` and reads do not.
//!   Versions are kept by the engine (persistent, the same for every process), so
//!   compare-and-swap and optimistic transactions are correct across processes.
//! - Namespaces are independent key spaces inside one store: counted, sized, listed and
//!   cleared apart (atomically, without walking keys); the size bound and eviction are
//!   the store's, across its namespaces. The default namespace is [`Namespace::DEFAULT`].
//! - A transaction ([`Engine::begin`]) makes everything the same thread does on the
//!   engine commit together or not at all; nested levels are savepoints where
//!   [`Capabilities::savepoints`] says so.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::Result;
use crate::options::{CheckReport, EntryInfo, SetOptions, Stats};
use crate::policy::Kind;

mod forward;
pub mod registry;

#[cfg(feature = "sqlite")]
pub(crate) mod foreign;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "guest")]
pub mod guest;

/// Name of the database file inside a store directory (the SQLite engine's).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const DB_FILE: &str = "sciqlop-cache.db";

/// What an engine can do; the API layer adapts to it instead of `cfg`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The engine's name (`"sqlite"`, `"guest"`, `"fanout"`, …).
    pub name: &'static str,
    /// Large values live in their own files (zero-copy and streaming reads possible).
    pub value_files: bool,
    /// Nested transactions roll back on their own (savepoints); otherwise an inner
    /// failure fails the outer transaction ([`Error::TransactionAborted`]).
    ///
    /// [`Error::TransactionAborted`]: crate::Error::TransactionAborted
    pub savepoints: bool,
    /// [`Engine::begin`] transactions exist (otherwise only optimistic ones).
    pub transactions: bool,
    /// Several processes may use the same store at once.
    pub multi_process: bool,
    /// [`Engine::check`] verifies (and repairs) the store.
    pub check: bool,
    /// [`Engine::set_many`] is atomic over all its entries (a fanout's is per shard).
    pub atomic_batches: bool,
    /// Named namespaces ([`Engine::namespace`] with a name).
    pub namespaces: bool,
    /// Entry versions: [`Engine::get_versioned`], compare-and-swap, optimistic commits.
    pub versions: bool,
    /// Entry metadata with values ([`Engine::get_entry`], [`Engine::info`]).
    pub entry_info: bool,
    /// Store metadata ([`Engine::metadata`]).
    pub metadata: bool,
}

/// An independent key space inside a store, from [`Engine::namespace`].
///
/// Cheap to clone. The `id` is the engine's own handle for it; [`DEFAULT`] (id 0, name
/// `""`) exists in every store.
///
/// [`DEFAULT`]: Namespace::DEFAULT
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    id: u64,
    name: NsName,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NsName {
    Default,
    Named(Arc<str>),
}

impl Namespace {
    /// The default namespace of every store (id 0, name `""`).
    pub const DEFAULT: Namespace = Namespace {
        id: 0,
        name: NsName::Default,
    };

    /// A namespace handle with the engine's `id` for `name` (for engine implementors).
    pub fn new(id: u64, name: &str) -> Self {
        if name.is_empty() {
            return Namespace {
                id,
                name: NsName::Default,
            };
        }
        Namespace {
            id,
            name: NsName::Named(name.into()),
        }
    }

    /// The engine's id of the namespace.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name (`""` for the default namespace).
    pub fn name(&self) -> &str {
        match &self.name {
            NsName::Default => "",
            NsName::Named(n) => n,
        }
    }

    /// Whether this is the default namespace.
    pub fn is_default(&self) -> bool {
        matches!(self.name, NsName::Default)
    }
}

/// The version of an entry: changed by every write of its value (set, add, incr, …),
/// never by a read or `touch`; used by compare-and-swap and optimistic transactions.
/// Only equality is meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

/// A read recorded by an optimistic transaction: the version the key had (`None`: it
/// was absent or expired). The commit fails with [`Error::Conflict`] unless every read
/// still holds.
///
/// [`Error::Conflict`]: crate::Error::Conflict
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCheck {
    /// The namespace of the key.
    pub ns: Namespace,
    /// The key.
    pub key: String,
    /// Its version when read.
    pub version: Option<Version>,
}

/// A write buffered by an optimistic transaction, applied at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Store a value (with options).
    Set {
        /// The namespace of the key.
        ns: Namespace,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Expiry and tag.
        opts: SetOptions,
    },
    /// Remove the key.
    Delete {
        /// The namespace of the key.
        ns: Namespace,
        /// The key.
        key: String,
    },
}

/// One open transaction level from [`Engine::begin`]; dropping it without
/// [`commit`](EngineTx::commit) rolls it back. Belongs to the thread that began it.
pub trait EngineTx {
    /// Commits this level (the outermost commits to the store; a nested one joins its
    /// parent).
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A storage engine. See the [module documentation](self) for the semantics.
///
/// Every method that takes a [`Namespace`] takes one returned by this engine's
/// [`namespace`](Engine::namespace) (or [`Namespace::DEFAULT`]).
pub trait Engine: Send + Sync {
    /// What the engine can do.
    fn capabilities(&self) -> Capabilities;
    /// The kind the store was created as (on disk, for persistent engines).
    fn kind(&self) -> Kind;
    /// Where the store lives: its directory, or its location for remote engines.
    fn path(&self) -> &Path;
    /// The namespace `name` (`""`: the default one), created if it does not exist yet.
    fn namespace(&self, name: &str) -> Result<Namespace>;
    /// Every namespace that exists (the default one first).
    fn namespaces(&self) -> Result<Vec<Namespace>>;

    /// Calls `f` with the live value of `key` (borrowed where the engine can), and
    /// returns whether there was one.
    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool>;
    /// The live value of `key`, owned (engines avoid a second copy where they can).
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>>;
    /// The live value of `key` with its metadata, in one read.
    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// The live value of `key` with its version, in one read.
    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>>;
    /// Values of several keys, in order.
    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Whether `key` holds a live entry.
    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool>;
    /// Metadata of a live entry, without its value.
    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>>;
    /// Live entries of the namespace.
    fn len(&self, ns: &Namespace) -> Result<u64>;
    /// Bytes of values of the namespace (expired entries count until purged).
    fn size(&self, ns: &Namespace) -> Result<u64>;
    /// At most `limit` live keys starting with `prefix`, in byte order, strictly after
    /// `after`.
    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Live keys starting with `prefix`.
    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64>;

    /// Stores `value` under `key`, replacing any previous value, expiry and tag.
    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()>;
    /// Writes several entries (atomically where [`Capabilities::atomic_batches`]).
    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()>;
    /// Stores `value` only if `key` is absent (or expired); whether it stored.
    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool>;
    /// Removes `key`; whether a live entry was removed.
    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool>;
    /// Removes `key` and returns its live value and metadata, atomically.
    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// Gives a live entry a new expiry; whether it was live.
    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool>;
    /// Adds `delta` (an `i128`, so that `decr` by `i64::MIN` can be expressed) to the
    /// counter at `key`, created as `default + delta` when absent or expired.
    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64>;
    /// Removes every entry of the namespace, atomically; how many.
    fn clear(&self, ns: &Namespace) -> Result<u64>;
    /// Removes the entries whose key starts with `prefix`, atomically; how many.
    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64>;
    /// Removes the entries of the namespace tagged `tag`; how many.
    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64>;
    /// Removes every expired entry of the store now; how many.
    fn expire(&self) -> Result<u64>;

    /// Writes `new` (`None`: deletes) only if `key` still has version `expected`
    /// (`None`: still absent); whether it did. Atomic across processes.
    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool>;
    /// Applies `writes` atomically if every read in `reads` still holds, else fails with
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing.
    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()>;

    /// Begins a transaction (a savepoint when one is open on this thread). `scope` is a
    /// key the transaction is about: engines that split the key space (a fanout) run it
    /// where that key lives, and refuse `None`.
    fn begin(&self, scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>>;
    /// Whether this thread has a transaction open on this engine.
    fn in_transaction(&self) -> bool;

    /// Takes the lock `name` for `owner` if it is free or expired; whether it did.
    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool>;
    /// Releases the lock if `owner` holds it; inside a transaction, once the transaction
    /// ends (committed or not), so a rollback cannot bring a released lock back.
    fn unlock(&self, name: &str, owner: &str) -> Result<()>;

    /// Hits and misses of reads through this handle.
    fn stats(&self) -> Stats;
    /// Resets hits and misses.
    fn reset_stats(&self);
    /// Bytes of values of the whole store (every namespace): what `max_size` bounds.
    fn total_size(&self) -> Result<u64>;
    /// Bytes the store takes where it lives (disk, server memory).
    fn volume(&self) -> Result<u64>;
    /// Verifies (and with `fix`, repairs) the store.
    fn check(&self, fix: bool) -> Result<CheckReport>;
    /// Runs the background upkeep now (recency, expiry purge, eviction, queued files).
    fn maintain(&self) -> Result<()>;
    /// A value of the store's own metadata (not an entry).
    fn metadata(&self, name: &str) -> Result<Option<String>>;
    /// Sets (or with `None` removes) a value of the store's metadata.
    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()>;
    /// The bound on bytes of values of the store (0: none).
    fn max_size(&self) -> u64;
    /// Changes the bound from now on (0: none) for this handle.
    fn set_max_size(&self, bytes: u64) -> Result<()>;
    /// Evicts least-recently-used entries now if over the bound; how many.
    fn evict(&self) -> Result<u64>;
    /// A new, independent handle on the same store with the same settings (e.g. in a
    /// child process after `fork`).
    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>>;
    /// The independent engines this one is made of, in order (a fanout's shards), for
    /// tools that work on one part at a time (per-shard progress of `check` or `clear`);
    /// empty for an engine of one part.
    fn parts(&self) -> Vec<&dyn Engine> {
        Vec::new()
    }
}

/// An engine that can be reopened as its own type (see [`Engine::reopen_dyn`]).
pub trait Reopen: Engine + Sized {
    /// A new, independent handle on the same store with the same settings.
    fn reopen(&self) -> Result<Self>;
}
