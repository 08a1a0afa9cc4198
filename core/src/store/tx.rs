//! Transactions: closure-scoped ([`Store::transact`]) and caller-owned
//! ([`Store::begin`]) ones, which lock out other writers for their duration; optimistic
//! ones ([`Store::optimistic`]), which lock nothing until commit and fail with
//! [`Error::Conflict`] if a key they read changed; and compare-and-swap, the optimistic
//! transaction of one key.

use std::collections::HashMap;

use super::Store;
use crate::engine::{Engine, EngineTx, ReadCheck, Version, WriteOp};
use crate::options::SetOptions;
use crate::policy::{CacheApi, Policy};
use crate::{Error, Result};

impl<P: Policy, E: ?Sized + Engine> Store<P, E> {
    /// Runs `f` in a transaction: everything it does on this store from this thread
    /// commits together, or not at all when `f` returns `Err` or panics. The closure's
    /// argument is the store itself; nested `transact` calls join the outer transaction
    /// (an inner `Err` rolls back only the inner part, where the engine has savepoints).
    /// Other threads and processes see nothing until the commit, and their writes wait
    /// for it — so the closure must not wait for another thread's write to this store
    /// (that thread waits for the commit).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("balance", b"100")?;
    /// let r: Result<(), sciqlop_cache::Error> = cache.transact(|tx| {
    ///     tx.decr("balance", 30, 0)?;
    ///     tx.set("log", b"withdrew 30")?;
    ///     Ok(())
    /// });
    /// r?;
    /// assert_eq!(cache.get_counter("balance")?, Some(70));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn transact<T, Er: From<Error>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.transact_scoped(None, f)
    }

    /// [`transact`](Self::transact) on the part of the store where `key` lives: the
    /// shard of a fanout (whose transactions must name one), the whole store otherwise.
    /// For code that handles any store (`AnyStore`).
    pub fn transact_on<T, Er: From<Error>>(
        &self,
        key: &str,
        f: impl FnOnce(&Self) -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.transact_scoped(Some(key), f)
    }

    fn transact_scoped<T, Er: From<Error>>(
        &self,
        scope: Option<&str>,
        f: impl FnOnce(&Self) -> Result<T, Er>,
    ) -> Result<T, Er> {
        let tx = self.engine.begin(scope)?;
        let out = f(self)?;
        tx.commit()?;
        Ok(out)
    }

    /// Begins a transaction that the caller ends: [`Transaction::commit`], or
    /// [`Transaction::rollback`] (also what dropping it does). The same semantics as
    /// [`transact`](Self::transact), for code that cannot wrap the work in a closure (a
    /// `with` block of a binding, a C handle): while it is open, everything this thread
    /// does on the store joins it; transactions begun inside it are savepoints.
    ///
    /// The transaction belongs to the thread that began it: it is not `Send`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// let tx = cache.begin()?;
    /// cache.set("a", b"1")?;
    /// tx.rollback();
    /// assert_eq!(cache.get("a")?, None);
    ///
    /// let tx = cache.begin()?;
    /// cache.set("a", b"2")?;
    /// tx.commit()?;
    /// assert_eq!(cache.get("a")?.as_deref(), Some(&b"2"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn begin(&self) -> Result<Transaction<'_>> {
        self.begin_scoped(None)
    }

    /// [`begin`](Self::begin) on the part of the store where `key` lives (see
    /// [`transact_on`](Self::transact_on)).
    pub fn begin_on(&self, key: &str) -> Result<Transaction<'_>> {
        self.begin_scoped(Some(key))
    }

    fn begin_scoped(&self, scope: Option<&str>) -> Result<Transaction<'_>> {
        Ok(Transaction {
            tx: self.engine.begin(scope)?,
        })
    }

    /// Begins an optimistic transaction: reads record the version of what they saw,
    /// writes are buffered (and seen by the transaction's own reads), and
    /// [`commit`](Optimistic::commit) applies them all at once if no key read changed
    /// meanwhile, in any process; else it fails with [`Error::Conflict`] and writes
    /// nothing. Nothing is locked until the commit, so readers and writers of other
    /// keys never wait for it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("stock", b"3")?;
    /// let mut tx = cache.optimistic();
    /// let stock = tx.incr("stock", -1, 0)?;
    /// tx.set("order/1", format!("left {stock}"))?;
    /// cache.set("stock", b"0")?; // someone else got there first
    /// assert!(matches!(tx.commit(), Err(sciqlop_cache::Error::Conflict)));
    /// assert_eq!(cache.get("order/1")?, None);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn optimistic(&self) -> Optimistic<'_, P, E> {
        Optimistic {
            store: self,
            reads: Vec::new(),
            writes: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// The value of `key` with its [`Version`], for a later
    /// [`compare_and_swap`](Self::compare_and_swap).
    pub fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        self.check_key(key)?;
        self.engine.get_versioned(&self.ns, key)
    }

    /// Writes `new` (`None`: deletes the key) only if `key` still has version
    /// `expected` (`None`: it is still absent); returns whether it did. Atomic across
    /// threads and processes: versions are kept by the engine.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"a")?;
    /// let (_, v) = cache.get_versioned("k")?.expect("present");
    /// cache.set("k", b"b")?;
    /// cache.set("k", b"a")?; // the same bytes again: still a new version
    /// assert!(!cache.compare_and_swap("k", Some(v), Some(b"c"))?);
    /// let (_, v) = cache.get_versioned("k")?.expect("present");
    /// assert!(cache.compare_and_swap("k", Some(v), Some(b"c"))?);
    /// assert!(cache.compare_and_swap("new", None, Some(b"x"))?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        self.cas_opts(key, expected, new, &SetOptions::default())
    }

    fn cas_opts(
        &self,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        self.check_key(key)?;
        if let Some(v) = new {
            self.check_value(v)?;
        }
        self.check_options(opts)?;
        self.engine
            .compare_and_swap(&self.ns, key, expected, new, opts)
    }
}

