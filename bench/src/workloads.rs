//! The workloads, identical for every implementation (bench/diskcache_bench.py mirrors
//! them for diskcache).

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

use crate::kv::{self, Kv};
use crate::stats::{CsvOut, Row, time_each};

/// Bytes of the values of every workload but `valuesize`.
pub const VALUE_LEN: usize = 100;
/// Keys filled per transaction when growing a store.
const FILL_CHUNK: u64 = 10_000;
/// Implementations of the concurrency workload.
pub const CONCURRENCY_IMPLS: &[&str] = &["sciqlop-cache", "sciqlop-fanout"];

/// Sizes and operation counts of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Store sizes of `scaling`, ascending.
    pub scaling_sizes: Vec<u64>,
    /// Timed set and delete operations per scaling point.
    pub scaling_ops: usize,
    /// Timed get-hit and get-miss operations per scaling point.
    pub get_ops: usize,
    /// (value size, timed operations) of `valuesize`.
    pub value_sizes: Vec<(u64, usize)>,
    /// (batch size, rounds) of `batch`.
    pub batch_sizes: Vec<(u64, usize)>,
    /// Worker counts of `concurrency`.
    pub workers: Vec<usize>,
    /// Timed set and get operations per worker.
    pub conc_ops: usize,
    /// cacache is skipped above this many entries (two files per entry).
    pub cacache_max_entries: u64,
    /// `plugin`: gets (and cheap host calls) per timed loop.
    pub plugin_get_calls: u64,
    /// `plugin`: sets per timed loop.
    pub plugin_set_calls: u64,
    /// `plugin`: repetitions of the interleaved guest and native loops.
    pub plugin_reps: usize,
    /// `plugin`: timed instantiations and no-op invocations per allocator.
    pub plugin_inst_iters: usize,
    /// `plugin`: untimed instantiations and invocations first.
    pub plugin_warmup: usize,
}

impl Plan {
    pub fn new(quick: bool, huge: bool) -> Plan {
        let mib = 1u64 << 20;
        if quick {
            let value_sizes = [64, 4096, 64 * 1024, mib];
            return Plan {
                scaling_sizes: vec![100, 1000],
                scaling_ops: 100,
                get_ops: 200,
                value_sizes: value_sizes
                    .iter()
                    .map(|&s| (s, (4 * mib / s).clamp(5, 50) as usize))
                    .collect(),
                batch_sizes: [1u64, 10, 100]
                    .iter()
                    .map(|&b| (b, (300 / b).clamp(3, 20) as usize))
                    .collect(),
                workers: vec![1, 2],
                conc_ops: 100,
                cacache_max_entries: 1000,
                plugin_get_calls: 5_000,
                plugin_set_calls: 500,
                plugin_reps: 3,
                plugin_inst_iters: 300,
                plugin_warmup: 20,
            };
        }
        let mut scaling_sizes = vec![100, 1_000, 10_000, 100_000, 1_000_000];
        if huge {
            scaling_sizes.push(10_000_000);
        }
        let value_sizes = [
            64,
            256,
            1024,
            4096,
            16 * 1024,
            64 * 1024,
            256 * 1024,
            mib,
            10 * mib,
        ];
        Plan {
            scaling_sizes,
            scaling_ops: 5_000,
            get_ops: 20_000,
            value_sizes: value_sizes
                .iter()
                .map(|&s| (s, (256 * mib / s).clamp(20, 5_000) as usize))
                .collect(),
            batch_sizes: [1u64, 10, 100, 1_000, 10_000]
                .iter()
                .map(|&b| (b, (50_000 / b).clamp(10, 1_000) as usize))
                .collect(),
            workers: vec![1, 2, 4],
            conc_ops: 5_000,
            cacache_max_entries: 100_000,
            plugin_get_calls: 100_000,
            plugin_set_calls: 5_000,
            plugin_reps: 9,
            plugin_inst_iters: 5_000,
            plugin_warmup: 100,
        }
    }

    /// Arguments giving this plan to bench/diskcache_bench.py.
    pub fn python_args(&self) -> Vec<String> {
        let join = |v: Vec<String>| v.join(",");
        vec![
            "--scaling-sizes".into(),
            join(self.scaling_sizes.iter().map(u64::to_string).collect()),
            "--scaling-ops".into(),
            self.scaling_ops.to_string(),
            "--get-ops".into(),
            self.get_ops.to_string(),
            "--value-sizes".into(),
            join(
                self.value_sizes
                    .iter()
                    .map(|(s, n)| format!("{s}:{n}"))
                    .collect(),
            ),
            "--batch-sizes".into(),
            join(
                self.batch_sizes
                    .iter()
                    .map(|(b, r)| format!("{b}:{r}"))
                    .collect(),
            ),
            "--workers".into(),
            join(self.workers.iter().map(usize::to_string).collect()),
            "--conc-ops".into(),
            self.conc_ops.to_string(),
        ]
    }
}

