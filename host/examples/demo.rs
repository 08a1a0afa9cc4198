//! The main job, end to end: a native cache used directly from Rust, then sandboxed
//! WebAssembly plugins using their own scoped caches through the host.
//!
//! `cargo run --release -p sciqlop-cache-host --example demo -- GUEST_DIR [ROOT]`
//! (`scripts/demo.sh` builds the guests and passes their directory).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sciqlop_cache::{Cache, SetOptions};
use sciqlop_cache_host::{HostConfig, PluginHost, PluginPolicy};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let guests = PathBuf::from(args.next().context("usage: demo GUEST_DIR [ROOT]")?);
    let root = args.next().map_or_else(
        || std::env::temp_dir().join("sciqlop-cache-demo"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&root)?;
    println!("demo directory: {}\n", root.display());

    native(&root.join("native"))?;
    plugins(&guests, &root.join("host"))
}

/// A native cache: the library used directly.
fn native(dir: &std::path::Path) -> anyhow::Result<()> {
    println!("== native cache ({})", dir.display());
    let cache = Cache::builder().max_size(256 << 20).open(dir)?;
    let t = Instant::now();
    cache.transact(|tx| {
        for i in 0..10_000 {
            tx.set(
                &format!("sensor/{i:05}"),
                format!("{{\"t\": {i}, \"v\": 21.5}}"),
            )?;
        }
        Ok::<_, sciqlop_cache::Error>(())
    })?;
    println!("  10,000 sets in one transaction: {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..10_000 {
        cache.get(&format!("sensor/{i:05}"))?;
    }
    println!("  10,000 gets: {:?}", t.elapsed());
    cache.set_with(
        "session/abc",
        b"token",
        &SetOptions::new()
            .expire(Duration::from_secs(3600))
            .tag("session"),
    )?;
    cache.set("big/blob", vec![7u8; 1 << 20])?; // 1 MiB: stored in its own file
    let views = cache.incr("page_views", 1, 0)?;
    println!("  page_views counter: {views} (persists across runs)");
    println!(
        "  {} entries, {} bytes of values, {} bytes on disk",
        cache.len()?,
        cache.size()?,
        cache.volume()?
    );
    println!(
        "  evict_tag(\"session\") removed {}",
        cache.evict_tag("session")?
    );
    let report = cache.check(false)?;
    println!("  check: ok = {}, stats = {:?}\n", report.ok, cache.stats());
    Ok(())
}

/// Plugins: each runs sandboxed with its own scoped cache.
fn plugins(guests: &std::path::Path, root: &std::path::Path) -> anyhow::Result<()> {
    println!("== plugins (host root {})", root.display());
    let mut host = PluginHost::new(HostConfig::new(root))?;
    for name in ["memoize", "sessions", "ratelimit"] {
        let path = guests.join(format!("{name}.wasm"));
        if !path.exists() {
            bail!(
                "{} is missing: build the guests with scripts/build-guests.sh",
                path.display()
            );
        }
        let t = Instant::now();
        host.load_file(name, &path, PluginPolicy::default())?;
        println!("  loaded {name} in {:?}", t.elapsed());
    }
    let run = |plugin: &str, args: &[&str]| -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let t = Instant::now();
        let out = host.run(plugin, &args);
        let took = t.elapsed();
        match out {
            Ok(out) => println!("  {plugin} {} -> {out}   [{took:?}]", args.join(" ")),
            Err(e) => println!("  {plugin} {} -> error: {e}   [{took:?}]", args.join(" ")),
        }
        Ok(())
    };
    // The first call computes; the second is served from the plugin's cache (and so
    // would a call after a host restart, until the TTL runs out).
    run("memoize", &["primes", "5000000", "600"])?;
    run("memoize", &["primes", "5000000", "600"])?;
    run("sessions", &["login", "alice", "60"])?;
    run("sessions", &["count"])?;
    for _ in 0..4 {
        run("ratelimit", &["hit", "api", "3", "60"])?;
    }
    run("ratelimit", &["total", "api"])?;
    println!(
        "\n  each plugin's stores live apart: {}",
        root.join("plugins").display()
    );
    Ok(())
}