impl<P: CacheApi, E: ?Sized + Engine> Store<P, E> {
    /// [`compare_and_swap`](Store::compare_and_swap) writing `new` with options.
    pub fn compare_and_swap_with(
        &self,
        key: &str,
        expected: Option<Version>,
        new: &[u8],
        opts: &SetOptions,
    ) -> Result<bool> {
        self.cas_opts(key, expected, Some(new), opts)
    }
}

/// A transaction begun with [`Store::begin`]: committed with [`commit`](Self::commit),
/// rolled back with [`rollback`](Self::rollback) or when dropped.
#[must_use = "a transaction is rolled back when dropped without commit"]
pub struct Transaction<'a> {
    tx: Box<dyn EngineTx + 'a>,
}

impl Transaction<'_> {
    /// Commits: the outermost transaction makes its writes durable and visible, a nested
    /// one (a savepoint) joins its parent.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()
    }

    /// Rolls back everything done since [`Store::begin`] (value files included).
    pub fn rollback(self) {
        drop(self);
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

/// An optimistic transaction, from [`Store::optimistic`]. Dropped without
/// [`commit`](Self::commit), it writes nothing.
#[must_use = "an optimistic transaction writes nothing unless committed"]
pub struct Optimistic<'a, P: Policy, E: ?Sized + Engine> {
    store: &'a Store<P, E>,
    reads: Vec<ReadCheck>,
    writes: Vec<WriteOp>,
    /// What the transaction sees of each key it touched: read, or as written by it
    /// (`None`: absent).
    seen: HashMap<String, Option<Vec<u8>>>,
}

impl<P: Policy, E: ?Sized + Engine> Optimistic<'_, P, E> {
    /// The value of `key` as this transaction sees it (its own writes first); the first
    /// read of a key records its version.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.seen.get(key) {
            return Ok(v.clone());
        }
        let s = self.store;
        s.check_key(key)?;
        let found = s.engine.get_versioned(&s.ns, key)?;
        self.reads.push(ReadCheck {
            ns: s.ns.clone(),
            key: key.to_owned(),
            version: found.as_ref().map(|(_, v)| *v),
        });
        let value = found.map(|(b, _)| b);
        self.seen.insert(key.to_owned(), value.clone());
        Ok(value)
    }

    /// Whether `key` holds a value, as this transaction sees it.
    pub fn contains(&mut self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Buffers a write of `value` under `key`.
    pub fn set(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.set_opts(key, value.as_ref(), SetOptions::default())
    }

    fn set_opts(&mut self, key: &str, value: &[u8], opts: SetOptions) -> Result<()> {
        let s = self.store;
        s.check_key(key)?;
        s.check_value(value)?;
        s.check_options(&opts)?;
        self.writes.push(WriteOp::Set {
            ns: s.ns.clone(),
            key: key.to_owned(),
            value: value.to_vec(),
            opts,
        });
        self.seen.insert(key.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    /// Buffers a write of `value` if `key` is absent (as read now); whether it will.
    pub fn add(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<bool> {
        if self.get(key)?.is_some() {
            return Ok(false);
        }
        self.set(key, value)?;
        Ok(true)
    }

    /// Buffers the removal of `key`; whether it held a value (as read now).
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        let was = self.get(key)?.is_some();
        let s = self.store;
        self.writes.push(WriteOp::Delete {
            ns: s.ns.clone(),
            key: key.to_owned(),
        });
        self.seen.insert(key.to_owned(), None);
        Ok(was)
    }

    /// Adds `delta` to the counter at `key` as this transaction sees it (created as
    /// `default + delta`), buffering the new value; returns it.
    pub fn incr(&mut self, key: &str, delta: i64, default: i64) -> Result<i64> {
        let current = match self.get(key)? {
            Some(v) => crate::counter::decode(&v).ok_or_else(|| Error::NotACounter {
                key: key.to_owned(),
            })?,
            None => default,
        };
        let new = current
            .checked_add(delta)
            .ok_or_else(|| Error::CounterOverflow {
                key: key.to_owned(),
            })?;
        self.set(key, crate::counter::encode(new))?;
        Ok(new)
    }

    /// Applies the buffered writes at once if no key this transaction read changed
    /// meanwhile; else [`Error::Conflict`], and nothing is written.
    pub fn commit(self) -> Result<()> {
        if self.writes.is_empty() && self.reads.is_empty() {
            return Ok(());
        }
        self.store
            .engine
            .commit_optimistic(&self.reads, &self.writes)
    }

    /// Drops the buffered writes.
    pub fn rollback(self) {}
}

impl<P: CacheApi, E: ?Sized + Engine> Optimistic<'_, P, E> {
    /// Buffers a write of `value` under `key` with options.
    pub fn set_with(
        &mut self,
        key: &str,
        value: impl AsRef<[u8]>,
        opts: &SetOptions,
    ) -> Result<()> {
        self.set_opts(key, value.as_ref(), opts.clone())
    }
}

impl<P: Policy, E: ?Sized + Engine> std::fmt::Debug for Optimistic<'_, P, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimistic")
            .field("reads", &self.reads.len())
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}
