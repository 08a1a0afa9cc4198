//! The Rust side of the C++ wrapper's overhead benchmark (scripts/bench-cpp.sh): the
//! same workload as capi/bench/bench.cpp, through the Rust API. Prints
//! `rust get WALL CPU` and `rust set WALL CPU`: mean nanoseconds per operation, of wall
//! time and of the thread's CPU time (which a busy shared machine disturbs less); and
//! `rust cabi_get WALL CPU`: the same gets through the C ABI (`sqc_get`), from here.
//!
//! Usage: bench_rust DIR GETS SETS [get|cabi|all]   (the last: which get loops run)

// One libc call (thread CPU time) and the C ABI's functions below.
#![allow(unsafe_code)]

use std::time::Instant;

/// `struct timespec` of Linux x86-64 / aarch64 (and other LP64 targets).
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

// libc's clock_gettime, declared here: rustix's vDSO lookup crashes under valgrind,
// which scripts/bench-cpp.sh runs this under (callgrind).
unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> f64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

use sqc_core::Cache;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, gets, sets, ops) = match args.as_slice() {
        [_, d, g, s] => (d, g, s, "all"),
        [_, d, g, s, o] => (d, g, s, o.as_str()),
        _ => return Err("usage: bench_rust DIR GETS SETS [get|cabi|all]".into()),
    };
    let (run_get, run_cabi) = (ops == "all" || ops == "get", ops == "all" || ops == "cabi");
    let (gets, sets): (usize, usize) = (gets.parse()?, sets.parse()?);
    let cache = Cache::open(dir)?;
    let keys: Vec<String> = (0..1000).map(|i| format!("key/{i:06}")).collect();
    let value = [b'v'; 100];
    for k in &keys {
        cache.set(k, value)?;
    }
    // As in bench.cpp: let the upkeep thread copy the WAL back after the writes, then
    // warm up, so that the timed loop is not the first reads after writes.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for k in &keys {
        cache.get(k)?;
    }
    let mut bytes = 0usize;
    let (t, c) = (Instant::now(), thread_cpu_ns());
    for i in 0..gets * usize::from(run_get) {
        bytes += cache.get(&keys[i % keys.len()])?.map_or(0, |v| v.len());
    }
    let get_cpu = (thread_cpu_ns() - c) / gets as f64;
    let get_ns = t.elapsed().as_nanos() as f64 / gets as f64;
    // The same gets through this crate's C ABI (sqc_get into a caller buffer), from the
    // same binary: the C layer's own cost, without the code-layout differences of
    // another program.
    let mut h = sciqlop_cache::sqc_store::default();
    // SAFETY: `dir` is valid for its length; `h` is writable.
    let st = unsafe {
        sciqlop_cache::sqc_open(0, dir.as_ptr().cast(), dir.len(), std::ptr::null(), &mut h)
    };
    assert_eq!(st, sciqlop_cache::sqc_status::Ok);
    let mut buf = [0u8; 256];
    let (t, c) = (Instant::now(), thread_cpu_ns());
    for i in 0..gets * usize::from(run_cabi) {
        let k = &keys[i % keys.len()];
        let (mut len, mut found) = (0usize, false);
        // SAFETY: valid pointers for the call.
        let st = unsafe {
            sciqlop_cache::sqc_get(
                h,
                k.as_ptr().cast(),
                k.len(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
                &mut found,
            )
        };
        assert!(st == sciqlop_cache::sqc_status::Ok && found);
        bytes += len;
    }
    let cabi_cpu = (thread_cpu_ns() - c) / gets as f64;
    let cabi_ns = t.elapsed().as_nanos() as f64 / gets as f64;
    assert_eq!(
        bytes,
        (usize::from(run_get) + usize::from(run_cabi)) * gets * 100
    );
    sciqlop_cache::sqc_close(h);

    let (t, c) = (Instant::now(), thread_cpu_ns());
    for i in 0..sets {
        cache.set(&keys[i % keys.len()], value)?;
    }
    let set_cpu = (thread_cpu_ns() - c) / sets as f64;
    let set_ns = t.elapsed().as_nanos() as f64 / sets as f64;
    println!("rust get {get_ns:.1} {get_cpu:.1}");
    println!("rust cabi_get {cabi_ns:.1} {cabi_cpu:.1}");
    println!("rust set {set_ns:.1} {set_cpu:.1}");
    Ok(())
}
