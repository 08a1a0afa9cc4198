//! The Rust side of the C++ wrapper's overhead benchmark (scripts/bench-cpp.sh): the
//! same workload as capi/bench/bench.cpp, through the Rust API. Prints
//! `rust get NS` and `rust set NS` (mean nanoseconds per operation).
//!
//! Usage: bench_rust DIR GETS SETS

use std::time::Instant;

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
    let mut bytes = 0usize;
    let t = Instant::now();
    for i in 0..gets {
        bytes += cache.get(&keys[i % keys.len()])?.map_or(0, |v| v.len());
    }
    let get_ns = t.elapsed().as_nanos() as f64 / gets as f64;
    assert_eq!(bytes, gets * 100);
    let t = Instant::now();
    for i in 0..sets {
        cache.set(&keys[i % keys.len()], value)?;
    }
    let set_ns = t.elapsed().as_nanos() as f64 / sets as f64;
    println!("rust get {get_ns:.1}");
    println!("rust set {set_ns:.1}");
    Ok(())
}
