//! Stores: open/close and every operation on them.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use sqc_core::{
    AnyStore, Builder, Cache, CheckReport, Engine, FanoutCache, FanoutIndex, Index, Policy,
    SetOptions, Transaction,
};

use crate::args::{self, OptOut, Out, OutBytes};
use crate::error::{Res, fail, guard, sqc_status};
use crate::handles::Registry;
use crate::types::{
    sqc_buf, sqc_check_report, sqc_hit_stats, sqc_kind, sqc_options, sqc_set_options, sqc_store,
    sqc_visit_fn,
};

/// An open store of any kind: the core's run-time store (any kind, any engine), with
/// the kind it was opened as.
pub(crate) struct StoreObj {
    pub(crate) store: AnyStore,
    kind: sqc_kind,
    shards: u32,
}

/// Runs `$body` with `$s` bound to the store, whatever its kind.
macro_rules! any_store {
    ($obj:expr, $s:ident => $body:expr) => {{
        let $s = &$obj.store;
        $body
    }};
}

/// Runs `$body` with `$s` bound to a Cache or FanoutCache; an Index kind is
/// `SQC_STATUS_UNSUPPORTED` naming `$what`.
macro_rules! cache_store {
    ($obj:expr, $what:expr, $s:ident => $body:expr) => {{
        let obj = $obj;
        if obj.is_cache() {
            let $s = &obj.store;
            $body
        } else {
            Err(obj.unsupported($what))
        }
    }};
}

impl StoreObj {
    /// A store object over `engine` (opened as `kind`).
    fn new(
        engine: Arc<dyn Engine>,
        config: &sqc_core::Config,
        kind: sqc_kind,
        shards: u32,
    ) -> Res<Self> {
        Ok(StoreObj {
            store: AnyStore::from_engine(engine, config)?,
            kind,
            shards,
        })
    }

    pub(crate) fn kind(&self) -> sqc_kind {
        self.kind
    }

    fn is_cache(&self) -> bool {
        matches!(self.kind, sqc_kind::Cache | sqc_kind::FanoutCache)
    }

    fn path(&self) -> &std::path::Path {
        self.store.path()
    }

    fn unsupported(&self, what: &str) -> crate::error::Failure {
        fail(
            sqc_status::Unsupported,
            format!(
                "{what} is not available on a {:?} (store {}): it has no expiry, tags, eviction or statistics",
                self.kind(),
                self.path().display()
            ),
        )
    }

    /// Begins a transaction: on the store, or on the shard of `key` for a fanout.
    pub(crate) fn begin(&self, key: Option<&str>) -> Res<Transaction<'_>> {
        let need_key = || {
            fail(
                sqc_status::InvalidArgument,
                "a fanout transaction needs a key: it runs on that key's shard",
            )
        };
        Ok(match self.kind {
            sqc_kind::Cache | sqc_kind::Index => self.store.begin()?,
            sqc_kind::FanoutCache | sqc_kind::FanoutIndex => {
                self.store.begin_on(key.ok_or_else(need_key)?)?
            }
        })
    }

    pub(crate) fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Res<Vec<String>> {
        Ok(any_store!(self, s => s.keys_page(prefix, after, limit))?)
    }
}

pub(crate) static STORES: Registry<Arc<StoreObj>> = Registry::new("store");

pub(crate) fn store(h: sqc_store) -> Res<Arc<StoreObj>> {
    STORES.get(h.id)
}

/// The default settings of `sqc_open`: unbounded, 8 KiB file threshold, 4096-byte
/// keys, 4 GiB values, ten-minute busy timeout, upkeep every second, no fsync, and for
/// fanouts the directory's shard count (8 when new).
#[unsafe(no_mangle)]
pub extern "C" fn sqc_options_default() -> sqc_options {
    sqc_options {
        max_size: 0,
        shard_count: 0,
        file_threshold: 0,
        max_key_len: 0,
        max_value_size: 0,
        busy_timeout_us: -1,
        maintenance_interval_us: -1,
        sync_files: false,
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.unsigned_abs())
}

