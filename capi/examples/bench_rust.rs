//! The Rust side of the C++ wrapper's overhead benchmark (scripts/bench-cpp.sh): the
//! same workload as capi/bench/bench.cpp, through the Rust API. Prints
//! `rust get WALL CPU` and `rust set WALL CPU`: mean nanoseconds per operation, of wall
//! time and of the thread's CPU time (which a busy shared machine disturbs less).
//!
//! Usage: bench_rust DIR GETS SETS

// One libc call (thread CPU time) below.
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
    let [_, dir, gets, sets] = args.as_slice() else {
        return Err("usage: bench_rust DIR GETS SETS".into());
    };
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
    for i in 0..gets {
        bytes += cache.get(&keys[i % keys.len()])?.map_or(0, |v| v.len());
    }
    let get_cpu = (thread_cpu_ns() - c) / gets as f64;
    let get_ns = t.elapsed().as_nanos() as f64 / gets as f64;
    assert_eq!(bytes, gets * 100);
    let (t, c) = (Instant::now(), thread_cpu_ns());
    for i in 0..sets {
        cache.set(&keys[i % keys.len()], value)?;
    }
    let set_cpu = (thread_cpu_ns() - c) / sets as f64;
    let set_ns = t.elapsed().as_nanos() as f64 / sets as f64;
    println!("rust get {get_ns:.1} {get_cpu:.1}");
    println!("rust set {set_ns:.1} {set_cpu:.1}");
    Ok(())
}
