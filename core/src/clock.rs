//! Time source for expiry and recency, injectable so tests need not sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of wall-clock time in microseconds since the Unix epoch.
///
/// Expiry times are stored as absolute Unix microseconds so that every process sharing a
/// cache directory agrees on them; the clock therefore has to be a wall clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Microseconds since 1970-01-01T00:00:00Z.
    fn now_micros(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        crate::platform::now_micros()
    }
}

/// A clock that only moves when told to: for tests of expiry and LRU.
///
/// Clones share the same time.
///
/// ```
/// use sciqlop_cache::{Cache, ManualClock, SetOptions};
/// use std::{sync::Arc, time::Duration};
/// let dir = tempfile::tempdir()?;
/// let clock = ManualClock::new(1_000_000);
/// let cache = Cache::builder().clock(Arc::new(clock.clone())).open(dir.path())?;
/// cache.set_with("k", b"v", &SetOptions::new().expire(Duration::from_secs(10)))?;
/// clock.advance(Duration::from_secs(11));
/// assert_eq!(cache.get("k")?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `micros` since the epoch.
    pub fn new(micros: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(micros)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `micros` since the epoch.
    pub fn set(&self, micros: i64) {
        self.0.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Converts a duration to microseconds, saturating.
#[cfg_attr(feature = "guest", allow(dead_code))]
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
