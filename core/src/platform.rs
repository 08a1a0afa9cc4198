//! What the platform under the store can do: the one place where targets differ.
//!
//! Natively and in WASI: value files, WAL with several connections, a background
//! maintenance thread. In a browser (`wasm32-unknown-unknown`, SQLite from
//! sqlite-wasm-rs): no file system, so every value is a blob in the database; one
//! connection per database (the browser VFSes allow no more, so no WAL); no threads, so
//! upkeep runs inline (when a write exceeds the size bound, when the recency buffer is
//! full, and on [`Store::maintain`](crate::Store::maintain)); time comes from `Date.now()`.

/// Capabilities of a platform (the guest engine uses only `threads`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "guest", allow(dead_code))]
pub(crate) struct Platform {
    /// Large values can live in files.
    pub files: bool,
    /// Several connections in WAL mode (readers in parallel with the writer).
    pub wal: bool,
    /// Threads can be spawned and slept.
    pub threads: bool,
}

/// The platform this build runs on.
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
pub(crate) const PLATFORM: Platform = Platform {
    files: true,
    wal: true,
    threads: true,
};

/// The platform this build runs on.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
pub(crate) const PLATFORM: Platform = Platform {
    files: false,
    wal: false,
    threads: false,
};

/// Wall-clock microseconds since the Unix epoch.
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
pub(crate) fn now_micros() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        // A clock set before 1970: treat as the epoch rather than failing reads.
        Err(_) => 0,
    }
}

/// Wall-clock microseconds since the Unix epoch (`SystemTime` panics in browsers).
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
pub(crate) fn now_micros() -> i64 {
    (js_sys::Date::now() * 1000.0) as i64
}

/// This process's id (0 in WebAssembly, where `std::process::id` panics: in a browser
/// and inside a wasm32-wasip2 plugin alike). Used by the SQLite engine (fork detection,
/// file owners) and in lock tokens.
pub(crate) fn pid() -> u32 {
    #[cfg(not(target_family = "wasm"))]
    {
        std::process::id()
    }
    #[cfg(target_family = "wasm")]
    {
        0
    }
}

/// A process-unique 128-bit token (lock owners).
pub(crate) fn unique_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded by the OS where there is one; time and a counter make
    // tokens unique within a process where there is not.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(now_micros());
    h.write_u32(pid());
    let a = h.finish();
    h.write_u64(a);
    (u128::from(a) << 64) | u128::from(h.finish())
}
