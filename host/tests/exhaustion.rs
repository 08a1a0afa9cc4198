//! Host resource exhaustion (issue #18): a hostile plugin (`guest-examples/adversarial`)
//! opens transactions without end and buffers values in all of them, sends maximal
//! lists in batch calls, opens new store names without end, writes keys without end,
//! loops and grows its memory;
//! the host bounds each with a documented limit (host/README.md, "Limits against a
//! hostile plugin") and a typed error, a well-behaved plugin keeps working, and the
//! host's memory stays bounded: after the hostile modes ran once, running them again
//! and again does not grow the host's resident memory, and its high-water mark stays
//! within the sum of the limits.
//!
//! One test, run step by step: the memory figures are the whole process's.

use std::time::Duration;

use sciqlop_cache_host::{HostError, MAX_BATCH, PluginHost, PluginPolicy};

mod common;
use common::{host, policy, wasm};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn run(h: &PluginHost, plugin: &str, a: &[&str]) -> String {
    match h.run(plugin, &args(a)) {
        Ok(s) => s,
        Err(e) => panic!("{plugin} {a:?} failed: {e}"),
    }
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `key=value` field of a guest's answer.
fn field(out: &str, name: &str) -> u64 {
    out.split([' ', ':'])
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {out:?}"))
}

const MAX_BYTES: u64 = 4 << 20;
const MAX_MEMORY: usize = 16 << 20;
const MAX_STORES: u32 = 8;

/// Every hostile mode once; returns what each answered.
fn hostile_round(h: &PluginHost) -> Vec<String> {
    let mut out = Vec::new();
    // 60 transactions (the handle cap is 64), 64 KiB values in each until refused.
    out.push(run(h, "hostile", &["tx-hoard", "default", "60", "65536"]));
    // Lists longer than the cap, then as long as the cap with a 1 MiB value asked for
    // 10 000 times (10 GB if the host built the answer).
    let over = (MAX_BATCH + 1).to_string();
    out.push(run(h, "hostile", &["batch-max", "default", &over, "1"]));
    let at = MAX_BATCH.to_string();
    out.push(run(h, "hostile", &["batch-max", "default", &at, "1"]));
    out.push(run(h, "hostile", &["stores", "new", "100"]));
    out.push(run(h, "hostile", &["handles", "default"]));
    match h.run("hostile", &args(&["bomb"])) {
        Err(HostError::MemoryLimit { .. }) => out.push("bomb stopped".into()),
        other => panic!("bomb: {other:?}"),
    }
    match h.run("spinner", &args(&["spin"])) {
        Err(HostError::Timeout { .. }) => out.push("spin stopped".into()),
        other => panic!("spin: {other:?}"),
    }
    out
}

#[test]
fn a_hostile_plugin_is_bounded_and_the_host_memory_stays_bounded() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let hostile = policy(|p| {
        p.limits.max_bytes = MAX_BYTES;
        p.limits.max_memory = MAX_MEMORY;
        p.limits.max_stores = MAX_STORES;
    });
    h.load_file("hostile", &wasm("adversarial"), hostile)
        .expect("load");
    let spinner = policy(|p| p.limits.timeout = Duration::from_millis(200));
    h.load_file("spinner", &wasm("adversarial"), spinner)
        .expect("load");
    h.load_file("good", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    assert_eq!(run(&h, "good", &["set", "s", "k", "v"]), "ok:set");
    let (rss_loaded, _) = memory();

    let first = hostile_round(&h);
    println!("first round: {first:#?}");
    // The transactions of one invocation buffer at most max_bytes together (each
    // buffered write counts twice its bytes plus 64: the view and the operation), not
    // max_bytes each.
    let tx = &first[0];
    let buffered = field(tx, "buffered");
    assert!(
        (MAX_BYTES / 4..=MAX_BYTES).contains(&buffered),
        "transactions buffered {buffered} bytes in all (quota {MAX_BYTES}): {tx}"
    );
    assert!(tx.ends_with("refused=set:quota-exceeded"), "{tx}");
    // Batch calls: more than MAX_BATCH items refused; an answer larger than the
    // plugin's memory refused before it is built.
    assert_eq!(
        first[1],
        "set-many err:quota-exceeded, get-many err:quota-exceeded"
    );
    assert_eq!(first[2], "set-many ok:set, get-many err:quota-exceeded");
    // New store names: MAX_STORES of them, then refused.
    assert_eq!(
        first[3],
        format!("opened {MAX_STORES} then err:quota-exceeded")
    );
    assert_eq!(first[4], "opened 64 then err:quota-exceeded");
    // The stores it has stay usable, `default` (used above) is not counted; a new host process
    // (reading the names from disk) refuses a new name too.
    assert_eq!(run(&h, "hostile", &["stores", "new", "8"]), "ok:opened 8");
    assert_eq!(run(&h, "hostile", &["set", "default", "k", "v"]), "ok:set");
    drop(h);
    let mut h = host(root.path());
    let hostile = policy(|p| {
        p.limits.max_bytes = MAX_BYTES;
        p.limits.max_memory = MAX_MEMORY;
        p.limits.max_stores = MAX_STORES;
    });
    h.load_file("hostile", &wasm("adversarial"), hostile)
        .expect("load");
    let spinner = policy(|p| p.limits.timeout = Duration::from_millis(200));
    h.load_file("spinner", &wasm("adversarial"), spinner)
        .expect("load");
    h.load_file("good", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    assert_eq!(
        run(&h, "hostile", &["open", "another"]),
        "err:quota-exceeded"
    );
    assert_eq!(run(&h, "hostile", &["open", "new3"]), "ok:opened");

    // Entries: keys do not count in max_bytes, so many empty values are bounded by
    // max_entries (counted across stores); existing keys stay writable at the limit.
    let many = policy(|p| p.limits.max_entries = 100);
    h.load_file("many", &wasm("adversarial"), many)
        .expect("load");
    assert_eq!(
        run(&h, "many", &["fill", "s", "150", "0"]),
        "err:quota-exceeded at 100"
    );
    assert_eq!(
        run(&h, "many", &["fill", "t", "1", "0"]),
        "err:quota-exceeded at 0"
    );
    assert_eq!(
        run(&h, "many", &["set", "s", "fill:00000007", "again"]),
        "ok:set"
    );
    assert_eq!(run(&h, "many", &["len", "s"]), "ok:100");
    assert_eq!(
        run(&h, "many", &["batch-max", "default", "20", "1"]),
        "set-many err:quota-exceeded, get-many ok:20"
    );

    // Memory: once every mode ran (the allocator and wasmtime's pools warmed up), more
    // rounds do not grow the host; its peak stays within the limits' sum.
    let round = hostile_round(&h);
    assert_eq!(round, first, "the same answers in a new host");
    let (rss_warm, _) = memory();
    for _ in 0..5 {
        assert_eq!(hostile_round(&h), first);
        assert_eq!(run(&h, "good", &["get", "s", "k"]), "ok:v");
    }
    let (rss_after, hwm) = memory();
    println!(
        "host memory: {} MiB loaded, {} MiB after the first rounds, {} MiB after 5 more, peak {} MiB",
        rss_loaded / 1024,
        rss_warm / 1024,
        rss_after / 1024,
        hwm / 1024
    );
    let slack_kib = 32 * 1024;
    assert!(
        rss_after <= rss_warm + slack_kib,
        "the host grew from {rss_warm} KiB to {rss_after} KiB over 5 hostile rounds"
    );
    // What one invocation may make the host hold: its linear memory, the lists lifted
    // from it (about three times its size for a list of strings), the transaction
    // buffers, and a get-many answer (at most its memory).
    let bound_kib = ((5 * MAX_MEMORY as u64 + MAX_BYTES) >> 10) + slack_kib;
    assert!(
        hwm <= rss_loaded + bound_kib,
        "peak {hwm} KiB, more than {rss_loaded} KiB loaded + {bound_kib} KiB"
    );
}
