//! The plain C structs of the interface: handles, options, results, buffers.

use std::ffi::{c_char, c_void};

/// An open store (Cache, Index, FanoutCache or FanoutIndex). An id in the library's
/// registry, not a pointer: `{0}` is never a valid handle.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct sqc_store {
    /// Registry id (0: none).
    pub id: u64,
}

/// An open transaction, begun by `sqc_tx_begin`. Belongs to the
/// thread that began it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct sqc_tx {
    /// Registry id (0: none).
    pub id: u64,
}

/// A held cross-process lock, taken by `sqc_lock_acquire`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct sqc_lock {
    /// Registry id (0: none).
    pub id: u64,
}

/// A key iteration, opened by `sqc_cursor_open`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct sqc_cursor {
    /// Registry id (0: none).
    pub id: u64,
}

/// The kinds of store.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sqc_kind {
    /// Full-featured cache: expiry, tags, LRU eviction by size, hit/miss statistics.
    Cache = 0,
    /// Bare key-value store: no expiry, eviction, tags or statistics.
    Index = 1,
    /// A Cache sharded over N stores (write concurrency).
    FanoutCache = 2,
    /// An Index sharded over N stores.
    FanoutIndex = 3,
}

impl sqc_kind {
    pub(crate) fn from_i32(v: i32) -> Option<Self> {
        [
            sqc_kind::Cache,
            sqc_kind::Index,
            sqc_kind::FanoutCache,
            sqc_kind::FanoutIndex,
        ]
        .into_iter()
        .find(|k| *k as i32 == v)
    }
}

/// Settings of `sqc_open`. Start from
/// `sqc_options_default` and change fields: a zero or
/// negative value where noted means "the default".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct sqc_options {
    /// Bound on the bytes of stored values, LRU-evicted beyond (Cache kinds; the whole
    /// fanout for FanoutCache). 0: unbounded.
    pub max_size: u64,
    /// Shards of a new fanout directory (fanout kinds). 0: the existing directory's
    /// count, or 8 for a new one. A count other than an existing directory's is
    /// `SQC_STATUS_SHARD_COUNT_MISMATCH`.
    pub shard_count: u32,
    /// Values of at least this many bytes are stored in their own file. 0: 8 KiB.
    pub file_threshold: u64,
    /// Longest accepted key in bytes. 0: 4096.
    pub max_key_len: u64,
    /// Largest accepted value in bytes. 0: 4 GiB.
    pub max_value_size: u64,
    /// Longest wait, in microseconds, for a lock another connection holds before
    /// `SQC_STATUS_BUSY`. Negative: ten minutes.
    pub busy_timeout_us: i64,
    /// Period of the background upkeep thread in microseconds (0 disables it).
    /// Negative: one second.
    pub maintenance_interval_us: i64,
    /// Whether to fsync value files before their row commits (power-loss safety of the
    /// file tier).
    pub sync_files: bool,
}

/// Options of one write (Cache kinds; an Index accepts only "no expiry, no tag").
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sqc_set_options {
    /// Microseconds until the entry expires (0: at once). Negative
    /// (`SQC_NO_EXPIRY`): never.
    pub expire_us: i64,
    /// Tag for bulk removal with `sqc_evict_tag`, UTF-8; null: no tag.
    pub tag: *const c_char,
    /// Length of `tag` in bytes, or `SQC_NUL_TERMINATED`.
    pub tag_len: usize,
}

/// A byte buffer owned by the library (a value, a metadata string). Free it with
/// `sqc_buf_free`, once. `data` is null when `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct sqc_buf {
    /// The bytes (null when empty).
    pub data: *mut u8,
    /// Their number.
    pub len: usize,
    /// Allocated capacity (the library's bookkeeping: do not change).
    pub cap: usize,
}

impl sqc_buf {
    pub(crate) const EMPTY: sqc_buf = sqc_buf {
        data: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };

    pub(crate) fn from_vec(v: Vec<u8>) -> sqc_buf {
        if v.capacity() == 0 {
            return sqc_buf::EMPTY;
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        sqc_buf {
            data: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }
}

/// Hit and miss counts of a Cache handle since it was opened or reset.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sqc_hit_stats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
}

/// What `sqc_check` found (and, with `fix`, repaired); a fanout's
/// counts are summed over its shards and its flags and-ed.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sqc_check_report {
    /// Nothing wrong was found (after a fix: the state is ok now).
    pub ok: bool,
    /// Value files without a row.
    pub orphaned_files: u64,
    /// Rows whose value file is missing or has the wrong size.
    pub dangling_rows: u64,
    /// Inline rows whose recorded size differs from the value's length.
    pub size_mismatches: u64,
    /// The maintained count and size totals matched the rows.
    pub counters_consistent: bool,
    /// SQLite's own integrity check passed.
    pub sqlite_integrity_ok: bool,
    /// Repairs were made.
    pub fixed: bool,
}

/// Called by `sqc_get_with` with the value in place (no copy;
/// `data` is valid only during the call, and may be a dangling non-null pointer when
/// `len` is 0). It must not unwind (a C++ callback must be `noexcept`) and must not
/// call into the library.
pub type sqc_visit_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize)>;