/// The 100-byte value of op `i`: a fixed pattern ending with `i`, so that no two values
/// are equal (content-addressed stores get no free deduplication).
pub fn value_of(i: u64) -> Vec<u8> {
    let mut v = vec![0x5a; VALUE_LEN];
    v[VALUE_LEN - 8..].copy_from_slice(&i.to_le_bytes());
    v
}

/// xorshift64: deterministic key choice without a dependency.
pub fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Removes a store once its workload is done, then flushes the file system and pauses:
/// the write-back and discards of a store of a million entries otherwise land on the
/// next implementation measured (a run once showed 1 MiB sets three times slower for
/// whichever store came right after the scaling workload).
pub fn remove_store(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(500));
}

fn fill(kv: &dyn Kv, from: u64, to: u64) -> Result<()> {
    let mut start = from;
    while start < to {
        let end = (start + FILL_CHUNK).min(to);
        if kv.batch_unsupported().is_some() {
            for i in start..end {
                kv.set(&format!("key/{i:08}"), &value_of(i))?;
            }
        } else {
            let keys: Vec<String> = (start..end).map(|i| format!("key/{i:08}")).collect();
            kv.batch_set(&keys, &mut |j| value_of(start + j as u64))?;
        }
        start = end;
    }
    Ok(())
}

/// `scaling`: one store grown through every size; at each, per-op latency of set (new
/// keys), get-hit (random existing keys), get-miss, delete (the keys just set).
pub fn scaling(imp: &str, plan: &Plan, work: &Path, out: &mut CsvOut) -> Result<()> {
    let dir = work.join(format!("scaling-{imp}"));
    let kv = kv::open(imp, &dir)?;
    let mut filled = 0;
    let ops = plan.scaling_ops;
    for &n in &plan.scaling_sizes {
        if imp == "cacache" && n > plan.cacache_max_entries {
            for op in ["set", "get-hit", "get-miss", "delete"] {
                out.push(&Row::na(
                    imp,
                    "scaling",
                    n,
                    op,
                    &format!(
                        "skipped above {} entries: two files per entry",
                        plan.cacache_max_entries
                    ),
                ))?;
            }
            continue;
        }
        let t = Instant::now();
        fill(kv.as_ref(), filled, n)?;
        filled = n;
        eprintln!("{imp}: filled to {n} entries in {:.1?}", t.elapsed());

        let set_keys: Vec<String> = (0..ops).map(|i| format!("new/{i:08}")).collect();
        let values: Vec<Vec<u8>> = (0..ops as u64).map(|i| value_of(1 << 40 | i)).collect();
        let mut ns = time_each(ops, |i| kv.set(&set_keys[i], &values[i]))?;
        out.push(&Row::measured(imp, "scaling", n, "set", &mut ns, 0))?;

        let mut r = rng(n);
        let hit_keys: Vec<String> = (0..plan.get_ops)
            .map(|_| format!("key/{:08}", r() % n))
            .collect();
        let mut ns = time_each(plan.get_ops, |i| {
            let v = kv.get(&hit_keys[i])?;
            ensure!(
                v.is_some_and(|v| v.len() == VALUE_LEN),
                "{imp}: expected a hit for {}",
                hit_keys[i]
            );
            Ok(())
        })?;
        out.push(&Row::measured(imp, "scaling", n, "get-hit", &mut ns, 0))?;

        let miss_keys: Vec<String> = (0..plan.get_ops).map(|i| format!("miss/{i:08}")).collect();
        let mut ns = time_each(plan.get_ops, |i| {
            ensure!(kv.get(&miss_keys[i])?.is_none(), "{imp}: unexpected hit");
            Ok(())
        })?;
        out.push(&Row::measured(imp, "scaling", n, "get-miss", &mut ns, 0))?;

        let mut ns = time_each(ops, |i| {
            ensure!(kv.delete(&set_keys[i])?, "{imp}: delete found nothing");
            Ok(())
        })?;
        out.push(&Row::measured(imp, "scaling", n, "delete", &mut ns, 0))?;
    }
    drop(kv);
    remove_store(&dir);
    Ok(())
}

