//! Cross-process locks: a lock is a row (or an engine's equivalent) with an owner token
//! and an expiry, so a crashed holder's lock expires.

use std::time::{Duration, Instant};

use super::Store;
use crate::engine::Engine;
use crate::policy::Policy;
use crate::{Error, Result};

impl<P: Policy, E: ?Sized + Engine> Store<P, E> {
    /// Takes the cross-process lock `name`, waiting as long as it takes. The lock expires
    /// after `expire` even if its holder crashed; it is released when the guard drops.
    /// Locks are not entries: they are not counted, listed or cleared. In a
    /// [`Fanout`](crate::Fanout) the lock lives in the shard of `name`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use std::time::Duration;
    /// let guard = cache.lock("resource", Duration::from_secs(30))?;
    /// assert!(cache.try_lock("resource", Duration::from_secs(30))?.is_none());
    /// guard.release()?;
    /// assert!(cache.try_lock("resource", Duration::from_secs(30))?.is_some());
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`try_lock`](Self::try_lock), from any attempt:
    ///
    /// - [`Error::KeyTooLong`]: `name` is longer than the maximum key length.
    /// - [`Error::InvalidArgument`]: called inside a transaction.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    /// - [`Error::LockTimeout`]: only where there are no threads (a browser), which
    ///   cannot wait: the lock was taken.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn lock(&self, name: &str, expire: Duration) -> Result<Lock<'_, P, E>> {
        self.lock_timeout(name, expire, Duration::MAX)
    }

    /// Takes the lock `name` if it is free.
    ///
    /// Not inside a transaction ([`Error::InvalidArgument`]): the transaction already
    /// keeps every other writer out, and rolling it back would take the lock back
    /// behind the guard's back. Take the lock first, then begin the transaction.
    /// Releasing a lock inside a transaction is fine: it is released when the
    /// transaction ends, whether it commits or not.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use std::time::Duration;
    /// let held = cache.try_lock("job", Duration::from_secs(60))?.expect("free");
    /// assert!(cache.try_lock("job", Duration::from_secs(60))?.is_none());
    /// drop(held);
    /// assert!(cache.try_lock("job", Duration::from_secs(60))?.is_some());
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::KeyTooLong`]: `name` is longer than the maximum key length.
    /// - [`Error::InvalidArgument`]: called inside a transaction.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn try_lock(&self, name: &str, expire: Duration) -> Result<Option<Lock<'_, P, E>>> {
        self.check_key(name)?;
        if self.engine.in_transaction() {
            return Err(Error::InvalidArgument(format!(
                "cannot take lock {name:?} inside a transaction: take it before the transaction begins"
            )));
        }
        let owner = format!("{:032x}", crate::platform::unique_token());
        if self.engine.try_lock(name, &owner, expire)? {
            Ok(Some(Lock {
                store: self,
                name: name.to_owned(),
                owner,
                released: false,
            }))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock `name`, waiting at most `timeout` ([`Error::LockTimeout`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// use sciqlop_cache::Error;
    /// use std::time::Duration;
    /// let _held = cache.lock("resource", Duration::from_secs(30))?;
    /// let wait = Duration::from_millis(10);
    /// let again = cache.lock_timeout("resource", Duration::from_secs(30), wait);
    /// assert!(matches!(again, Err(Error::LockTimeout { .. })));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::LockTimeout`]: the lock was still held by another owner after
    ///   `timeout` (at once where there are no threads, as in a browser).
    /// - [`Error::KeyTooLong`]: `name` is longer than the maximum key length.
    /// - [`Error::InvalidArgument`]: called inside a transaction.
    /// - [`Error::ReadOnly`]: the store is read-only.
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn lock_timeout(
        &self,
        name: &str,
        expire: Duration,
        timeout: Duration,
    ) -> Result<Lock<'_, P, E>> {
        if !crate::platform::PLATFORM.threads {
            // No sleeping (and no other thread to release it) in a browser: one try.
            return self
                .try_lock(name, expire)?
                .ok_or_else(|| Error::LockTimeout {
                    name: name.to_owned(),
                    waited: Duration::ZERO,
                });
        }
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(lock) = self.try_lock(name, expire)? {
                return Ok(lock);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::LockTimeout {
                    name: name.to_owned(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// A held cross-process lock; released on drop (or explicitly with
/// [`release`](Lock::release) to see errors).
#[must_use = "the lock is released when the guard is dropped"]
pub struct Lock<'a, P: Policy, E: ?Sized + Engine> {
    store: &'a Store<P, E>,
    name: String,
    owner: String,
    released: bool,
}

impl<P: Policy, E: ?Sized + Engine> Lock<'_, P, E> {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Releases the lock now (inside a transaction: when the transaction ends,
    /// committed or not). Unlike dropping the guard, it reports a failure.
    ///
    /// # Errors
    ///
    /// The lock is not released then (it expires at its time):
    ///
    /// - [`Error::Busy`]: another writer held the store for longer than the busy
    ///   timeout.
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.store.engine.unlock(&self.name, &self.owner)
    }
}

impl<P: Policy, E: ?Sized + Engine> Drop for Lock<'_, P, E> {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.store.engine.unlock(&self.name, &self.owner)
        {
            tracing::warn!(lock = %self.name, error = %e, "releasing lock failed; it will expire");
        }
    }
}

impl<P: Policy, E: ?Sized + Engine> std::fmt::Debug for Lock<'_, P, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
