//! WAL-bound worker: loops `set` on a small set of keys for a while.
//!
//! Usage: `wal_writer DIR SECONDS VALUE_SIZE MAX_SIZE KEYS`
//!
//! Opens a `Cache` in `DIR` (bounded by `MAX_SIZE` bytes of values, 0: unbounded), then
//! sets `k<i % KEYS>` to `VALUE_SIZE` bytes for `SECONDS` seconds. Prints `SETS n` at the
//! end. Any error ends the process with status 1.

use std::time::{Duration, Instant};

use sciqlop_cache::Cache;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: wal_writer DIR SECONDS VALUE_SIZE MAX_SIZE KEYS";
    let [_, dir, secs, size, max, keys] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |s: &str| -> u64 {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{usage}: {s:?} is not a number");
            std::process::exit(2)
        })
    };
    let (secs, size, max, keys) = (num(secs), num(size), num(max), num(keys).max(1));
    let cache = match Cache::builder().max_size(max).open(dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    let value = vec![0xA5u8; size as usize];
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        if let Err(e) = cache.set(&format!("k{}", n % keys), &value) {
            eprintln!("set: {e}");
            std::process::exit(1);
        }
        n += 1;
    }
    println!("SETS {n}");
}