fn configure<P: Policy>(mut b: Builder<P>, o: &sqc_options) -> Builder<P> {
    b = b.max_size(o.max_size).sync_files(o.sync_files);
    if o.file_threshold > 0 {
        b = b.file_threshold(usize::try_from(o.file_threshold).unwrap_or(usize::MAX));
    }
    if o.max_key_len > 0 {
        b = b.max_key_len(usize::try_from(o.max_key_len).unwrap_or(usize::MAX));
    }
    if o.max_value_size > 0 {
        b = b.max_value_size(o.max_value_size);
    }
    if o.busy_timeout_us >= 0 {
        b = b.busy_timeout(micros(o.busy_timeout_us));
    }
    if o.maintenance_interval_us >= 0 {
        b = b.maintenance_interval(micros(o.maintenance_interval_us));
    }
    b
}

/// Opens (creating if needed) a store of `kind` (one of `SQC_KIND_*`) in directory
/// `path` (`path_len` bytes, or `SQC_NUL_TERMINATED`), with `options` (null: the
/// defaults of `sqc_options_default`), and writes its handle to `out`.
///
/// Fails with `SQC_STATUS_NOT_A_CACHE` for a directory whose database is not a
/// sciqlop-cache store, `SQC_STATUS_WRONG_KIND` for a store of another kind,
/// `SQC_STATUS_NOT_A_DIRECTORY` for a file.
///
/// # Safety
/// `path` is valid for `path_len` bytes (or NUL-terminated); `options` is null or
/// points to an `sqc_options`; `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_open(
    kind: i32,
    path: *const c_char,
    path_len: usize,
    options: *const sqc_options,
    out: *mut sqc_store,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (out, path, opts) = unsafe {
            (
                Out::new(out, "out")?,
                args::path(path, path_len)?,
                args::read_opt(options).unwrap_or_else(|| sqc_options_default()),
            )
        };
        let kind = sqc_kind::from_i32(kind).ok_or_else(|| {
            fail(
                sqc_status::InvalidArgument,
                format!("{kind} is not a store kind (SQC_KIND_*)"),
            )
        })?;
        let config = match kind {
            sqc_kind::Cache | sqc_kind::FanoutCache => {
                configure(Cache::builder(), &opts).config().clone()
            }
            sqc_kind::Index | sqc_kind::FanoutIndex => {
                configure(Index::builder(), &opts).config().clone()
            }
        };
        let (engine, shards): (Arc<dyn Engine>, u32) = match kind {
            sqc_kind::Cache => (
                configure(Cache::builder(), &opts)
                    .open(path)?
                    .engine()
                    .clone(),
                1,
            ),
            sqc_kind::Index => (
                configure(Index::builder(), &opts)
                    .open(path)?
                    .engine()
                    .clone(),
                1,
            ),
            sqc_kind::FanoutCache => {
                let mut b = FanoutCache::builder().configure(|b| configure(b, &opts));
                if opts.shard_count > 0 {
                    b = b.shards(opts.shard_count);
                }
                let f = b.open(path)?;
                (f.engine().clone(), f.shard_count())
            }
            sqc_kind::FanoutIndex => {
                let mut b = FanoutIndex::builder().configure(|b| configure(b, &opts));
                if opts.shard_count > 0 {
                    b = b.shards(opts.shard_count);
                }
                let f = b.open(path)?;
                (f.engine().clone(), f.shard_count())
            }
        };
        let obj = StoreObj::new(engine, &config, kind, shards)?;
        out.set(sqc_store {
            id: STORES.insert(Arc::new(obj)),
        });
        Ok(())
    })
}

/// Closes a store handle: from now on it is invalid (`SQC_STATUS_INVALID_HANDLE`,
/// also for a second close). Calls running on it finish first; the store is released
/// once they, and its open transactions, locks and cursors, are done.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_close(store: sqc_store) -> sqc_status {
    guard(|| {
        drop(STORES.remove(store.id)?);
        Ok(())
    })
}

/// Opens the same store again with the same settings: a new, independent handle (how
/// a child made by `fork()` keeps using a store it inherited).
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_reopen(store: sqc_store, out: *mut sqc_store) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let out = unsafe { Out::new(out, "out")? };
        let old = self::store(store)?;
        let obj = StoreObj {
            store: old.store.reopen()?,
            kind: old.kind,
            shards: old.shards,
        };
        out.set(sqc_store {
            id: STORES.insert(Arc::new(obj)),
        });
        Ok(())
    })
}

