//! Cross-process locks held through handles.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use sqc_core::{AnyKind, Engine, Lock};

use crate::args::{self, Out};
use crate::error::{Res, fail, guard, sqc_status};
use crate::handles::Registry;
use crate::store::{StoreObj, store};
use crate::types::{sqc_lock, sqc_store};

/// A held lock.
type AnyLock<'a> = Lock<'a, AnyKind, dyn Engine>;

type MaybeLock<'a> = Option<AnyLock<'a>>;

self_cell::self_cell!(
    /// A lock next to the store it is held in.
    struct LockCell {
        owner: Arc<StoreObj>,
        #[covariant]
        dependent: MaybeLock,
    }
);

/// Held locks. A lock is `Send`: any thread may release it.
static LOCKS: Registry<LockCell> = Registry::new("lock");

fn expiry(expire_us: i64) -> Res<Duration> {
    if expire_us < 0 {
        return Err(fail(
            sqc_status::InvalidArgument,
            format!("lock expiry must not be negative, got {expire_us} µs"),
        ));
    }
    Ok(Duration::from_micros(expire_us.unsigned_abs()))
}

/// Tries to take the lock `name` of `obj`, waiting at most `timeout` (`None`: just try).
fn acquire(
    obj: Arc<StoreObj>,
    name: &str,
    expire: Duration,
    timeout: Option<Duration>,
) -> Res<Option<LockCell>> {
    let cell = LockCell::try_new(obj, |o| -> Res<MaybeLock<'_>> {
        let s = &o.store;
        Ok(match timeout {
            Some(t) => Some(s.lock_timeout(name, expire, t)?),
            None => s.try_lock(name, expire)?,
        })
    })?;
    Ok(cell.borrow_dependent().is_some().then_some(cell))
}

fn register(cell: LockCell) -> sqc_lock {
    sqc_lock {
        id: LOCKS.insert(cell),
    }
}

/// Takes the cross-process lock `name` (UTF-8), waiting at most `timeout_us`
/// microseconds (negative, `SQC_WAIT_FOREVER`: as long as it takes) before
/// `SQC_STATUS_LOCK_TIMEOUT`. The lock expires `expire_us` microseconds after it was
/// taken even if its holder crashed. Release it with `sqc_lock_release` (from any
/// thread).
///
/// # Safety
/// `name` valid for its length; `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_lock_acquire(
    store: sqc_store,
    name: *const c_char,
    name_len: usize,
    expire_us: i64,
    timeout_us: i64,
    out: *mut sqc_lock,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (name, out) = unsafe {
            (
                args::text(name, name_len, "lock name")?,
                Out::new(out, "out")?,
            )
        };
        let expire = expiry(expire_us)?;
        let timeout = if timeout_us < 0 {
            Duration::MAX
        } else {
            Duration::from_micros(timeout_us.unsigned_abs())
        };
        let cell = acquire(self::store(store)?, name, expire, Some(timeout))?.ok_or_else(|| {
            fail(
                sqc_status::LockTimeout,
                format!("lock {name:?} not acquired"),
            )
        })?;
        out.set(register(cell));
        Ok(())
    })
}

/// Takes the lock `name` if it is free: `acquired` tells whether it was, and `out`
/// receives the handle then (`{0}` otherwise).
///
/// # Safety
/// `name` valid for its length; `out` and `acquired` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_lock_try(
    store: sqc_store,
    name: *const c_char,
    name_len: usize,
    expire_us: i64,
    out: *mut sqc_lock,
    acquired: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (name, out, acquired) = unsafe {
            (
                args::text(name, name_len, "lock name")?,
                Out::new(out, "out")?,
                Out::new(acquired, "acquired")?,
            )
        };
        let cell = acquire(self::store(store)?, name, expiry(expire_us)?, None)?;
        acquired.set(cell.is_some());
        out.set(cell.map(register).unwrap_or_default());
        Ok(())
    })
}

/// Releases a held lock; the handle is invalid afterwards (also when releasing failed:
/// the lock then expires on its own).
#[unsafe(no_mangle)]
pub extern "C" fn sqc_lock_release(lock: sqc_lock) -> sqc_status {
    guard(|| {
        let mut cell = LOCKS.remove(lock.id)?;
        cell.with_dependent_mut(|_, l| l.take().map_or(Ok(()), AnyLock::release))?;
        Ok(())
    })
}
