//! The C ABI called from Rust: results match the Rust API on the same directory, and
//! bad input, closed handles and wrong threads are error codes. (Unit tests: the crate
//! has no rlib, whose name would collide with the core's `libsciqlop_cache.rlib`.)

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use crate::*;
use sqc_core::Cache;

const NUL: usize = SQC_NUL_TERMINATED;

fn last_error() -> String {
    // SAFETY: never null, NUL-terminated.
    unsafe { CStr::from_ptr(sqc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn open(kind: sqc_kind, dir: &std::path::Path) -> sqc_store {
    let path = dir.to_str().expect("utf-8 temp path");
    let mut s = sqc_store::default();
    // SAFETY: valid pointers for the call.
    let st = unsafe {
        sqc_open(
            kind as i32,
            path.as_ptr().cast(),
            path.len(),
            null(),
            &mut s,
        )
    };
    assert_eq!(st, sqc_status::Ok, "{}", last_error());
    s
}

fn set(s: sqc_store, key: &str, value: &[u8]) -> sqc_status {
    // SAFETY: valid pointers for the call.
    unsafe {
        sqc_set(
            s,
            key.as_ptr().cast(),
            key.len(),
            value.as_ptr(),
            value.len(),
            null(),
        )
    }
}

fn get(s: sqc_store, key: &str) -> Option<Vec<u8>> {
    let mut buf = sqc_buf {
        data: null_mut(),
        len: 0,
        cap: 0,
    };
    let mut found = false;
    // SAFETY: valid pointers for the call.
    let st = unsafe { sqc_get_alloc(s, key.as_ptr().cast(), key.len(), &mut buf, &mut found) };
    assert_eq!(st, sqc_status::Ok, "{}", last_error());
    let out = if buf.data.is_null() {
        Vec::new()
    } else {
        // SAFETY: the library's buffer of `len` bytes.
        unsafe { std::slice::from_raw_parts(buf.data, buf.len) }.to_vec()
    };
    // SAFETY: a buffer the library filled.
    unsafe { sqc_buf_free(&mut buf) };
    found.then_some(out)
}

#[test]
fn soname_carries_the_abi_version() {
    let build = include_str!("../build.rs");
    let soname = format!("libsciqlop_cache.so.{SQC_ABI_VERSION}");
    assert!(
        build.contains(&soname),
        "build.rs must set the soname {soname}"
    );
    assert_eq!(sqc_abi_version(), SQC_ABI_VERSION);
}

#[test]
fn what_c_writes_rust_reads() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s = open(sqc_kind::Cache, dir.path());
    assert_eq!(set(s, "k", b"from C"), sqc_status::Ok);
    let mut n = 0;
    // SAFETY: valid pointers.
    let st = unsafe { sqc_incr(s, c"ctr".as_ptr(), NUL, 41, 1, &mut n) };
    assert_eq!((st, n), (sqc_status::Ok, 42));
    let opts = sqc_set_options {
        expire_us: 3_600_000_000,
        tag: c"t".as_ptr(),
        tag_len: NUL,
    };
    // SAFETY: valid pointers.
    let st = unsafe { sqc_set(s, c"tagged".as_ptr(), NUL, b"v".as_ptr(), 1, &opts) };
    assert_eq!(st, sqc_status::Ok);

    let rust = Cache::open(dir.path())?;
    assert_eq!(rust.get("k")?.as_deref(), Some(&b"from C"[..]));
    assert_eq!(rust.get_counter("ctr")?, Some(42));
    let info = rust.entry_info("tagged")?.expect("live");
    assert_eq!(info.tag.as_deref(), Some("t"));
    assert!(info.expire.is_some());
    rust.set("r", b"from Rust")?;
    assert_eq!(get(s, "r").as_deref(), Some(&b"from Rust"[..]));
    assert_eq!(sqc_close(s), sqc_status::Ok);
    Ok(())
}

#[test]
fn get_into_caller_buffer_reports_the_size_needed() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s = open(sqc_kind::Index, dir.path());
    assert_eq!(set(s, "k", &[7u8; 300]), sqc_status::Ok);
    let mut small = [0u8; 10];
    let (mut len, mut found) = (0usize, false);
    // SAFETY: valid pointers.
    let st = unsafe {
        sqc_get(
            s,
            c"k".as_ptr(),
            NUL,
            small.as_mut_ptr(),
            10,
            &mut len,
            &mut found,
        )
    };
    assert_eq!((st, len, found), (sqc_status::BufferTooSmall, 300, true));
    assert_eq!(small, [0u8; 10], "nothing copied");
    let mut big = vec![0u8; len];
    // SAFETY: valid pointers.
    let st = unsafe {
        sqc_get(
            s,
            c"k".as_ptr(),
            NUL,
            big.as_mut_ptr(),
            big.len(),
            &mut len,
            &mut found,
        )
    };
    assert_eq!(st, sqc_status::Ok);
    assert_eq!(big, [7u8; 300]);
    sqc_close(s);
    Ok(())
}

#[test]
fn handles_outlive_nothing_they_need() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s = open(sqc_kind::FanoutCache, dir.path());
    let mut shards = 0;
    // SAFETY: valid pointer.
    assert_eq!(unsafe { sqc_shard_count(s, &mut shards) }, sqc_status::Ok);
    assert_eq!(shards, 8);
    for i in 0..300 {
        assert_eq!(set(s, &format!("k{i:03}"), b""), sqc_status::Ok);
    }
    let mut cur = sqc_cursor::default();
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { sqc_cursor_open(s, null(), 0, &mut cur) },
        sqc_status::Ok
    );
    // Closing the store invalidates its handle; the cursor keeps the store alive.
    assert_eq!(sqc_close(s), sqc_status::Ok);
    assert_eq!(set(s, "x", b""), sqc_status::InvalidHandle);
    let mut keys = Vec::new();
    let mut buf = [0u8; 2];
    loop {
        let (mut len, mut has) = (0usize, false);
        // SAFETY: valid pointers.
        let mut st =
            unsafe { sqc_cursor_next(cur, buf.as_mut_ptr(), buf.len(), &mut len, &mut has) };
        if st == sqc_status::BufferTooSmall {
            assert_eq!(len, 4, "k000 needs 4 bytes");
            let mut big = vec![0u8; len];
            // SAFETY: valid pointers.
            st = unsafe { sqc_cursor_next(cur, big.as_mut_ptr(), big.len(), &mut len, &mut has) };
            assert_eq!(st, sqc_status::Ok);
            keys.push(String::from_utf8(big)?);
            continue;
        }
        assert_eq!(st, sqc_status::Ok);
        if !has {
            break;
        }
    }
    assert_eq!(keys.len(), 300);
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "byte order over shards"
    );
    assert_eq!(sqc_cursor_close(cur), sqc_status::Ok);
    assert_eq!(sqc_cursor_close(cur), sqc_status::InvalidHandle);
    Ok(())
}