/// A new handle on the namespace `name` of the same store, created if needed: an
/// independent key space with its own count, size, keys, tags and `sqc_clear`, sharing
/// the store's connections, size bound and eviction (the empty name is the default
/// namespace, the one `sqc_open` gives). The plugin host keeps a plugin's store `s` as
/// the namespace `s` of the plugin's cache. Close it with `sqc_close`, like any store.
///
/// # Safety
/// `name` valid for `name_len` bytes (or NUL-terminated with `SQC_NUL_TERMINATED`);
/// `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_namespace(
    store: sqc_store,
    name: *const c_char,
    name_len: usize,
    out: *mut sqc_store,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (name, out) = unsafe { (args::text(name, name_len, "name")?, Out::new(out, "out")?) };
        let old = self::store(store)?;
        let obj = StoreObj {
            store: old.store.namespace(name)?,
            kind: old.kind,
            shards: old.shards,
        };
        out.set(sqc_store {
            id: STORES.insert(Arc::new(obj)),
        });
        Ok(())
    })
}

/// The kind of an open store.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_store_kind(store: sqc_store, out: *mut sqc_kind) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let out = unsafe { Out::new(out, "out")? };
        out.set(self::store(store)?.kind());
        Ok(())
    })
}

/// Number of shards: the fanout's, 1 for a single store.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_shard_count(store: sqc_store, out: *mut u32) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let out = unsafe { Out::new(out, "out")? };
        out.set(self::store(store)?.shards);
        Ok(())
    })
}

/// The write options as the core's, or `None` for "no expiry, no tag".
///
/// # Safety
/// `opts` is null or points to an `sqc_set_options` whose tag is valid as documented.
unsafe fn set_options(opts: *const sqc_set_options) -> Res<Option<SetOptions>> {
    // SAFETY: forwarded contract.
    let Some(o) = (unsafe { args::read_opt(opts) }) else {
        return Ok(None);
    };
    // SAFETY: forwarded contract.
    let tag = unsafe { args::opt_text(o.tag, o.tag_len, "tag")? };
    if o.expire_us < 0 && tag.is_none() {
        return Ok(None);
    }
    let mut so = SetOptions::new();
    if o.expire_us >= 0 {
        so = so.expire(micros(o.expire_us));
    }
    if let Some(t) = tag {
        so = so.tag(t);
    }
    Ok(Some(so))
}

/// Stores `value` (`value_len` bytes) under `key` (`key_len` bytes of UTF-8, or
/// `SQC_NUL_TERMINATED`), replacing any previous value with its expiry and tag.
/// `options` (null: no expiry, no tag) gives an expiry and/or a tag (Cache kinds only:
/// on an Index anything but "none" is `SQC_STATUS_UNSUPPORTED`).
///
/// # Safety
/// `key` and `value` are valid for their lengths; `options` is null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_set(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    options: *const sqc_set_options,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, value, opts) = unsafe {
            (
                args::text(key, key_len, "key")?,
                args::bytes(value, value_len, "value")?,
                set_options(options)?,
            )
        };
        let obj = self::store(store)?;
        match opts {
            None => any_store!(&*obj, s => s.set(key, value))?,
            Some(o) => {
                cache_store!(&*obj, "a write with expiry or tag", s => Ok(s.set_with(key, value, &o)?))?
            }
        }
        Ok(())
    })
}

/// Stores `value` under `key` only if the key is absent (an expired entry counts as
/// absent), atomically across threads and processes; `stored` (may be null) tells
/// whether it did. Options as `sqc_set`.
///
/// # Safety
/// As `sqc_set`; `stored` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_add(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    options: *const sqc_set_options,
    stored: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, value, opts, stored) = unsafe {
            (
                args::text(key, key_len, "key")?,
                args::bytes(value, value_len, "value")?,
                set_options(options)?,
                OptOut::new(stored),
            )
        };
        let obj = self::store(store)?;
        let done = match opts {
            None => any_store!(&*obj, s => s.add(key, value))?,
            Some(o) => {
                cache_store!(&*obj, "an add with expiry or tag", s => Ok(s.add_with(key, value, &o)?))?
            }
        };
        stored.set(done);
        Ok(())
    })
}

