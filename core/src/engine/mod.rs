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

impl Capabilities {
    /// An engine named `name` that can do none of the optional things; an engine outside
    /// this crate starts from it and sets what it can (the struct is non-exhaustive).
    pub fn new(name: &'static str) -> Self {
        Capabilities {
            name,
            value_files: false,
            savepoints: false,
            transactions: false,
            multi_process: false,
            check: false,
            atomic_batches: false,
            namespaces: false,
            versions: false,
            entry_info: false,
            metadata: false,
        }
    }
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
    ///
    /// # Errors
    ///
    /// Nothing of the transaction is written when one of these happens:
    ///
    /// - [`Error::TransactionAborted`](crate::Error::TransactionAborted): the database
    ///   rolled the transaction back after an earlier error in it, or (on an engine
    ///   without [savepoints](Capabilities::savepoints)) a nested level failed.
    /// - [`Error::Conflict`](crate::Error::Conflict): on an engine whose transactions
    ///   are optimistic (a plugin's guest engine), a key it read changed meanwhile.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A storage engine. See the [module documentation](self) for the semantics.
///
/// Every method that takes a [`Namespace`] takes one returned by this engine's
/// [`namespace`](Engine::namespace) (or [`Namespace::DEFAULT`]).
///
/// # Errors of every operation
///
/// Each fallible method lists under its own `# Errors` heading the variants particular
/// to it; any of them can also fail with these:
///
/// - [`Error::Io`](crate::Error::Io): the operating system failed a read or a write (a
///   full disk is an `Io` error of kind [`StorageFull`](std::io::ErrorKind::StorageFull)).
/// - [`Error::Engine`](crate::Error::Engine): the engine (SQLite, a server) failed in a
///   way no more specific variant describes.
/// - [`Error::Corrupt`](crate::Error::Corrupt): the database is damaged.
/// - [`Error::TransactionAborted`](crate::Error::TransactionAborted): the call ran
///   inside a transaction the database already rolled back after an earlier error.
/// - [`Error::StoreChanged`](crate::Error::StoreChanged): on the SQLite engine, a read
///   of a read-only store opened at rest overlapped a write by another process.
/// - [`Error::Unsupported`](crate::Error::Unsupported): the engine lacks what the call
///   needs (see [`Capabilities`]) or cannot do it here (e.g. inside a plugin's
///   transaction).
/// - [`Error::Remote`](crate::Error::Remote),
///   [`Error::QuotaExceeded`](crate::Error::QuotaExceeded),
///   [`Error::InvalidKey`](crate::Error::InvalidKey): failures of a remote engine (the
///   host of a plugin), its quotas and its key rules.
///
/// Keys and values arrive unchecked: [`Error::KeyTooLong`](crate::Error::KeyTooLong) and
/// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) are the [`Store`](crate::Store)'s
/// checks, made before it calls the engine (a remote engine may still report its own
/// `ValueTooLarge`).
///
/// Writes (every method that changes the store, including creating a namespace) can also
/// fail with:
///
/// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store was opened read-only, or
///   what it lives in cannot be written.
/// - [`Error::Busy`](crate::Error::Busy): a lock held by another thread or process (a
///   write transaction, a checkpoint) outlasted the busy timeout; nothing was done.
///
/// A [`FanoutEngine`](crate::FanoutEngine) adds
/// [`Error::WrongShard`](crate::Error::WrongShard) for a write to a key of another
/// shard than the one this thread's transaction runs on, and
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an operation on every
/// shard (`clear`, `delete_prefix`, `evict_tag`, `expire`) inside such a transaction.
pub trait Engine: Send + Sync {
    /// What the engine can do.
    fn capabilities(&self) -> Capabilities;
    /// The kind the store was created as (on disk, for persistent engines).
    fn kind(&self) -> Kind;
    /// Where the store lives: its directory, or its location for remote engines.
    fn path(&self) -> &Path;
    /// The namespace `name` (`""`: the default one), created if it does not exist yet.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the namespace does not exist yet
    ///   and the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): creating it outlasted the busy timeout.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): a named namespace on an
    ///   engine without [`Capabilities::namespaces`].
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn namespace(&self, name: &str) -> Result<Namespace>;
    /// Every namespace that exists (the default one first).
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn namespaces(&self) -> Result<Vec<Namespace>>;