/// `valuesize`: overwrite and read back values of each size (8 keys in rotation).
pub fn valuesize(imp: &str, plan: &Plan, work: &Path, out: &mut CsvOut) -> Result<()> {
    const KEYS: usize = 8;
    let dir = work.join(format!("valuesize-{imp}"));
    let kv = kv::open(imp, &dir)?;
    for &(size, ops) in &plan.value_sizes {
        let mut value: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let keys: Vec<String> = (0..KEYS).map(|i| format!("v/{size}/{i}")).collect();
        for k in &keys {
            kv.set(k, &value)?;
        }
        let stamp = 8.min(value.len());
        let mut ns = time_each(ops, |i| {
            // A distinct value each time (content-addressed stores must write it).
            value[..stamp].copy_from_slice(&(i as u64).to_le_bytes()[..stamp]);
            kv.set(&keys[i % KEYS], &value)
        })?;
        out.push(&Row::measured(imp, "valuesize", size, "set", &mut ns, size))?;
        let mut ns = time_each(ops, |i| {
            let v = kv.get(&keys[i % KEYS])?;
            ensure!(
                v.is_some_and(|v| v.len() as u64 == size),
                "{imp}: bad read of {}",
                keys[i % KEYS]
            );
            Ok(())
        })?;
        out.push(&Row::measured(imp, "valuesize", size, "get", &mut ns, size))?;
        for k in &keys {
            kv.delete(k)?;
        }
    }
    drop(kv);
    remove_store(&dir);
    Ok(())
}

/// `batch`: batches of new keys written in one transaction; amortized time per op.
pub fn batch(imp: &str, plan: &Plan, work: &Path, out: &mut CsvOut) -> Result<()> {
    let dir = work.join(format!("batch-{imp}"));
    let kv = kv::open(imp, &dir)?;
    for &(b, rounds) in &plan.batch_sizes {
        if let Some(reason) = kv.batch_unsupported() {
            out.push(&Row::na(imp, "batch", b, "batch-set", reason))?;
            continue;
        }
        let mut per_op = Vec::with_capacity(rounds);
        for r in 0..rounds {
            let keys: Vec<String> = (0..b).map(|i| format!("b/{b}/{r}/{i:06}")).collect();
            let base = (b << 32) | ((r as u64) << 16);
            let t = Instant::now();
            kv.batch_set(&keys, &mut |i| value_of(base + i as u64))?;
            per_op.push(t.elapsed().as_nanos() as u64 / b);
        }
        let mut row = Row::measured(imp, "batch", b, "batch-set", &mut per_op, VALUE_LEN as u64);
        row.n = rounds as u64 * b;
        out.push(&row)?;
    }
    drop(kv);
    remove_store(&dir);
    Ok(())
}

/// Latencies of one worker: (set wall ns, set latencies, get wall ns, get latencies).
type WorkerResult = (u64, Vec<u64>, u64, Vec<u64>);

/// The work of one concurrency worker: `ops` sets of its own keys, then `ops` gets of
/// random keys among them.
pub fn worker_ops(kv: &dyn Kv, id: usize, ops: usize) -> Result<WorkerResult> {
    let keys: Vec<String> = (0..ops).map(|i| format!("w{id}/{i:06}")).collect();
    let values: Vec<Vec<u8>> = (0..ops as u64)
        .map(|i| value_of((id as u64) << 32 | i))
        .collect();
    let t = Instant::now();
    let set = time_each(ops, |i| kv.set(&keys[i], &values[i]))?;
    let set_wall = t.elapsed().as_nanos() as u64;
    let mut r = rng(id as u64 + 1);
    let picks: Vec<usize> = (0..ops).map(|_| (r() % ops as u64) as usize).collect();
    let t = Instant::now();
    let get = time_each(ops, |i| {
        ensure!(kv.get(&keys[picks[i]])?.is_some(), "worker {id}: miss");
        Ok(())
    })?;
    Ok((set_wall, set, t.elapsed().as_nanos() as u64, get))
}