/// Reads the value of `key` into the caller's buffer `buf` of `cap` bytes (null when
/// `cap` is 0), copying straight from the database for inline values. `found` tells
/// whether the key is live; `len` receives the value's length. When the value is
/// longer than `cap`, nothing is copied, `len` receives the size needed and the status
/// is `SQC_STATUS_BUFFER_TOO_SMALL` (the read counts as a hit).
///
/// # Safety
/// `key` valid for its length; `buf` valid for writes of `cap` bytes; `len` and
/// `found` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_get(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, buf, len, found) = unsafe {
            (
                args::text(key, key_len, "key")?,
                OutBytes::new(buf, cap, "buf")?,
                Out::new(len, "len")?,
                Out::new(found, "found")?,
            )
        };
        let obj = self::store(store)?;
        let r = any_store!(&*obj, s => s.get_with(key, |v| {
            if v.len() <= buf.cap() {
                buf.fill(v);
            }
            v.len()
        }))?;
        found.set(r.is_some());
        let n = r.unwrap_or(0);
        len.set(n);
        if n > buf.cap() {
            return Err(fail(
                sqc_status::BufferTooSmall,
                format!(
                    "value of key {key:?} has {n} bytes, the buffer holds {}",
                    buf.cap()
                ),
            ));
        }
        Ok(())
    })
}

/// Reads the value of `key` into a buffer the library allocates (`out`, to free with
/// `sqc_buf_free`; left empty on a miss). `found` tells whether the key is live.
///
/// # Safety
/// `key` valid for its length; `out` and `found` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_get_alloc(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    out: *mut sqc_buf,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out, found) = unsafe {
            (
                args::text(key, key_len, "key")?,
                Out::new(out, "out")?,
                Out::new(found, "found")?,
            )
        };
        let v = any_store!(&*self::store(store)?, s => s.get(key))?;
        found.set(v.is_some());
        out.set(v.map_or(sqc_buf::EMPTY, sqc_buf::from_vec));
        Ok(())
    })
}

/// Calls `visit(ctx, data, len)` with the value of `key` in place, without copying it
/// out of the database when it is stored inline (not called on a miss). `found` tells
/// whether the key is live. See `sqc_visit_fn` for what the callback may do.
///
/// # Safety
/// `key` valid for its length; `visit` non-null and safe to call with `ctx`; `found`
/// valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_get_with(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    visit: sqc_visit_fn,
    ctx: *mut c_void,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, found) = unsafe { (args::text(key, key_len, "key")?, Out::new(found, "found")?) };
        let visit =
            visit.ok_or_else(|| fail(sqc_status::NullPointer, "visit is a null pointer"))?;
        let obj = self::store(store)?;
        let r = any_store!(&*obj, s => s.get_with(key, |v| {
            // SAFETY: the caller promises `visit` may be called with `ctx`; `v` is valid
            // for `v.len()` bytes during the call.
            unsafe { visit(ctx, v.as_ptr(), v.len()) }
        }))?;
        found.set(r.is_some());
        Ok(())
    })
}

/// Removes `key` and returns its value in `out` (library-owned, free with
/// `sqc_buf_free`; empty on a miss), atomically. `found` tells whether it was live.
///
/// # Safety
/// `key` valid for its length; `out` and `found` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_pop(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    out: *mut sqc_buf,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out, found) = unsafe {
            (
                args::text(key, key_len, "key")?,
                Out::new(out, "out")?,
                Out::new(found, "found")?,
            )
        };
        let v = any_store!(&*self::store(store)?, s => s.pop(key))?;
        found.set(v.is_some());
        out.set(v.map_or(sqc_buf::EMPTY, sqc_buf::from_vec));
        Ok(())
    })
}

/// Frees a buffer the library returned and sets it to empty (so freeing it again is a
/// no-op; a *copy* of the struct must not be freed as well). Null is ignored.
///
/// # Safety
/// `buf` is null or points to an `sqc_buf` filled by this library (or empty).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_buf_free(buf: *mut sqc_buf) {
    let _ = guard(|| {
        // SAFETY: the function's contract: null or a valid sqc_buf.
        let Some(b) = (unsafe { buf.as_mut() }) else {
            return Ok(());
        };
        let taken = std::mem::replace(b, sqc_buf::EMPTY);
        if !taken.data.is_null() {
            // SAFETY: data/len/cap come from a Vec<u8> leaked by `sqc_buf::from_vec`,
            // and were reset to empty above, so this Vec is rebuilt once.
            drop(unsafe { Vec::from_raw_parts(taken.data, taken.len, taken.cap) });
        }
        Ok(())
    });
}

/// Removes `key`; `removed` (may be null) tells whether a live entry was removed.
///
/// # Safety
/// `key` valid for its length; `removed` null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_delete(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    removed: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, removed) = unsafe { (args::text(key, key_len, "key")?, OptOut::new(removed)) };
        removed.set(any_store!(&*self::store(store)?, s => s.delete(key))?);
        Ok(())
    })
}