    /// Calls `f` with the live value of `key` (borrowed where the engine can), and
    /// returns whether there was one.
    ///
    /// # Errors
    ///
    /// Those of [`get`](Engine::get) (`f` is not called then).
    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool>;
    /// The live value of `key`, owned (engines avoid a second copy where they can).
    ///
    /// # Errors
    ///
    /// On an engine with [value files](Capabilities::value_files), when the value lives
    /// in a file:
    ///
    /// - [`Error::ValueFileMissing`](crate::Error::ValueFileMissing): the file is gone.
    /// - [`Error::ValueFileTruncated`](crate::Error::ValueFileTruncated): the file has
    ///   another size than recorded.
    /// - [`Error::ValueFileCorrupt`](crate::Error::ValueFileCorrupt): the file's bytes
    ///   do not match their checksum (checked when
    ///   [`verify_values`](crate::Builder::verify_values) is on).
    /// - [`Error::ValueFileInvalid`](crate::Error::ValueFileInvalid): the row names no
    ///   value file of this store (a path outside it, a link, not a regular file).
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>>;
    /// The live value of `key` with its metadata, in one read.
    ///
    /// # Errors
    ///
    /// Those of [`get`](Engine::get), and
    /// [`Error::Unsupported`](crate::Error::Unsupported) without
    /// [`Capabilities::entry_info`].
    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// The live value of `key` with its version, in one read.
    ///
    /// # Errors
    ///
    /// Those of [`get`](Engine::get), and
    /// [`Error::Unsupported`](crate::Error::Unsupported) without
    /// [`Capabilities::versions`].
    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>>;
    /// Values of several keys, in order.
    ///
    /// # Errors
    ///
    /// The first error of [`get`](Engine::get) on any of the keys (then no value is
    /// returned).
    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Whether `key` holds a live entry.
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation) (the value
    /// is not read: its file is not looked at).
    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool>;
    /// Metadata of a live entry, without its value.
    ///
    /// # Errors
    ///
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::entry_info`].
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>>;
    /// Live entries of the namespace.
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn len(&self, ns: &Namespace) -> Result<u64>;
    /// Bytes of values of the namespace (expired entries count until purged).
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn size(&self, ns: &Namespace) -> Result<u64>;
    /// At most `limit` live keys starting with `prefix`, in byte order, strictly after
    /// `after`.
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Live keys starting with `prefix`.
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64>;

    /// Stores `value` under `key`, replacing any previous value, expiry and tag.
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): the expiry of `opts`
    ///   is too far in the future to be stored.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `key` belongs to
    ///   another shard than this thread's transaction.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()>;
    /// Writes several entries (atomically where [`Capabilities::atomic_batches`]).
    ///
    /// # Errors
    ///
    /// Those of [`set`](Engine::set), for any of the entries: nothing is written then
    /// where batches are atomic (in a fanout, shards written before stay written; a
    /// `WrongShard` is found before any write).
    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()>;
    /// Stores `value` only if `key` is absent (or expired); whether it stored.
    ///
    /// # Errors
    ///
    /// Those of [`set`](Engine::set); a live entry at `key` is `Ok(false)`, not an error.
    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool>;
    /// Removes `key`; whether a live entry was removed.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `key` belongs to
    ///   another shard than this thread's transaction.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool>;
    /// Removes `key` and returns its live value and metadata, atomically.
    ///
    /// # Errors
    ///
    /// Those of [`delete`](Engine::delete), and the `ValueFile*` errors of
    /// [`get`](Engine::get) for a value in a file (e.g.
    /// [`Error::ValueFileMissing`](crate::Error::ValueFileMissing)): nothing is removed
    /// then.
    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>>;
    /// Gives a live entry a new expiry; whether it was live.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): `expire` is too far
    ///   in the future to be stored.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `key` belongs to
    ///   another shard than this thread's transaction.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool>;
    /// Adds `delta` (an `i128`, so that `decr` by `i64::MIN` can be expressed) to the
    /// counter at `key`, created as `default + delta` when absent or expired.
    ///
    /// # Errors
    ///
    /// The counter is left as it was when one of these happens:
    ///
    /// - [`Error::NotACounter`](crate::Error::NotACounter): the live value at `key` is
    ///   not an ASCII decimal `i64`.
    /// - [`Error::CounterOverflow`](crate::Error::CounterOverflow): the result does not
    ///   fit in an `i64`.
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `key` belongs to
    ///   another shard than this thread's transaction.
    /// - The `ValueFile*` errors of [`get`](Engine::get), for a counter that lives in a
    ///   file (a file threshold of a few bytes).
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64>;
    /// Removes every entry of the namespace, atomically; how many.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): in a fanout, called
    ///   inside a transaction of one shard.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn clear(&self, ns: &Namespace) -> Result<u64>;
    /// Removes the entries whose key starts with `prefix`, atomically; how many.
    ///
    /// # Errors
    ///
    /// Those of [`clear`](Engine::clear).
    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64>;
    /// Removes the entries of the namespace tagged `tag`; how many.
    ///
    /// # Errors
    ///
    /// Those of [`clear`](Engine::clear).
    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64>;
    /// Removes every expired entry of the store now; how many.
    ///
    /// # Errors
    ///
    /// Those of [`clear`](Engine::clear) (a store of a kind without expiry has nothing
    /// to remove: `Ok(0)`).
    fn expire(&self) -> Result<u64>;

    /// Writes `new` (`None`: deletes) only if `key` still has version `expected`
    /// (`None`: still absent); whether it did. Atomic across processes.
    ///
    /// # Errors
    ///
    /// Those of [`set`](Engine::set) (another version is `Ok(false)`, not an error), and
    /// [`Error::Unsupported`](crate::Error::Unsupported) without
    /// [`Capabilities::versions`].
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
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::Conflict`](crate::Error::Conflict): a key of `reads` has another
    ///   version now.
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): `writes` is not empty and the
    ///   store is read-only (the reads alone are checked on a read-only store).
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): the expiry of a
    ///   write is too far in the future; in a fanout, the keys' shard is not the one of
    ///   this thread's transaction.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::versions`]; in a fanout, the keys live in more than one shard.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()>;

    /// Begins a transaction (a savepoint when one is open on this thread). `scope` is a
    /// key the transaction is about: engines that split the key space (a fanout) run it
    /// where that key lives, and refuse `None`.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another thread's or process's transaction
    ///   outlasted the busy timeout.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::transactions`]; in a fanout, `scope` is `None`.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `scope` belongs to
    ///   another shard than the transaction this thread has open.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn begin(&self, scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>>;
    /// Whether this thread has a transaction open on this engine.
    fn in_transaction(&self) -> bool;

    /// Takes the lock `name` for `owner` if it is free or expired; whether it did.
    ///
    /// # Errors
    ///
    /// A lock held by another owner is `Ok(false)`, not an error; these are:
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::WrongShard`](crate::Error::WrongShard): in a fanout, `name` belongs to
    ///   another shard than this thread's transaction.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool>;
    /// Releases the lock if `owner` holds it; inside a transaction, once the transaction
    /// ends (committed or not), so a rollback cannot bring a released lock back.
    ///
    /// # Errors
    ///
    /// The lock stays held (until it expires) when one of these happens:
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn unlock(&self, name: &str, owner: &str) -> Result<()>;

    /// Hits and misses of reads through this handle.
    fn stats(&self) -> Stats;
    /// Resets hits and misses.
    fn reset_stats(&self);
    /// Bytes of values of the whole store (every namespace): what `max_size` bounds.
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn total_size(&self) -> Result<u64>;
    /// Bytes the store takes where it lives (disk, server memory).
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Engine#errors-of-every-operation).
    fn volume(&self) -> Result<u64>;
    /// Verifies (and with `fix`, repairs) the store.
    ///
    /// A damaged database is reported in the [`CheckReport`] (its `sqlite_errors`), not
    /// as [`Error::Corrupt`](crate::Error::Corrupt).
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): `fix` on a read-only store.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout
    ///   (the check holds the write lock).
    /// - [`Error::Io`](crate::Error::Io): with `fix`, an orphan file cannot be removed.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::check`].
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn check(&self, fix: bool) -> Result<CheckReport>;
    /// Runs the background upkeep now (recency, expiry purge, eviction, queued files).
    ///
    /// # Errors
    ///
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation) (a
    /// read-only store has no upkeep: `Ok(())`).
    fn maintain(&self) -> Result<()>;
    /// A value of the store's own metadata (not an entry).
    ///
    /// # Errors
    ///
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::metadata`].
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn metadata(&self, name: &str) -> Result<Option<String>>;
    /// Sets (or with `None` removes) a value of the store's metadata.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): without
    ///   [`Capabilities::metadata`].
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()>;
    /// The bound on bytes of values of the store (0: none).
    fn max_size(&self) -> u64;
    /// Changes the bound from now on (0: none) for this handle.
    ///
    /// # Errors
    ///
    /// - [`Error::Busy`](crate::Error::Busy): bounding an unbounded store makes an index
    ///   (a write), which outlasted the busy timeout.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): the engine's bound is not
    ///   this handle's to change (a plugin's store: the host's).
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation) (on a
    /// read-only store, the bound is recorded and never enforced).
    fn set_max_size(&self, bytes: u64) -> Result<()>;
    /// Evicts least-recently-used entries now if over the bound; how many.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only and over its
    ///   bound.
    /// - [`Error::Busy`](crate::Error::Busy): another writer outlasted the busy timeout.
    /// - [`Error::Unsupported`](crate::Error::Unsupported): eviction is not this
    ///   handle's to run (a plugin's store: the host's).
    ///
    /// Also the [errors of every operation](Engine#errors-of-every-operation).
    fn evict(&self) -> Result<u64>;
    /// A new, independent handle on the same store with the same settings (e.g. in a
    /// child process after `fork`).
    ///
    /// # Errors
    ///
    /// Those of opening the engine (for the SQLite engine, those of
    /// `SqliteEngine::open`, e.g. [`Error::NotACache`](crate::Error::NotACache) if the
    /// store's directory was removed meanwhile).
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
    ///
    /// # Errors
    ///
    /// Those of [`Engine::reopen_dyn`].
    fn reopen(&self) -> Result<Self>;
}