#[test]
fn a_transaction_belongs_to_its_thread() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let s = open(sqc_kind::Cache, dir.path());
    // Begun here, refused elsewhere, still open and committed here.
    let mut tx = sqc_tx::default();
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { sqc_tx_begin(s, null(), 0, &mut tx) },
        sqc_status::Ok
    );
    assert_eq!(set(s, "a", b"1"), sqc_status::Ok);
    let st = std::thread::spawn(move || (sqc_tx_commit(tx), last_error()))
        .join()
        .expect("thread");
    assert_eq!(st.0, sqc_status::WrongThread);
    assert!(st.1.contains("thread"), "{}", st.1);
    assert_eq!(sqc_tx_commit(tx), sqc_status::Ok);
    assert_eq!(get(s, "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(sqc_tx_commit(tx), sqc_status::InvalidHandle);

    // A thread that exits with a transaction open rolls it back.
    let left = std::thread::spawn(move || {
        let mut tx = sqc_tx::default();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { sqc_tx_begin(s, null(), 0, &mut tx) },
            sqc_status::Ok
        );
        assert_eq!(set(s, "b", b"1"), sqc_status::Ok);
        tx
    })
    .join()
    .expect("thread");
    assert_eq!(get(s, "b"), None);
    assert_eq!(sqc_tx_rollback(left), sqc_status::InvalidHandle);
    assert_eq!(
        set(s, "c", b"1"),
        sqc_status::Ok,
        "the writer is free again"
    );

    // A fanout transaction needs its key.
    let f = open(sqc_kind::FanoutIndex, &dir.path().join("f"));
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { sqc_tx_begin(f, null(), 0, &mut tx) },
        sqc_status::InvalidArgument
    );
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { sqc_tx_begin(f, c"k".as_ptr(), NUL, &mut tx) },
        sqc_status::Ok
    );
    assert_eq!(sqc_tx_rollback(tx), sqc_status::Ok);
    sqc_close(f);
    sqc_close(s);
    Ok(())
}

#[test]
fn bad_input_is_an_error_code() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("sciqlop-cache.db"), b"garbage, not SQLite")?;
    let path = dir.path().to_str().expect("utf-8");
    let mut s = sqc_store::default();
    // SAFETY: valid pointers.
    let st = unsafe {
        sqc_open(
            sqc_kind::Cache as i32,
            path.as_ptr().cast(),
            path.len(),
            null(),
            &mut s,
        )
    };
    assert_eq!(st, sqc_status::NotACache, "{}", last_error());
    assert!(last_error().contains(path), "{}", last_error());

    let s = open(sqc_kind::Cache, &dir.path().join("ok"));
    let bad = [b'k', 0xff];
    // SAFETY: valid pointers.
    let st = unsafe { sqc_set(s, bad.as_ptr().cast(), 2, null(), 0, null()) };
    assert_eq!(st, sqc_status::InvalidUtf8);
    // SAFETY: null key with a length is refused before any read.
    let st = unsafe { sqc_delete(s, null(), 5, null_mut()) };
    assert_eq!(st, sqc_status::NullPointer);
    assert_eq!(sqc_close(s), sqc_status::Ok);
    assert_eq!(sqc_close(s), sqc_status::InvalidHandle);
    assert_eq!(sqc_close(sqc_store { id: 0 }), sqc_status::InvalidHandle);
    Ok(())
}
