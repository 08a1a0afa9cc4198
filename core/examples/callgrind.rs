//! Fixed workloads for instruction-count profiling, immune to machine load:
//!
//! ```sh
//! cargo build --release -p sciqlop-cache --example callgrind
//! valgrind --tool=callgrind target/release/examples/callgrind single   # 5k autocommit sets
//! valgrind --tool=callgrind target/release/examples/callgrind batch    # 20k sets, one transaction
//! valgrind --tool=callgrind target/release/examples/callgrind many     # 20k sets, set_many by 1000
//! valgrind --tool=callgrind target/release/examples/callgrind get      # batch + 100k gets
//! valgrind --tool=callgrind target/release/examples/callgrind get-settled # the same, once
//!                                 # the background thread has checkpointed and pinned reads
//! ```

use sciqlop_cache::{Cache, Error};

fn main() -> Result<(), Error> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "single".into());
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let value = [0x5au8; 100];
    // Entries of the batch and get workloads (`CALLGRIND_KEYS`, default 20 000): B-tree
    // depth grows in steps with the count, so compare more than one.
    let n: usize = std::env::var("CALLGRIND_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let keys: Vec<String> = (0..n.max(5000)).map(|i| format!("key/{i:08}")).collect();
    match mode.as_str() {
        "single" => {
            for k in &keys[..5000] {
                cache.set(k, value)?;
            }
        }
        "many" => {
            for chunk in keys.chunks(1000) {
                cache.set_many(chunk.iter().map(|k| (k, value)))?;
            }
        }
        "batch" | "get" | "get-settled" => {
            cache.transact(|tx| keys.iter().try_for_each(|k| tx.set(k, value)))?;
            if mode == "get-settled" {
                // Reads right after a bulk write look pages up in the WAL until the
                // background thread copies it back (50 ms after writes pause) and pins
                // reads: let it.
                for k in keys.iter().take(100) {
                    std::hint::black_box(cache.get(k)?);
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            if mode != "batch" {
                for _ in 0..5 {
                    for k in &keys {
                        std::hint::black_box(cache.get(k)?);
                    }
                }
            }
        }
        other => eprintln!("unknown workload {other:?}: single, batch, many, get or get-settled"),
    }
    Ok(())
}
