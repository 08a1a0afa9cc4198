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
    ///
    /// # Errors
    ///
    /// Nothing of the transaction is written when it returns an error:
    ///
    /// - `f`'s own error, returned as it is.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another thread's or process's transaction (or write) held the
    ///   store for longer than the busy timeout, before `f` ran.
    /// - [`Error::TransactionAborted`]: the database rolled the transaction back after
    ///   an error inside it that `f` did not return (e.g. a full disk); retry it.
    /// - [`Error::Unsupported`]: the store is a [`Fanout`](crate::Fanout)'s, whose
    ///   transactions run on the shard of a key
    ///   ([`Fanout::transact`](crate::Fanout::transact),
    ///   [`transact_on`](Self::transact_on)), or the engine has no transactions
    ///   ([`Capabilities::transactions`](crate::Capabilities::transactions)).
    ///
    /// The store's errors are converted with `Er::from`. Also the [errors of every
    /// operation](Store#errors-of-every-operation) (from the commit).
    pub fn transact<T, Er: From<Error>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, Er>,
    ) -> Result<T, Er> {
        self.transact_scoped(None, f)
    }

    /// [`transact`](Self::transact) on the part of the store where `key` lives: the
    /// shard of a fanout (whose transactions must name one), the whole store otherwise.
    /// For code that handles any store (`AnyStore`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// let n = cache.transact_on("visits", |tx| {
    ///     tx.incr("visits", 1, 0)?;
    ///     tx.incr("visits", 1, 0)
    /// })?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`transact`](Self::transact) (nothing is written), except that a fanout
    /// is not refused:
    ///
    /// - `f`'s own error, returned as it is.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store (or the shard) for longer than
    ///   the busy timeout, before `f` ran.
    /// - [`Error::TransactionAborted`]: the database rolled the transaction back after
    ///   an error inside it that `f` did not return.
    /// - [`Error::WrongShard`]: in a fanout, begun inside a transaction of another
    ///   shard; or, returned by `f`, a write of a key of another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another thread's or process's transaction (or write) held the
    ///   store for longer than the busy timeout.
    /// - [`Error::TransactionAborted`]: begun (as a savepoint) inside a transaction the
    ///   database already rolled back.
    /// - [`Error::Unsupported`]: the store is a [`Fanout`](crate::Fanout)'s (use
    ///   [`Fanout::begin`](crate::Fanout::begin) or [`begin_on`](Self::begin_on)), or
    ///   the engine has no transactions.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn begin(&self) -> Result<Transaction<'_>> {
        self.begin_scoped(None)
    }

    /// [`begin`](Self::begin) on the part of the store where `key` lives (see
    /// [`transact_on`](Self::transact_on)): the shard of a fanout, the whole store
    /// otherwise.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// let tx = cache.begin_on("k")?;
    /// cache.set("k", b"v")?;
    /// tx.commit()?;
    /// assert!(cache.contains("k")?);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store (or the shard) for longer than
    ///   the busy timeout.
    /// - [`Error::TransactionAborted`]: begun (as a savepoint) inside a transaction the
    ///   database already rolled back.
    /// - [`Error::WrongShard`]: in a fanout, begun inside a transaction of another
    ///   shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    /// [`compare_and_swap`](Self::compare_and_swap) (see its example).
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    /// - [`Error::Unsupported`]: the engine keeps no versions
    ///   ([`Capabilities::versions`](crate::Capabilities::versions)).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `new` is larger than the maximum.
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    /// - [`Error::Unsupported`]: the engine keeps no versions.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    /// [`compare_and_swap`](Store::compare_and_swap) writing `new` with options: only
    /// if `key` still has version `expected` (`None`: it is still absent); returns
    /// whether it did.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// let tagged = SetOptions::new().tag("t");
    /// assert!(cache.compare_and_swap_with("k", None, b"v", &tagged)?);
    /// assert!(!cache.compare_and_swap_with("k", None, b"w", &tagged)?); // not absent now
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `new` is larger than the maximum.
    /// - [`Error::InvalidArgument`]: the expiry is too far in the future to be stored.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind), or an engine that keeps no versions.
    /// - [`Error::ReadOnly`]: the store is read-only (or its database cannot be written).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::WrongShard`]: in a [`Fanout`](crate::Fanout) transaction, `key`
    ///   belongs to another shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    ///
    /// # Errors
    ///
    /// The transaction is rolled back then (nothing of it is written):
    ///
    /// - [`Error::TransactionAborted`]: the database already rolled it back after an
    ///   error inside it (e.g. a full disk); retry the whole transaction.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation) (e.g.
    /// [`Error::Io`] when the disk fills up at the commit).
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
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// cache.set("k", b"old")?;
    /// let mut tx = cache.optimistic();
    /// tx.set("k", b"new")?;
    /// assert_eq!(tx.get("k")?.as_deref(), Some(&b"new"[..])); // its own write
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"old"[..])); // not written yet
    /// tx.commit()?;
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"new"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only a key not seen yet by the transaction is read (and can fail):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    /// - [`Error::Unsupported`]: the engine keeps no versions.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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

    /// Whether `key` holds a value, as this transaction sees it (a read, recorded as
    /// [`get`](Self::get) records it).
    ///
    /// # Errors
    ///
    /// Those of [`get`](Self::get):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn contains(&mut self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Buffers a write of `value` under `key` (written at [`commit`](Self::commit),
    /// with no expiry and no tag).
    ///
    /// # Errors
    ///
    /// Nothing is buffered when one of these happens (the store is not touched):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `value` is larger than the maximum.
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
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `value` is larger than the maximum.
    /// - [`Error::ValueFileMissing`]: the current value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation) (from
    /// reading the key).
    pub fn add(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<bool> {
        if self.get(key)?.is_some() {
            return Ok(false);
        }
        self.set(key, value)?;
        Ok(true)
    }

    /// Buffers the removal of `key`; whether it held a value (as read now).
    ///
    /// # Errors
    ///
    /// Those of reading the key ([`get`](Self::get)); nothing is buffered then:
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    /// `default + delta`), buffering the new value; returns it. As with
    /// [`Store::incr`], the counter keeps the expiry and tag it has (as this
    /// transaction sees it).
    ///
    /// # Errors
    ///
    /// Nothing is buffered when one of these happens:
    ///
    /// - [`Error::NotACounter`]: the value as this transaction sees it is not a counter.
    /// - [`Error::CounterOverflow`]: the result does not fit in an `i64`.
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueFileMissing`]: the value lives in a file that is gone.
    /// - [`Error::ValueFileTruncated`]: the value's file has another size than recorded.
    /// - [`Error::ValueFileCorrupt`]: the value's file was changed since it was written.
    /// - [`Error::ValueFileInvalid`]: the row names no value file of this store.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation) (from
    /// reading the key).
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
        let opts = self.options_of(key)?;
        self.set_opts(key, &crate::counter::encode(new), opts)?;
        Ok(new)
    }

    /// The expiry and tag of `key` as this transaction sees it: those of its buffered
    /// write, else those stored (a change since this transaction's read of `key` makes
    /// the commit a conflict anyway).
    fn options_of(&self, key: &str) -> Result<SetOptions> {
        let buffered = self.writes.iter().rev().find_map(|w| match w {
            WriteOp::Set { key: k, opts, .. } if k == key => Some(Some(opts.clone())),
            WriteOp::Delete { key: k, .. } if k == key => Some(None),
            _ => None,
        });
        if let Some(opts) = buffered {
            return Ok(opts.unwrap_or_default());
        }
        if matches!(self.seen.get(key), Some(None)) {
            return Ok(SetOptions::default());
        }
        let s = self.store;
        Ok(s.engine
            .info(&s.ns, key)?
            .map_or_else(SetOptions::default, |info| SetOptions::keeping(&info)))
    }

    /// Applies the buffered writes at once if no key this transaction read changed
    /// meanwhile; else [`Error::Conflict`], and nothing is written.
    ///
    /// # Errors
    ///
    /// Nothing is written when one of these happens:
    ///
    /// - [`Error::Conflict`]: a key the transaction read was changed (or appeared, or
    ///   went) since; retry the whole transaction.
    /// - [`Error::ReadOnly`]: the store is read-only and the transaction writes (one
    ///   that only read commits: its reads are verified in one read transaction).
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::InvalidArgument`]: a buffered expiry is too far in the future to be
    ///   stored; or, in a [`Fanout`](crate::Fanout), the commit runs inside a
    ///   transaction of another shard.
    /// - [`Error::Unsupported`]: in a fanout, the transaction touched keys of more than
    ///   one shard.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
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
    /// Buffers a write of `value` under `key` with options (expiry counted from the
    /// commit).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::SetOptions;
    /// let mut tx = cache.optimistic();
    /// tx.set_with("k", b"v", &SetOptions::new().tag("t"))?;
    /// tx.commit()?;
    /// assert_eq!(cache.entry_info("k")?.expect("live").tag.as_deref(), Some("t"));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Nothing is buffered when one of these happens (the store is not touched; an
    /// expiry too far in the future fails at [`commit`](Self::commit)):
    ///
    /// - [`Error::KeyTooLong`]: `key` is longer than the maximum.
    /// - [`Error::ValueTooLarge`]: `value` is larger than the maximum.
    /// - [`Error::Unsupported`]: an expiry or a tag on an index opened as
    ///   [`AnyKind`](crate::AnyKind).
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
