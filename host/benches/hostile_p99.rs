//! Latency of a well-behaved plugin while a hostile one runs (issue #18), printed as
//! figures, never asserted: N invocations of a small plugin call (`get-loop` of 10
//! cached reads, one fresh instance per invocation) alone, then the same while other
//! threads run a hostile plugin without pause, cycling through its modes (an infinite
//! loop stopped by the time bound, a memory bomb stopped by the memory bound,
//! transactions buffering values up to the byte quota, maximal batch lists, new store
//! names without end; see host/tests/exhaustion.rs), for at least two cycles of them.
//! p50, p99 and max of the well-behaved invocations, and the host's resident memory at
//! the end.
//!
//! Run: `cargo bench -p sciqlop-cache-host --bench hostile_p99` (builds the guests with
//! scripts/build-guests.sh first). `HOSTILE_RUNS` (default 2000) well-behaved
//! invocations per phase, `HOSTILE_THREADS` (default 1) hostile threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sciqlop_cache_host::{HostConfig, PluginHost};

#[path = "../tests/common/mod.rs"]
mod common;

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Latencies of `n` well-behaved invocations, and more until `done()`.
fn measure(h: &PluginHost, n: usize, done: &dyn Fn() -> bool) -> Vec<Duration> {
    let call = s(&["get-loop", "s", "k", "10"]);
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n || !done() {
        let t0 = Instant::now();
        let out = h.run("good", &call).expect("the well-behaved plugin runs");
        lat.push(t0.elapsed());
        assert_eq!(out, "ok:10");
    }
    lat.sort();
    lat
}

fn report(label: &str, lat: &[Duration]) {
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{label:<32} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} runs)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        lat.len()
    );
}

fn main() {
    let runs = env_num("HOSTILE_RUNS", 2000).max(10);
    let threads = env_num("HOSTILE_THREADS", 1).max(1);
    let root = tempfile::tempdir().expect("tempdir");
    let mut cfg = HostConfig::new(root.path());
    cfg.inherit_stdio = false;
    let mut h = PluginHost::new(cfg).expect("host");
    let adversarial = common::wasm("adversarial");
    h.load_file("good", &adversarial, common::policy(|_| {}))
        .expect("load");
    h.load_file(
        "hostile",
        &adversarial,
        common::policy(|p| {
            p.limits.max_bytes = 16 << 20;
            p.limits.max_memory = 64 << 20;
            p.limits.timeout = Duration::from_millis(500);
        }),
    )
    .expect("load");
    h.run("good", &s(&["set", "s", "k", "v"])).expect("set");
    measure(&h, runs / 10, &|| true);
    println!(
        "well-behaved plugin: `get-loop s k 10` (a fresh instance and 10 cached gets per invocation); machine load {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    report("alone", &measure(&h, runs, &|| true));

    let modes: [&[&str]; 6] = [
        &["spin"],
        &["bomb"],
        &["tx-hoard", "default", "60", "65536"],
        &["batch-max", "default", "10001", "1"],
        &["batch-max", "default", "10000", "1"],
        &["stores", "new", "1000"],
    ];
    let stop = AtomicBool::new(false);
    let hostile_runs = AtomicU64::new(0);
    let lat = std::thread::scope(|sc| {
        for t in 0..threads {
            let (h, stop, hostile_runs, modes) = (&h, &stop, &hostile_runs, &modes);
            sc.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    // Errors (time and memory bounds, quotas) are the point.
                    let _ = h.run("hostile", &s(modes[i % modes.len()]));
                    hostile_runs.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        // At least two whole cycles of the hostile modes.
        let cycles = 2 * (threads * modes.len()) as u64;
        let lat = measure(&h, runs, &|| hostile_runs.load(Ordering::Relaxed) >= cycles);
        stop.store(true, Ordering::Relaxed);
        lat
    });
    report(&format!("with {threads} hostile thread(s)"), &lat);
    println!(
        "hostile invocations meanwhile: {} (cycling spin, bomb, tx-hoard, batch-max x2, stores); host RSS at the end {} MiB",
        hostile_runs.load(Ordering::Relaxed),
        rss_mib()
    );
}
