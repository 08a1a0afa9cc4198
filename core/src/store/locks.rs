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

    /// Releases the lock now.
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
