//! Forking a process that has stores open.
//!
//! A child of `fork()` has only the forking thread. If another thread was inside SQLite
//! at that moment, holding one of SQLite's process-wide mutexes (its allocator's, say),
//! the child inherits the mutex locked with no one to release it, and its first SQLite
//! call waits forever. The calls of the program's own threads are the program's to
//! finish before forking (the Python package waits for them); the engines' background
//! threads (upkeep, checkpoints) work only while holding this module's gate shared, and
//! [`prepare_fork`] closes it.
//!
//! ```
//! let guard = sciqlop_cache::fork::prepare_fork(std::time::Duration::from_secs(5));
//! // ... fork() here: no background thread is inside the engine ...
//! drop(guard); // in the parent and in the child
//! ```

#[cfg(feature = "sqlite")]
use std::sync::{PoisonError, RwLockReadGuard};
use std::sync::{RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

static GATE: RwLock<()> = RwLock::new(());

/// Held by a background thread while it works in the engine.
#[cfg(feature = "sqlite")]
pub(crate) fn background_work() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the engines' background threads out of the engine while it lives (see
/// [`prepare_fork`]). Drop it after `fork()`, in the parent and in the child (the same
/// thread that made it).
#[must_use = "background threads are kept out only while the guard lives"]
pub struct ForkGuard {
    held: Option<RwLockWriteGuard<'static, ()>>,
}

impl ForkGuard {
    /// Whether the background threads are out (false: `prepare_fork` timed out).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

impl std::fmt::Debug for ForkGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkGuard")
            .field("held", &self.is_held())
            .finish()
    }
}

/// Waits, up to `timeout`, until no background thread of any store of this process is
/// inside the engine, then keeps them out until the guard is dropped. Call it right
/// before `fork()`. A background pass is short (a batch of upkeep, a checkpoint), so
/// the wait is too, unless another process holds the store's lock; after `timeout` the
/// guard holds nothing ([`ForkGuard::is_held`]) and forking is as risky as without it.
pub fn prepare_fork(timeout: Duration) -> ForkGuard {
    let start = Instant::now();
    loop {
        match GATE.try_write() {
            Ok(g) => return ForkGuard { held: Some(g) },
            Err(std::sync::TryLockError::Poisoned(p)) => {
                return ForkGuard {
                    held: Some(p.into_inner()),
                };
            }
            Err(std::sync::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(std::sync::TryLockError::WouldBlock) => return ForkGuard { held: None },
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn the_gate_keeps_background_work_out_while_held() {
        let guard = prepare_fork(Duration::from_secs(1));
        assert!(guard.is_held());
        let entered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let e = entered.clone();
        let t = std::thread::spawn(move || {
            let _w = background_work();
            e.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!entered.load(std::sync::atomic::Ordering::SeqCst));
        drop(guard);
        t.join().expect("background thread");
        assert!(entered.load(std::sync::atomic::Ordering::SeqCst));
        // Held by a worker: preparing times out instead of waiting forever.
        let w = background_work();
        assert!(!prepare_fork(Duration::from_millis(20)).is_held());
        drop(w);
    }
}
