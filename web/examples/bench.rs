//! Native side of the node-vs-native comparison: the workload of
//! `sciqlop_cache_web::bench` on a cache in a temporary directory.
//!
//! `cargo run --release -p sciqlop-cache-web --example bench -- [n] [parent dir]`
//! (the parent directory defaults to the system's temporary directory; `/dev/shm` puts
//! the database in memory, as the memory VFS does in node).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let parent = std::env::args()
        .nth(2)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = parent.join(format!("sciqlop-cache-web-bench-{}", std::process::id()));
    let cache = sciqlop_cache::Cache::open(&dir)?;
    let start = Instant::now();
    let r = sciqlop_cache_web::bench::run(&cache, n, 100, || start.elapsed().as_secs_f64() * 1e3)?;
    drop(cache);
    std::fs::remove_dir_all(&dir)?;
    println!(
        "native ({}): n={} value=100B set {:.2} us/op, get {:.2} us/op",
        parent.display(),
        r.n,
        r.set_us,
        r.get_us
    );
    Ok(())
}