fn push_concurrency(
    imp: &str,
    workload: &str,
    workers: usize,
    results: Vec<WorkerResult>,
    out: &mut CsvOut,
) -> Result<()> {
    let wall = |f: fn(&WorkerResult) -> u64| results.iter().map(f).max().unwrap_or(1).max(1);
    let (set_wall, get_wall) = (wall(|r| r.0), wall(|r| r.2));
    let mut set: Vec<u64> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
    let mut get: Vec<u64> = results.iter().flat_map(|r| r.3.iter().copied()).collect();
    // mb_per_s here is the aggregate throughput of all workers (bytes of values / wall).
    for (op, lat, wall_ns) in [("set", &mut set, set_wall), ("get", &mut get, get_wall)] {
        let bytes = (lat.len() * VALUE_LEN) as f64;
        let mut row = Row::measured(imp, workload, workers as u64, op, lat, 0);
        row.mb_per_s = Some(bytes / (wall_ns as f64 / 1000.0));
        out.push(&row)?;
    }
    Ok(())
}

/// `concurrency`: 1…N threads sharing one store, then 1…N processes on one directory.
pub fn concurrency(imp: &str, plan: &Plan, work: &Path, out: &mut CsvOut) -> Result<()> {
    for &w in &plan.workers {
        let dir = work.join(format!("conc-threads-{imp}-{w}"));
        let kv = kv::open(imp, &dir)?;
        let barrier = Barrier::new(w);
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = (0..w)
                .map(|id| {
                    let (kv, barrier) = (&kv, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        worker_ops(kv.as_ref(), id, plan.conc_ops)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
                .collect::<Result<Vec<_>>>()
        })?;
        push_concurrency(imp, "concurrency-threads", w, results, out)?;
        drop(kv);
        remove_store(&dir);
    }
    let exe = std::env::current_exe().context("locating sqbench")?;
    for &w in &plan.workers {
        let dir = work.join(format!("conc-procs-{imp}-{w}"));
        // Create the store once so that workers do not race to create the schema.
        drop(kv::open(imp, &dir)?);
        let start_at = SystemTime::now().duration_since(UNIX_EPOCH)? + Duration::from_millis(1500);
        let children = (0..w)
            .map(|id| {
                std::process::Command::new(&exe)
                    .args(worker_main_args(imp, &dir, id, plan.conc_ops, start_at))
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .context("spawning a worker")
            })
            .collect::<Result<Vec<_>>>()?;
        let mut results = Vec::new();
        for child in children {
            let o = child.wait_with_output()?;
            ensure!(o.status.success(), "worker failed: {}", o.status);
            results.push(parse_worker_output(&String::from_utf8(o.stdout)?)?);
        }
        push_concurrency(imp, "concurrency-procs", w, results, out)?;
        remove_store(&dir);
    }
    Ok(())
}

/// The arguments of `sqbench worker` for [`worker_main`]; `start_at` is a Unix time.
pub fn worker_main_args(
    imp: &str,
    dir: &Path,
    id: usize,
    ops: usize,
    start_at: Duration,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = ["worker", "--impl", imp, "--id", &id.to_string()]
        .iter()
        .map(Into::into)
        .collect();
    a.extend(["--ops".into(), ops.to_string().into()]);
    a.extend([
        "--start-at-us".into(),
        start_at.as_micros().to_string().into(),
    ]);
    a.extend(["--dir".into(), dir.as_os_str().to_owned()]);
    a
}

/// The `worker` command: runs [`worker_ops`] in this process from `start_at_us` (Unix
/// time) on and prints `set <wall> <lat>…` and `get <wall> <lat>…` lines.
pub fn worker_main(imp: &str, dir: &Path, id: usize, ops: usize, start_at_us: u64) -> Result<()> {
    let kv = kv::open(imp, dir)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    if let Some(wait) = Duration::from_micros(start_at_us).checked_sub(now) {
        std::thread::sleep(wait);
    }
    let (sw, set, gw, get) = worker_ops(kv.as_ref(), id, ops)?;
    let line = |name: &str, wall: u64, lat: &[u64]| {
        let mut s = format!("{name} {wall}");
        for x in lat {
            s.push(' ');
            s.push_str(&x.to_string());
        }
        s
    };
    println!("{}", line("set", sw, &set));
    println!("{}", line("get", gw, &get));
    Ok(())
}

fn parse_worker_output(text: &str) -> Result<WorkerResult> {
    let mut parsed = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let _name = it.next();
        let nums = it
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()
            .context("worker output")?;
        parsed.push(nums);
    }
    let [set, get] = <[Vec<u64>; 2]>::try_from(parsed)
        .map_err(|p| anyhow::anyhow!("expected 2 lines from a worker, got {}", p.len()))?;
    if set.is_empty() || get.is_empty() {
        bail!("empty worker line");
    }
    Ok((set[0], set[1..].to_vec(), get[0], get[1..].to_vec()))
}