/// Whether `key` holds a live entry.
///
/// # Safety
/// `key` valid for its length; `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_contains(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    out: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out) = unsafe { (args::text(key, key_len, "key")?, Out::new(out, "out")?) };
        out.set(any_store!(&*self::store(store)?, s => s.contains(key))?);
        Ok(())
    })
}

/// Gives a live entry a new expiry: `expire_us` microseconds from now, or never when
/// negative (`SQC_NO_EXPIRY`). `touched` (may be null) tells whether the key was live.
/// Cache kinds only.
///
/// # Safety
/// `key` valid for its length; `touched` null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_touch(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    expire_us: i64,
    touched: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, touched) = unsafe { (args::text(key, key_len, "key")?, OptOut::new(touched)) };
        let expire = (expire_us >= 0).then(|| micros(expire_us));
        let r = cache_store!(&*self::store(store)?, "touch", s => Ok(s.touch(key, expire)?))?;
        touched.set(r);
        Ok(())
    })
}

/// Adds `delta` to the counter at `key` (created as `default_value + delta` when absent
/// or expired) and writes the new value to `out` (may be null). Atomic across threads
/// and processes. Counters are ASCII decimal i64 (readable with `sqc_get`); any other
/// value is `SQC_STATUS_NOT_A_COUNTER`, never overwritten.
///
/// # Safety
/// `key` valid for its length; `out` null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_incr(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    delta: i64,
    default_value: i64,
    out: *mut i64,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out) = unsafe { (args::text(key, key_len, "key")?, OptOut::new(out)) };
        out.set(any_store!(&*self::store(store)?, s => s.incr(key, delta, default_value))?);
        Ok(())
    })
}

/// Subtracts `delta` from the counter at `key`; see `sqc_incr`.
///
/// # Safety
/// As `sqc_incr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_decr(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    delta: i64,
    default_value: i64,
    out: *mut i64,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out) = unsafe { (args::text(key, key_len, "key")?, OptOut::new(out)) };
        out.set(any_store!(&*self::store(store)?, s => s.decr(key, delta, default_value))?);
        Ok(())
    })
}

/// The counter at `key` in `out` (`found` false when absent);
/// `SQC_STATUS_NOT_A_COUNTER` when the value is not a counter.
///
/// # Safety
/// `key` valid for its length; `out` and `found` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_get_counter(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    out: *mut i64,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out, found) = unsafe {
            (
                args::text(key, key_len, "key")?,
                Out::new(out, "out")?,
                Out::new(found, "found")?,
            )
        };
        let v = any_store!(&*self::store(store)?, s => s.get_counter(key))?;
        found.set(v.is_some());
        out.set(v.unwrap_or(0));
        Ok(())
    })
}

/// Removes every entry tagged `tag`; `removed` (may be null) gets how many. Cache kinds.
///
/// # Safety
/// `tag` valid for its length; `removed` null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_evict_tag(
    store: sqc_store,
    tag: *const c_char,
    tag_len: usize,
    removed: *mut u64,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (tag, removed) = unsafe { (args::text(tag, tag_len, "tag")?, OptOut::new(removed)) };
        removed.set(cache_store!(&*self::store(store)?, "evict_tag", s => Ok(s.evict_tag(tag)?))?);
        Ok(())
    })
}

/// Runs `f` on the store and writes its count to `out` (required or nullable).
///
/// # Safety
/// `out` is null or valid for writes.
unsafe fn count_into(
    store: sqc_store,
    out: *mut u64,
    required: bool,
    f: impl FnOnce(&StoreObj) -> Res<u64>,
) -> sqc_status {
    guard(|| {
        if required && out.is_null() {
            return Err(fail(sqc_status::NullPointer, "out is a null pointer"));
        }
        // SAFETY: forwarded contract.
        let out = unsafe { OptOut::new(out) };
        out.set(f(&*self::store(store)?)?);
        Ok(())
    })
}

/// Removes every expired entry now; `out` (may be null) gets how many. Cache kinds.
///
/// # Safety
/// `out` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_expire(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe {
        count_into(store, out, false, |obj| {
            Ok(cache_store!(obj, "expire", s => Ok(s.expire()?))?)
        })
    }
}

/// Removes every entry; `out` (may be null) gets how many.
///
/// # Safety
/// `out` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_clear(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe {
        count_into(store, out, false, |obj| {
            Ok(any_store!(obj, s => s.clear())?)
        })
    }
}

