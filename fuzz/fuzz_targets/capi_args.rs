//! The C ABI's argument handling (`capi/`, compiled as an rlib by `capi-rlib/`):
//! arbitrary sequences of `sqc_*` calls with null pointers, zero and impossible
//! lengths, `SQC_NUL_TERMINATED` strings, invalid UTF-8, buffers too small, unknown,
//! closed and wrong-kind handles, arbitrary kinds, options and expiries.
//!
//! Checked (under AddressSanitizer): never `SQC_STATUS_PANIC`, never a write past a
//! buffer's capacity, every status has a name and a failure leaves a message; a value
//! set is read back whole; handles closed twice or of another kind are
//! `SQC_STATUS_INVALID_HANDLE`. Pointers given are always valid for the lengths given
//! (the part of the contract the caller must keep).

#![no_main]

use std::ffi::{CStr, c_char};
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sciqlop_cache_capi::*;

#[derive(Arbitrary, Debug, Clone)]
enum Str {
    /// Null pointer, with this length.
    Null(bool),
    /// Exactly these bytes (may be invalid UTF-8), pointer and length.
    Bytes(Vec<u8>),
    /// These bytes up to their first NUL, NUL-terminated.
    Terminated(Vec<u8>),
    /// A valid pointer with a length larger than `isize::MAX`.
    Impossible,
    /// A name from a small pool (so that calls meet on the same keys).
    Pool(u8),
}

const POOL: [&str; 6] = ["a", "b", "key", "k\u{e9}", "", "tag"];

/// A string argument kept alive for the call.
struct Arg {
    buf: Vec<u8>,
    ptr: *const c_char,
    len: usize,
}

