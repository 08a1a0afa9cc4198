//! Per-operation latency of the core store: `cargo bench -p sciqlop-cache --bench ops`.
//!
//! For each store size (1e3, 1e5, 1e6 entries of 100 B; `--quick` stops at 1e5) it prints
//! mean / p50 / p99 µs per operation for: set (single, autocommit), get hit, get miss,
//! batched set (1000 per transaction), and 1 MB set/get. A raw rusqlite upsert/select
//! with the same pragmas is printed alongside as the floor.

use std::hint::black_box;
use std::time::Instant;

use sciqlop_cache::{Cache, Index};

struct Summary {
    mean: f64,
    p50: f64,
    p99: f64,
}

fn summarize(mut ns: Vec<u64>) -> Summary {
    ns.sort_unstable();
    let n = ns.len().max(1);
    let mean = ns.iter().sum::<u64>() as f64 / n as f64 / 1000.0;
    let pct = |p: f64| ns[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    Summary {
        mean,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

fn time_each(n: usize, mut f: impl FnMut(usize)) -> Summary {
    let mut ns = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i);
        ns.push(t.elapsed().as_nanos() as u64);
    }
    summarize(ns)
}

fn row(engine: &str, op: &str, entries: usize, s: &Summary) {
    println!(
        "{engine:<10} {op:<16} {entries:>9} {:>9.2} {:>9.2} {:>9.2}",
        s.mean, s.p50, s.p99
    );
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn bench_cache(entries: usize, value: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path()).expect("open");
    for chunk in (0..entries).collect::<Vec<_>>().chunks(10_000) {
        cache
            .transact(|tx| {
                for &i in chunk {
                    tx.set(&format!("key/{i:08}"), value)?;
                }
                Ok::<_, sciqlop_cache::Error>(())
            })
            .expect("fill");
    }
    let ops = 20_000;
    let mut r = rng(entries as u64);
    let s = time_each(ops, |i| {
        cache.set(&format!("new/{i:08}"), value).expect("set");
    });
    row("cache", "set", entries, &s);
    let s = time_each(ops * 5, |_| {
        let k = format!("key/{:08}", r() as usize % entries);
        black_box(cache.get(&k).expect("get"));
    });
    row("cache", "get-hit", entries, &s);
    let s = time_each(ops * 5, |i| {
        black_box(cache.get(&format!("miss/{i:08}")).expect("get"));
    });
    row("cache", "get-miss", entries, &s);
    let batch = 1000;
    let mut per_op = Vec::new();
    for b in 0..20 {
        let t = Instant::now();
        cache
            .transact(|tx| {
                for i in 0..batch {
                    tx.set(&format!("batch/{b}/{i:06}"), value)?;
                }
                Ok::<_, sciqlop_cache::Error>(())
            })
            .expect("batch");
        per_op.push(t.elapsed().as_nanos() as u64 / batch as u64);
    }
    row("cache", "batch-set", entries, &summarize(per_op));
}

fn bench_index(entries: usize, value: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Index::open(dir.path()).expect("open");
    index
        .transact(|tx| {
            for i in 0..entries {
                tx.set(&format!("key/{i:08}"), value)?;
            }
            Ok::<_, sciqlop_cache::Error>(())
        })
        .expect("fill");
    let mut r = rng(7);
    let s = time_each(20_000, |i| {
        index.set(&format!("new/{i:08}"), value).expect("set")
    });
    row("index", "set", entries, &s);
    let s = time_each(100_000, |_| {
        let k = format!("key/{:08}", r() as usize % entries);
        black_box(index.get(&k).expect("get"));
    });
    row("index", "get-hit", entries, &s);
}

fn bench_raw(entries: usize, value: &[u8]) {
    use rusqlite::params;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;
         CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
    )
    .expect("schema");
    let upsert = "INSERT INTO kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    conn.execute_batch("BEGIN").expect("begin");
    for i in 0..entries {
        conn.prepare_cached(upsert)
            .and_then(|mut s| s.execute(params![format!("key/{i:08}"), value]))
            .expect("fill");
    }
    conn.execute_batch("COMMIT").expect("commit");
    let s = time_each(20_000, |i| {
        conn.prepare_cached(upsert)
            .and_then(|mut s| s.execute(params![format!("new/{i:08}"), value]))
            .expect("set");
    });
    row("raw-sqlite", "set", entries, &s);
    let mut r = rng(9);
    let s = time_each(100_000, |_| {
        let k = format!("key/{:08}", r() as usize % entries);
        let v: Option<Vec<u8>> = conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")
            .and_then(|mut s| {
                use rusqlite::OptionalExtension;
                s.query_row([k], |r| r.get(0)).optional()
            })
            .expect("get");
        black_box(v);
    });
    row("raw-sqlite", "get-hit", entries, &s);
    let mut per_op = Vec::new();
    for b in 0..20 {
        let t = Instant::now();
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..1000 {
            conn.prepare_cached(upsert)
                .and_then(|mut s| s.execute(params![format!("batch/{b}/{i:06}"), value]))
                .expect("set");
        }
        conn.execute_batch("COMMIT").expect("commit");
        per_op.push(t.elapsed().as_nanos() as u64 / 1000);
    }
    row("raw-sqlite", "batch-set", entries, &summarize(per_op));
}

fn bench_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path()).expect("open");
    let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let n = 200;
    let s = time_each(n, |i| {
        cache.set(&format!("big/{}", i % 50), &value).expect("set")
    });
    row("cache", "set-1MB", 50, &s);
    let s = time_each(n * 5, |i| {
        black_box(cache.get(&format!("big/{}", i % 50)).expect("get"));
    });
    row("cache", "get-1MB", 50, &s);
    // The same reads without checking the value files' checksums: their cost.
    let unverified = Cache::builder()
        .verify_values(false)
        .open(dir.path())
        .expect("open");
    let s = time_each(n * 5, |i| {
        black_box(unverified.get(&format!("big/{}", i % 50)).expect("get"));
    });
    row("cache", "get-1MB-nover", 50, &s);
    let small: Vec<u8> = value[..16 << 10].to_vec();
    for i in 0..50 {
        cache.set(&format!("mid/{i}"), &small).expect("set");
    }
    let s = time_each(n * 25, |i| {
        black_box(cache.get(&format!("mid/{}", i % 50)).expect("get"));
    });
    row("cache", "get-16KiB", 50, &s);
    let s = time_each(n * 25, |i| {
        black_box(unverified.get(&format!("mid/{}", i % 50)).expect("get"));
    });
    row("cache", "get-16KiB-nover", 50, &s);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[1_000, 100_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let value = [0x5au8; 100];
    println!(
        "{:<10} {:<16} {:>9} {:>9} {:>9} {:>9}",
        "engine", "op", "entries", "mean µs", "p50 µs", "p99 µs"
    );
    for &n in sizes {
        bench_cache(n, &value);
        bench_index(n, &value);
        bench_raw(n, &value);
    }
    bench_large();
}