/// Evicts least-recently-used entries now, if the values exceed the bound, down to
/// 90 % of it; `out` (may be null) gets how many. Cache kinds.
///
/// # Safety
/// `out` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_evict(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe {
        count_into(store, out, false, |obj| {
            Ok(cache_store!(obj, "evict", s => Ok(s.evict()?))?)
        })
    }
}

/// Number of live entries (exact, no scan).
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_len(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe { count_into(store, out, true, |obj| Ok(any_store!(obj, s => s.len())?)) }
}

/// Bytes of stored values (expired entries count until purged).
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_size(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe { count_into(store, out, true, |obj| Ok(any_store!(obj, s => s.size())?)) }
}

/// Bytes on disk: database, WAL and value files.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_volume(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe {
        count_into(store, out, true, |obj| {
            Ok(any_store!(obj, s => s.volume())?)
        })
    }
}

/// The bound on bytes of values (0: unbounded). Cache kinds.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_max_size(store: sqc_store, out: *mut u64) -> sqc_status {
    // SAFETY: forwarded contract.
    unsafe {
        count_into(store, out, true, |obj| {
            Ok(cache_store!(obj, "max_size", s => Ok::<_, crate::error::Failure>(s.max_size()))?)
        })
    }
}

/// Changes the bound on bytes of values (0: unbounded) for this handle from now on
/// (eviction starts in the background if the store is over it). Cache kinds.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_set_max_size(store: sqc_store, bytes: u64) -> sqc_status {
    guard(|| cache_store!(&*self::store(store)?, "set_max_size", s => Ok(s.set_max_size(bytes)?)))
}

/// Hits and misses of reads through this handle. Cache kinds.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_stats(store: sqc_store, out: *mut sqc_hit_stats) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let out = unsafe { Out::new(out, "out")? };
        let st = cache_store!(&*self::store(store)?, "stats", s => Ok::<_, crate::error::Failure>(s.stats()))?;
        out.set(sqc_hit_stats {
            hits: st.hits,
            misses: st.misses,
        });
        Ok(())
    })
}

/// Resets hits and misses to zero. Cache kinds.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_reset_stats(store: sqc_store) -> sqc_status {
    guard(|| {
        cache_store!(&*self::store(store)?, "reset_stats", s => {
            s.reset_stats();
            Ok(())
        })
    })
}

/// Verifies the store (SQLite integrity, orphaned value files, rows without intact
/// files, sizes, totals); with `fix`, repairs what it found.
///
/// # Safety
/// `out` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_check(
    store: sqc_store,
    fix: bool,
    out: *mut sqc_check_report,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let out = unsafe { Out::new(out, "out")? };
        let r: CheckReport = any_store!(&*self::store(store)?, s => s.check(fix))?;
        out.set(sqc_check_report {
            ok: r.ok,
            orphaned_files: r.orphaned_files,
            dangling_rows: r.dangling_rows,
            size_mismatches: r.size_mismatches,
            counters_consistent: r.counters_consistent,
            sqlite_integrity_ok: r.sqlite_integrity_ok,
            fixed: r.fixed,
        });
        Ok(())
    })
}

/// The store's metadata value `name` (set by any process with `sqc_set_metadata`) in
/// `out` (library-owned, UTF-8, not NUL-terminated; empty when absent); `found` tells
/// whether it is set. Metadata is not an entry.
///
/// # Safety
/// `name` valid for its length; `out` and `found` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_metadata(
    store: sqc_store,
    name: *const c_char,
    name_len: usize,
    out: *mut sqc_buf,
    found: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (name, out, found) = unsafe {
            (
                args::text(name, name_len, "metadata name")?,
                Out::new(out, "out")?,
                Out::new(found, "found")?,
            )
        };
        let v = any_store!(&*self::store(store)?, s => s.metadata(name))?;
        found.set(v.is_some());
        out.set(v.map_or(sqc_buf::EMPTY, |s| sqc_buf::from_vec(s.into_bytes())));
        Ok(())
    })
}

/// Sets the metadata value `name` to `value` (UTF-8); a null `value` removes it.
///
/// # Safety
/// `name` and `value` valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_set_metadata(
    store: sqc_store,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (name, value) = unsafe {
            (
                args::text(name, name_len, "metadata name")?,
                args::opt_text(value, value_len, "metadata value")?,
            )
        };
        Ok(any_store!(&*self::store(store)?, s => s.set_metadata(name, value))?)
    })
}