impl Str {
    fn arg(&self) -> Arg {
        let (buf, null_ptr, len): (Vec<u8>, bool, Option<usize>) = match self {
            Str::Null(zero) => (Vec::new(), true, Some(if *zero { 0 } else { 5 })),
            Str::Bytes(b) => (b.clone(), false, None),
            Str::Terminated(b) => {
                let mut b: Vec<u8> = b.iter().copied().take_while(|&c| c != 0).collect();
                b.push(0);
                (b, false, Some(SQC_NUL_TERMINATED))
            }
            Str::Impossible => (vec![b'x'], false, Some(isize::MAX as usize + 1)),
            Str::Pool(i) => (
                POOL[*i as usize % POOL.len()].as_bytes().to_vec(),
                false,
                None,
            ),
        };
        let len = len.unwrap_or(buf.len());
        let ptr = if null_ptr {
            null()
        } else {
            buf.as_ptr().cast()
        };
        Arg { buf, ptr, len }
    }
    fn text(&self) -> Option<String> {
        match self {
            Str::Bytes(b) => String::from_utf8(b.clone()).ok(),
            Str::Pool(i) => Some(POOL[*i as usize % POOL.len()].to_owned()),
            Str::Null(true) => Some(String::new()),
            _ => None,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Handle {
    Slot(u8),
    Raw(u64),
    Zero,
}

#[derive(Arbitrary, Debug)]
struct Options {
    max_size: u16,
    shard_count: u8,
    file_threshold: u16,
    max_key_len: u8,
    max_value_size: u32,
    sync_files: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        kind: i32,
        dir: u8,
        name_bytes: Option<Vec<u8>>,
        opts: Option<Options>,
        null_out: bool,
    },
    Close(Handle),
    Reopen(Handle),
    Namespace(Handle, Str),
    Kind(Handle),
    Set {
        h: Handle,
        key: Str,
        value: Vec<u8>,
        null_value: bool,
        expire_us: Option<i64>,
        tag: Option<Str>,
    },
    Add {
        h: Handle,
        key: Str,
        value: Vec<u8>,
        null_stored: bool,
    },
    Get {
        h: Handle,
        key: Str,
        cap: u16,
        null_buf: bool,
        null_len: bool,
    },
    GetAlloc {
        h: Handle,
        key: Str,
        null_out: bool,
    },
    Pop {
        h: Handle,
        key: Str,
    },
    Delete {
        h: Handle,
        key: Str,
    },
    Contains {
        h: Handle,
        key: Str,
        null_out: bool,
    },
    Touch {
        h: Handle,
        key: Str,
        expire_us: i64,
    },
    Incr {
        h: Handle,
        key: Str,
        delta: i64,
        default: i64,
        decr: bool,
    },
    Counter {
        h: Handle,
        key: Str,
    },
    EvictTag {
        h: Handle,
        tag: Str,
    },
    Counts {
        h: Handle,
        which: u8,
        null_out: bool,
    },
    SetMaxSize {
        h: Handle,
        bytes: u64,
    },
    Check {
        h: Handle,
        fix: bool,
    },
    Metadata {
        h: Handle,
        name: Str,
    },
    SetMetadata {
        h: Handle,
        name: Str,
        value: Option<Str>,
    },
    TxBegin {
        h: Handle,
        key: Option<Str>,
    },
    TxEnd {
        tx: Handle,
        commit: bool,
    },
    CursorOpen {
        h: Handle,
        prefix: Option<Str>,
    },
    CursorNext {
        c: Handle,
        cap: u8,
    },
    CursorClose(Handle),
    LockTry {
        h: Handle,
        name: Str,
        expire_us: i64,
    },
    LockAcquire {
        h: Handle,
        name: Str,
        timeout_us: u16,
    },
    LockRelease(Handle),
    StatusName(i32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
}

#[derive(Default)]
struct State {
    stores: Vec<u64>,
    txs: Vec<u64>,
    cursors: Vec<u64>,
    locks: Vec<u64>,
    closed: Vec<u64>,
}

fn pick(h: Handle, ids: &[u64]) -> u64 {
    match h {
        Handle::Slot(i) if !ids.is_empty() => ids[i as usize % ids.len()],
        Handle::Slot(i) => u64::from(i),
        Handle::Raw(r) => r,
        Handle::Zero => 0,
    }
}

/// Every status has a name; a failure leaves a message; none is a panic.
fn ok(st: sqc_status) -> bool {
    assert_ne!(
        st,
        sqc_status::Panic,
        "a panic crossed into a status: {}",
        last_error()
    );
    // SAFETY: returns a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(sqc_status_name(st as i32)) };
    assert!(!name.to_bytes().is_empty());
    if st != sqc_status::Ok {
        assert!(!last_error().is_empty(), "{st:?} without a message");
    }
    st == sqc_status::Ok
}

fn last_error() -> String {
    // SAFETY: never null, NUL-terminated.
    unsafe { CStr::from_ptr(sqc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn free(mut b: sqc_buf) {
    // SAFETY: a buffer the library filled, freed once.
    unsafe { sqc_buf_free(&mut b) };
}

fn run(root: &std::path::Path, s: &mut State, op: &Op) {
    // SAFETY (every unsafe block below): pointers are null or valid for the lengths
    // passed, out-pointers are valid locals, buffers outlive the call.
    match op {
        Op::Open {
            kind,
            dir,
            name_bytes,
            opts,
            null_out,
        } => {
            let mut path = root.as_os_str().as_encoded_bytes().to_vec();
            path.push(b'/');
            match name_bytes {
                // Arbitrary bytes for the last component, kept inside the root.
                Some(b) => path.extend(
                    b.iter()
                        .map(|&c| if c == b'/' || c == 0 { b'_' } else { c })
                        .take(40),
                ),
                None => path.extend(format!("d{}", dir % 4).bytes()),
            }
            if path.ends_with(b"/") || path.ends_with(b"/.") || path.ends_with(b"/..") {
                path.push(b'x');
            }
            let o = opts.as_ref().map(|o| sqc_options {
                max_size: u64::from(o.max_size),
                shard_count: u32::from(o.shard_count % 5),
                file_threshold: u64::from(o.file_threshold),
                max_key_len: u64::from(o.max_key_len),
                max_value_size: u64::from(o.max_value_size),
                busy_timeout_us: 50_000,
                maintenance_interval_us: 0,
                sync_files: o.sync_files,
            });
            let o = o.unwrap_or(sqc_options {
                busy_timeout_us: 50_000,
                maintenance_interval_us: 0,
                ..sqc_options_default()
            });
            let mut out = sqc_store::default();
            let outp = if *null_out {
                null_mut()
            } else {
                &mut out as *mut _
            };
            let st = unsafe { sqc_open(*kind % 6, path.as_ptr().cast(), path.len(), &o, outp) };
            if ok(st) {
                assert!(!null_out);
                s.stores.push(out.id);
            }
        }
        Op::Close(h) => {
            let id = pick(*h, &s.stores);
            if ok(sqc_close(sqc_store { id })) {
                s.stores.retain(|&x| x != id);
                s.closed.push(id);
            } else if s.closed.contains(&id) {
                assert_eq!(sqc_close(sqc_store { id }), sqc_status::InvalidHandle);
            }
        }
        Op::Reopen(h) => {
            let mut out = sqc_store::default();
            if ok(unsafe {
                sqc_reopen(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    &mut out,
                )
            }) {
                s.stores.push(out.id);
            }
        }
        Op::Namespace(h, name) => {
            let a = name.arg();
            let mut out = sqc_store::default();
            if ok(unsafe {
                sqc_namespace(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    a.ptr,
                    a.len,
                    &mut out,
                )
            }) {
                s.stores.push(out.id);
            }
            drop(a.buf);
        }
        Op::Kind(h) => {
            let mut k = sqc_kind::Cache;
            let mut n = 0u32;
            let id = pick(*h, &s.stores);
            ok(unsafe { sqc_store_kind(sqc_store { id }, &mut k) });
            ok(unsafe { sqc_shard_count(sqc_store { id }, &mut n) });
            ok(unsafe { sqc_store_kind(sqc_store { id }, null_mut()) });
        }
        Op::Set {
            h,
            key,
            value,
            null_value,
            expire_us,
            tag,
        } => {
            let id = pick(*h, &s.stores);
            let k = key.arg();
            let t = tag.as_ref().map(Str::arg);
            let o = expire_us.map(|e| sqc_set_options {
                expire_us: e,
                tag: t.as_ref().map_or(null(), |t| t.ptr),
                tag_len: t.as_ref().map_or(0, |t| t.len),
            });
            let (vp, vl) = if *null_value {
                (null(), value.len())
            } else {
                (value.as_ptr(), value.len())
            };
            let op = o.as_ref().map_or(null(), |o| o as *const _);
            let st = unsafe { sqc_set(sqc_store { id }, k.ptr, k.len, vp, vl, op) };
            if ok(st) && expire_us.is_none_or(|e| e < 0 || e > 60_000_000) {
                // Read it back whole, through a buffer of exactly its size.
                let mut buf = vec![0u8; value.len()];
                let (mut len, mut found) = (0usize, false);
                let st = unsafe {
                    sqc_get(
                        sqc_store { id },
                        k.ptr,
                        k.len,
                        buf.as_mut_ptr(),
                        buf.len(),
                        &mut len,
                        &mut found,
                    )
                };
                if ok(st) && found {
                    let want: &[u8] = if *null_value { &[] } else { value };
                    // Another handle may evict under a small max_size; if found, exact.
                    assert_eq!(len, want.len());
                    assert_eq!(&buf[..len], want);
                }
            }
            drop((k.buf, t));
        }
        Op::Add {
            h,
            key,
            value,
            null_stored,
        } => {
            let k = key.arg();
            let mut stored = false;
            let sp = if *null_stored {
                null_mut()
            } else {
                &mut stored as *mut _
            };
            ok(unsafe {
                sqc_add(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    value.as_ptr(),
                    value.len(),
                    null(),
                    sp,
                )
            });
            drop(k.buf);
        }
        Op::Get {
            h,
            key,
            cap,
            null_buf,
            null_len,
        } => {
            let k = key.arg();
            let cap = *cap as usize % 2048;
            // Guard bytes after the capacity: never written.
            let mut buf = vec![0xA5u8; cap + 16];
            let (mut len, mut found) = (0usize, false);
            let bp = if *null_buf {
                null_mut()
            } else {
                buf.as_mut_ptr()
            };
            let lp = if *null_len {
                null_mut()
            } else {
                &mut len as *mut _
            };
            let c = if *null_buf { 0 } else { cap };
            let st = unsafe {
                sqc_get(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    bp,
                    c,
                    lp,
                    &mut found,
                )
            };
            ok(st);
            assert!(
                buf[cap..].iter().all(|&b| b == 0xA5),
                "sqc_get wrote past its capacity"
            );
            drop(k.buf);
        }
        Op::GetAlloc { h, key, null_out } => {
            let k = key.arg();
            let mut out = sqc_buf {
                data: null_mut(),
                len: 0,
                cap: 0,
            };
            let mut found = false;
            let op = if *null_out {
                null_mut()
            } else {
                &mut out as *mut _
            };
            if ok(unsafe {
                sqc_get_alloc(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    op,
                    &mut found,
                )
            }) {
                assert!(found || out.len == 0);
                if out.len > 0 {
                    // SAFETY: the library's buffer of `len` bytes.
                    let _ = unsafe { std::slice::from_raw_parts(out.data, out.len) }
                        .iter()
                        .sum::<u8>();
                }
            }
            free(out);
            drop(k.buf);
        }
        Op::Pop { h, key } => {
            let k = key.arg();
            let mut out = sqc_buf {
                data: null_mut(),
                len: 0,
                cap: 0,
            };
            let mut found = false;
            ok(unsafe {
                sqc_pop(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    &mut out,
                    &mut found,
                )
            });
            free(out);
            drop(k.buf);
        }
        Op::Delete { h, key } => {
            let k = key.arg();
            let mut removed = false;
            ok(unsafe {
                sqc_delete(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    &mut removed,
                )
            });
            ok(unsafe {
                sqc_delete(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    null_mut(),
                )
            });
            drop(k.buf);
        }
        Op::Contains { h, key, null_out } => {
            let k = key.arg();
            let mut out = false;
            let op = if *null_out {
                null_mut()
            } else {
                &mut out as *mut _
            };
            let st = unsafe {
                sqc_contains(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    op,
                )
            };
            if *null_out {
                assert_ne!(st, sqc_status::Ok);
            }
            ok(st);
            drop(k.buf);
        }
        Op::Touch { h, key, expire_us } => {
            let k = key.arg();
            let mut t = false;
            ok(unsafe {
                sqc_touch(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    *expire_us,
                    &mut t,
                )
            });
            drop(k.buf);
        }
        Op::Incr {
            h,
            key,
            delta,
            default,
            decr,
        } => {
            let k = key.arg();
            let mut out = 0i64;
            let id = sqc_store {
                id: pick(*h, &s.stores),
            };
            let st = if *decr {
                unsafe { sqc_decr(id, k.ptr, k.len, *delta, *default, &mut out) }
            } else {
                unsafe { sqc_incr(id, k.ptr, k.len, *delta, *default, &mut out) }
            };
            if ok(st) {
                let (mut c, mut found) = (0i64, false);
                if ok(unsafe { sqc_get_counter(id, k.ptr, k.len, &mut c, &mut found) }) && found {
                    assert_eq!(c, out, "counter read back");
                }
            }
            drop(k.buf);
        }
        Op::Counter { h, key } => {
            let k = key.arg();
            let (mut c, mut found) = (0i64, false);
            ok(unsafe {
                sqc_get_counter(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    k.ptr,
                    k.len,
                    &mut c,
                    &mut found,
                )
            });
            drop(k.buf);
        }
        Op::EvictTag { h, tag } => {
            let t = tag.arg();
            let mut n = 0u64;
            ok(unsafe {
                sqc_evict_tag(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    t.ptr,
                    t.len,
                    &mut n,
                )
            });
            drop(t.buf);
        }
        Op::Counts { h, which, null_out } => {
            let id = sqc_store {
                id: pick(*h, &s.stores),
            };
            let mut n = 0u64;
            let p = if *null_out {
                null_mut()
            } else {
                &mut n as *mut _
            };
            let st = unsafe {
                match which % 7 {
                    0 => sqc_expire(id, p),
                    1 => sqc_clear(id, p),
                    2 => sqc_evict(id, p),
                    3 => sqc_len(id, p),
                    4 => sqc_size(id, p),
                    5 => sqc_volume(id, p),
                    _ => sqc_max_size(id, p),
                }
            };
            ok(st);
            let mut hs = sqc_hit_stats { hits: 0, misses: 0 };
            ok(unsafe { sqc_stats(id, &mut hs) });
            ok(sqc_reset_stats(id));
        }
        Op::SetMaxSize { h, bytes } => {
            ok(sqc_set_max_size(
                sqc_store {
                    id: pick(*h, &s.stores),
                },
                *bytes,
            ));
        }
        Op::Check { h, fix } => {
            let mut r = sqc_check_report::default();
            ok(unsafe {
                sqc_check(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    *fix,
                    &mut r,
                )
            });
        }
        Op::Metadata { h, name } => {
            let n = name.arg();
            let mut out = sqc_buf {
                data: null_mut(),
                len: 0,
                cap: 0,
            };
            let mut found = false;
            ok(unsafe {
                sqc_metadata(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    n.ptr,
                    n.len,
                    &mut out,
                    &mut found,
                )
            });
            free(out);
            drop(n.buf);
        }
        Op::SetMetadata { h, name, value } => {
            let n = name.arg();
            let v = value.as_ref().map(Str::arg);
            let id = sqc_store {
                id: pick(*h, &s.stores),
            };
            let (vp, vl) = v.as_ref().map_or((null(), 0), |v| (v.ptr, v.len));
            if ok(unsafe { sqc_set_metadata(id, n.ptr, n.len, vp, vl) }) {
                let mut out = sqc_buf {
                    data: null_mut(),
                    len: 0,
                    cap: 0,
                };
                let mut found = false;
                if ok(unsafe { sqc_metadata(id, n.ptr, n.len, &mut out, &mut found) }) {
                    let want = value.as_ref().and_then(Str::text);
                    if let (Some(w), true) = (&want, found) {
                        // SAFETY: the library's buffer of `len` bytes.
                        let got = if out.len == 0 {
                            &[][..]
                        } else {
                            unsafe { std::slice::from_raw_parts(out.data, out.len) }
                        };
                        assert_eq!(got, w.as_bytes(), "metadata read back");
                    }
                }
                free(out);
            }
            drop((n.buf, v));
        }
        Op::TxBegin { h, key } => {
            let k = key.as_ref().map(Str::arg);
            let (kp, kl) = k.as_ref().map_or((null(), 0), |k| (k.ptr, k.len));
            let mut out = sqc_tx::default();
            if ok(unsafe {
                sqc_tx_begin(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    kp,
                    kl,
                    &mut out,
                )
            }) {
                s.txs.push(out.id);
            }
            drop(k);
        }
        Op::TxEnd { tx, commit } => {
            let id = pick(*tx, &s.txs);
            let st = if *commit {
                sqc_tx_commit(sqc_tx { id })
            } else {
                sqc_tx_rollback(sqc_tx { id })
            };
            // A transaction ends once, whatever its commit gave.
            if s.txs.contains(&id) && st != sqc_status::InvalidHandle {
                s.txs.retain(|&x| x != id);
            }
            ok(st);
        }
        Op::CursorOpen { h, prefix } => {
            let p = prefix.as_ref().map(Str::arg);
            let (pp, pl) = p.as_ref().map_or((null(), 0), |p| (p.ptr, p.len));
            let mut out = sqc_cursor::default();
            if ok(unsafe {
                sqc_cursor_open(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    pp,
                    pl,
                    &mut out,
                )
            }) {
                s.cursors.push(out.id);
            }
            drop(p);
        }
        Op::CursorNext { c, cap } => {
            let cap = *cap as usize % 64;
            let mut buf = vec![0xA5u8; cap + 16];
            let (mut len, mut has) = (0usize, false);
            ok(unsafe {
                sqc_cursor_next(
                    sqc_cursor {
                        id: pick(*c, &s.cursors),
                    },
                    buf.as_mut_ptr(),
                    cap,
                    &mut len,
                    &mut has,
                )
            });
            assert!(
                buf[cap..].iter().all(|&b| b == 0xA5),
                "sqc_cursor_next wrote past its capacity"
            );
        }
        Op::CursorClose(c) => {
            let id = pick(*c, &s.cursors);
            if ok(sqc_cursor_close(sqc_cursor { id })) {
                s.cursors.retain(|&x| x != id);
            }
        }
        Op::LockTry { h, name, expire_us } => {
            let n = name.arg();
            let mut out = sqc_lock::default();
            let mut acquired = false;
            if ok(unsafe {
                sqc_lock_try(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    n.ptr,
                    n.len,
                    *expire_us,
                    &mut out,
                    &mut acquired,
                )
            }) && acquired
            {
                s.locks.push(out.id);
            }
            drop(n.buf);
        }
        Op::LockAcquire {
            h,
            name,
            timeout_us,
        } => {
            let n = name.arg();
            let mut out = sqc_lock::default();
            let st = unsafe {
                sqc_lock_acquire(
                    sqc_store {
                        id: pick(*h, &s.stores),
                    },
                    n.ptr,
                    n.len,
                    10_000_000,
                    i64::from(*timeout_us % 2000),
                    &mut out,
                )
            };
            if ok(st) {
                s.locks.push(out.id);
            }
            drop(n.buf);
        }
        Op::LockRelease(l) => {
            let id = pick(*l, &s.locks);
            if ok(sqc_lock_release(sqc_lock { id })) {
                s.locks.retain(|&x| x != id);
            }
        }
        Op::StatusName(i) => {
            // SAFETY: any int has a static name.
            let n = unsafe { CStr::from_ptr(sqc_status_name(*i)) };
            assert!(!n.to_bytes().is_empty());
        }
    }
}

fuzz_target!(|input: Input| {
    assert_eq!(sqc_abi_version(), SQC_ABI_VERSION);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut s = State::default();
    for op in input.ops.iter().take(64) {
        run(tmp.path(), &mut s, op);
    }
    // Everything still open is released (also checks that no handle is stuck).
    for id in std::mem::take(&mut s.txs) {
        ok(sqc_tx_rollback(sqc_tx { id }));
    }
    for id in std::mem::take(&mut s.cursors) {
        ok(sqc_cursor_close(sqc_cursor { id }));
    }
    for id in std::mem::take(&mut s.locks) {
        ok(sqc_lock_release(sqc_lock { id }));
    }
    for id in std::mem::take(&mut s.stores) {
        assert!(ok(sqc_close(sqc_store { id })));
        assert_eq!(sqc_close(sqc_store { id }), sqc_status::InvalidHandle);
    }
});
