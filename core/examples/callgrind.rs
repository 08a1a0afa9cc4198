//! Fixed workloads for instruction-count profiling, immune to machine load:
//!
//! ```sh
//! cargo build --release -p sciqlop-cache --example callgrind
//! valgrind --tool=callgrind target/release/examples/callgrind single   # 5k autocommit sets
//! valgrind --tool=callgrind target/release/examples/callgrind batch    # 20k sets, one transaction
//! valgrind --tool=callgrind target/release/examples/callgrind many     # 20k sets, set_many by 1000
//! valgrind --tool=callgrind target/release/examples/callgrind get      # batch + 100k gets
//! ```

use sciqlop_cache::{Cache, Error};

fn main() -> Result<(), Error> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "single".into());
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let value = [0x5au8; 100];
    let keys: Vec<String> = (0..20_000).map(|i| format!("key/{i:08}")).collect();
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
        "batch" | "get" => {
            cache.transact(|tx| keys.iter().try_for_each(|k| tx.set(k, value)))?;
            if mode == "get" {
                for _ in 0..5 {
                    for k in &keys {
                        std::hint::black_box(cache.get(k)?);
                    }
                }
            }
        }
        other => eprintln!("unknown workload {other:?}: single, batch, many or get"),
    }
    Ok(())
}
