//! Cost of the plugin boundary, printed as plain figures:
//!
//! - a guest `get` through the host against a native `get` on the same cache and key
//!   (per call, µs);
//! - plugin instantiation from the pre-instantiated component (`InstancePre`), with and
//!   without the pooling allocator, and a whole no-op invocation;
//! - a whole invocation of a plugin transaction (the ratelimit example's hit).
//!
//! Run: `cargo bench -p sciqlop-cache-host --bench guest_overhead` (builds the guests
//! with scripts/build-guests.sh first).

use std::path::Path;
use std::time::{Duration, Instant};

use sciqlop_cache_host::{HostConfig, PluginHost, PluginPolicy};

#[path = "../tests/common/mod.rs"]
mod common;

/// A clock for per-call costs: this thread's CPU time (Linux; robust to other load on
/// the machine), else the wall clock.
#[derive(Clone, Copy)]
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

impl Clock {
    /// `CLOCK_THREAD_CPUTIME_ID`, exact to the call. Not /proc/thread-self/schedstat:
    /// its counter only moves at scheduler ticks (milliseconds), too coarse for these
    /// loops.
    #[cfg(target_os = "linux")]
    fn cpu_ns() -> Option<u64> {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let secs = u64::try_from(t.tv_sec).ok()?;
        let nanos = u64::try_from(t.tv_nsec).ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }

    #[cfg(not(target_os = "linux"))]
    fn cpu_ns() -> Option<u64> {
        None
    }

    fn now() -> Self {
        Clock {
            wall: Instant::now(),
            cpu_ns: Self::cpu_ns(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu_ns, Self::cpu_ns()) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
            _ => self.wall.elapsed(),
        }
    }
}

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn host(root: &Path, pooling: bool, wasm: &Path) -> PluginHost {
    let mut cfg = HostConfig::new(root);
    cfg.pooling = pooling;
    cfg.inherit_stdio = false;
    let mut h = PluginHost::new(cfg).expect("host");
    h.load_file("bench", wasm, PluginPolicy::default())
        .expect("load");
    h
}

fn main() {
    let wasm = common::wasm("adversarial");
    let root = tempfile::tempdir().expect("tempdir");
    let h = host(root.path(), true, &wasm);
    let value = "v".repeat(100);
    assert_eq!(
        h.run("bench", &s(&["set", "s", "k", &value])).expect("set"),
        "ok:set"
    );

    // Guest get: difference between a loop of N gets and a loop of 1, so that
    // instantiation and the call itself cancel out. Native get on the same cache and
    // key, interleaved with the guest runs so both see the same machine load.
    let n: u64 = 200_000;
    let scope = h.scope("bench").expect("scope").clone();
    // The plugin's store `s`, as the host serves it (its namespace, through the engine
    // contract).
    let cache = scope.store("s").expect("store");
    let guest_loop = |mode: &str| -> f64 {
        let t = Clock::now();
        h.run("bench", &s(&[mode, "s", "k", "1"]))
            .expect("loop of 1");
        let one = t.elapsed();
        let t = Clock::now();
        let out = h
            .run("bench", &s(&[mode, "s", "k", &n.to_string()]))
            .expect("loop");
        let many = t.elapsed();
        assert!(out.starts_with("ok:"), "{out}");
        per(many.saturating_sub(one), n - 1)
    };
    let mut native = Vec::new();
    let mut guest = Vec::new();
    let mut boundary = Vec::new();
    for _ in 0..7 {
        let t = Clock::now();
        for _ in 0..n {
            let v = cache.get("k").expect("get");
            assert!(std::hint::black_box(v).is_some());
        }
        native.push(per(t.elapsed(), n));
        guest.push(guest_loop("get-loop"));
        boundary.push(guest_loop("stats-loop"));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (native, guest, boundary) = (
        median(&mut native),
        median(&mut guest),
        median(&mut boundary),
    );
    println!("get of a 100-byte value, median of 7 runs of {n} calls (thread CPU time):");
    println!("  native get:                     {native:.3} µs/call");
    println!("  guest get via host:             {guest:.3} µs/call");
    println!(
        "  overhead of the guest path:     {:.3} µs/call",
        guest - native
    );
    println!("  a cheap host call (stats) from the guest: {boundary:.3} µs/call");

    let iters: u64 = 10_000;
    for pooling in [true, false] {
        let root = tempfile::tempdir().expect("tempdir");
        let h = host(root.path(), pooling, &wasm);
        for _ in 0..100 {
            h.instantiate_only("bench").expect("warm-up");
        }
        let t = Clock::now();
        for _ in 0..iters {
            h.instantiate_only("bench").expect("instantiate");
        }
        let inst = per(t.elapsed(), iters);
        let t = Clock::now();
        for _ in 0..iters {
            h.run("bench", &s(&["noop"])).expect("noop");
        }
        let invoke = per(t.elapsed(), iters);
        let label = if pooling { "pooling" } else { "on-demand" };
        println!(
            "instantiation ({label}, InstancePre, fresh store + WASI ctx): {inst:.1} µs; whole no-op invocation: {invoke:.1} µs"
        );
    }

    // A plugin transaction through the host: the ratelimit example's hit (two counters
    // read and written, one commit), whole invocations against no-op ones, on the wall
    // clock (a commit may wait for the disk).
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path(), true, &wasm);
    h.load_file(
        "ratelimit",
        &common::wasm("ratelimit"),
        PluginPolicy::default(),
    )
    .expect("load");
    let hit = s(&["hit", "bench", "1000000000", "4000000000"]);
    let noop = s(&["noop"]);
    let runs: u64 = 2000;
    let (mut tx, mut base) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..runs {
            h.run("ratelimit", &hit).expect("hit");
        }
        tx.push(per(t.elapsed(), runs));
        let t = Instant::now();
        for _ in 0..runs {
            h.run("bench", &noop).expect("noop");
        }
        base.push(per(t.elapsed(), runs));
    }
    println!(
        "plugin transaction (ratelimit hit: 2 counters, one commit), median of 5 x {runs} invocations (wall clock): {:.1} µs; a no-op invocation: {:.1} µs",
        median(&mut tx),
        median(&mut base)
    );
}
