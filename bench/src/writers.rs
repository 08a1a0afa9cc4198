//! `writers`: how autocommit writes scale (issue #19), with figures printed as a table
//! and written to `writers.csv` / `writers.md` in the output directory.
//!
//! - threads: 1, 2, 4, 8 threads of this process setting 100-byte values (each its own
//!   keys) on one `Cache`, with group commit on and off: throughput and p50/p99/max;
//! - plugins: 8 plugins of one host setting concurrently (each a guest loop of sets);
//! - processes: 1, 2, 4, 8 processes on one store (ours with the writers' turnstile and
//!   without, and diskcache from Python);
//! - readers: p50/p99 of gets with no writer, then while 4 threads write.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use sciqlop_cache::Cache;

use crate::workloads::{VALUE_LEN, remove_store, value_of, worker_main_args};

/// Sizes of one run.
pub struct WritersPlan {
    pub workers: Vec<usize>,
    /// Sets per thread or process.
    pub ops: usize,
    /// Gets measured in the readers part.
    pub gets: usize,
}

impl WritersPlan {
    pub fn new(quick: bool) -> Self {
        if quick {
            WritersPlan {
                workers: vec![1, 2],
                ops: 200,
                gets: 2_000,
            }
        } else {
            WritersPlan {
                workers: vec![1, 2, 4, 8],
                ops: 5_000,
                gets: 50_000,
            }
        }
    }
}

/// One line of the report.
struct Line {
    imp: String,
    mode: &'static str,
    workers: usize,
    ops: u64,
    wall: Duration,
    lat: Vec<u64>,
}

impl Line {
    fn new(imp: &str, mode: &'static str, workers: usize, wall: Duration, lat: Vec<u64>) -> Self {
        let mut lat = lat;
        lat.sort_unstable();
        Line {
            imp: imp.into(),
            mode,
            workers,
            ops: lat.len() as u64,
            wall,
            lat,
        }
    }

    fn pct(&self, p: f64) -> f64 {
        let n = self.lat.len();
        if n == 0 {
            return f64::NAN;
        }
        self.lat[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0
    }

    fn max(&self) -> f64 {
        self.lat.last().map_or(f64::NAN, |&x| x as f64 / 1000.0)
    }

    fn per_s(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Sets of `ops` 100-byte values by thread `id` (its own keys); per-set ns.
fn sets(cache: &Cache, id: usize, ops: usize) -> Result<Vec<u64>> {
    let keys: Vec<String> = (0..ops).map(|i| format!("w{id}/{i:06}")).collect();
    let mut lat = Vec::with_capacity(ops);
    for (i, k) in keys.iter().enumerate() {
        let v = value_of((id as u64) << 32 | i as u64);
        let t = Instant::now();
        cache.set(k, &v)?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    Ok(lat)
}

fn threads(dir: &Path, workers: usize, ops: usize, group: bool) -> Result<Line> {
    let cache = Cache::builder().group_commit(group).open(dir)?;
    let barrier = Barrier::new(workers);
    let t = Instant::now();
    let lat = std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|id| {
                let (cache, barrier) = (&cache, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    sets(cache, id, ops)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a writer panicked"))??,
            );
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let wall = t.elapsed();
    ensure!(cache.len()? == (workers * ops) as u64, "lost writes");
    let mode = if group {
        "threads"
    } else {
        "threads, no group commit"
    };
    Ok(Line::new("sciqlop-cache", mode, workers, wall, lat))
}

/// `workers` processes (`sqbench worker`), each `ops` sets then gets; the set latencies.
/// `fair`: with the writers' turnstile (the default), else SQLite's lock alone.
fn processes(dir: &Path, workers: usize, ops: usize, fair: bool) -> Result<Line> {
    let imp = if fair {
        "sciqlop-cache"
    } else {
        "sciqlop-cache-unfair"
    };
    drop(Cache::open(dir)?);
    let exe = std::env::current_exe().context("locating sqbench")?;
    let start = SystemTime::now().duration_since(UNIX_EPOCH)? + Duration::from_millis(1500);
    let children = (0..workers)
        .map(|id| {
            Command::new(&exe)
                .args(worker_main_args(imp, dir, id, ops, start))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("spawning a worker")
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut lat, mut wall) = (Vec::new(), 0u64);
    for child in children {
        let o = child.wait_with_output()?;
        ensure!(o.status.success(), "worker failed: {}", o.status);
        let text = String::from_utf8(o.stdout)?;
        let set = text
            .lines()
            .find_map(|l| l.strip_prefix("set "))
            .context("a worker printed no set line")?;
        let mut nums = set.split_whitespace().map(str::parse::<u64>);
        wall = wall.max(nums.next().context("wall")??);
        for x in nums {
            lat.push(x?);
        }
    }
    Ok(Line::new(
        "sciqlop-cache",
        if fair {
            "processes"
        } else {
            "processes, no turnstile"
        },
        workers,
        Duration::from_nanos(wall),
        lat,
    ))
}

/// Gets of random keys among `n` while `writers` threads set other keys.
fn readers(dir: &Path, n: usize, writers: usize) -> Result<Line> {
    let cache = Cache::open(dir)?;
    let keys: Vec<String> = (0..10_000).map(|i| format!("r/{i:05}")).collect();
    cache.set_many(keys.iter().map(|k| (k.as_str(), value_of(7))))?;
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let lat = std::thread::scope(|s| {
        let ws: Vec<_> = (0..writers)
            .map(|id| {
                let (cache, stop) = (&cache, &stop);
                s.spawn(move || -> Result<()> {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        cache.set(&format!("bg{id}/{}", i % 1000), value_of(i))?;
                        i += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        // Let the writers get going.
        std::thread::sleep(Duration::from_millis(if writers > 0 { 200 } else { 0 }));
        let mut r = crate::workloads::rng(3);
        let mut lat = Vec::with_capacity(n);
        let mut out = Ok(());
        for _ in 0..n {
            let k = &keys[(r() % keys.len() as u64) as usize];
            let t = Instant::now();
            match cache.get(k) {
                Ok(Some(v)) if v.len() == VALUE_LEN => lat.push(t.elapsed().as_nanos() as u64),
                Ok(_) => out = Err(anyhow::anyhow!("a read missed {k}")),
                Err(e) => out = Err(e.into()),
            }
            if out.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in ws {
            w.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        out.map(|()| lat)
    })?;
    let mode = if writers == 0 {
        "gets, no writer"
    } else {
        "gets, 4 writer threads"
    };
    Ok(Line::new("sciqlop-cache", mode, writers, t.elapsed(), lat))
}

/// diskcache's processes, measured by bench/diskcache_writers.py in the venv.
fn diskcache_processes(python: &Path, work: &Path, plan: &WritersPlan) -> Result<Vec<Line>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("diskcache_writers.py");
    let workers = plan
        .workers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let o = Command::new(python)
        .arg(&script)
        .arg(work)
        .arg(&workers)
        .arg(plan.ops.to_string())
        .output()
        .context("running diskcache_writers.py")?;
    ensure!(
        o.status.success(),
        "diskcache_writers.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Lines: `<workers> <wall ns> <lat ns>…`
    let mut lines = Vec::new();
    for l in String::from_utf8(o.stdout)?.lines() {
        let mut it = l.split_whitespace().map(str::parse::<u64>);
        let w = it.next().context("workers")?? as usize;
        let wall = it.next().context("wall")??;
        let lat = it.collect::<Result<Vec<_>, _>>()?;
        lines.push(Line::new(
            "diskcache",
            "processes",
            w,
            Duration::from_nanos(wall),
            lat,
        ));
    }
    Ok(lines)
}

/// `(root, plugins, sets each)` → the wall time and each plugin's mean ns per set.
pub type PluginSets<'a> = &'a dyn Fn(&Path, usize, usize) -> Result<(Duration, Vec<u64>)>;

/// The whole `writers` workload; `python` runs diskcache's part when given, `plugins`
/// the host's when given.
pub fn run(
    out_dir: &Path,
    work: &Path,
    plan: &WritersPlan,
    python: Option<&Path>,
    plugins: Option<PluginSets<'_>>,
) -> Result<()> {
    let mut lines = Vec::new();
    let fresh = |name: &str| {
        let d = work.join(name);
        remove_store(&d);
        d
    };
    for &w in &plan.workers {
        for group in [true, false] {
            let d = fresh(&format!("threads-{w}-{group}"));
            let l = threads(&d, w, plan.ops, group)?;
            eprintln!("writers: {} {} {:.0}/s", l.mode, w, l.per_s());
            lines.push(l);
            remove_store(&d);
        }
    }
    if let Some(plugins) = plugins {
        let w = *plan.workers.iter().max().unwrap_or(&1);
        let d = fresh("plugins");
        let (wall, lat) = plugins(&d, w, plan.ops)?;
        let mut l = Line::new(
            "sciqlop-cache-host",
            "plugins (latency: each plugin's mean)",
            w,
            wall,
            lat,
        );
        l.ops = (w * plan.ops) as u64;
        lines.push(l);
        remove_store(&d);
    }
    for &w in &plan.workers {
        for fair in [true, false] {
            let d = fresh(&format!("procs-{w}-{fair}"));
            let l = processes(&d, w, plan.ops, fair)?;
            eprintln!("writers: {} {w} p99 {:.0} µs", l.mode, l.pct(0.99));
            lines.push(l);
            remove_store(&d);
        }
    }
    if let Some(python) = python {
        let d = fresh("diskcache");
        std::fs::create_dir_all(&d)?;
        lines.extend(diskcache_processes(python, &d, plan)?);
        let _ = std::fs::remove_dir_all(&d);
    }
    for writers in [0, 4] {
        let d = fresh(&format!("readers-{writers}"));
        lines.push(readers(&d, plan.gets, writers)?);
        remove_store(&d);
    }
    let mut csv = String::from("impl,mode,workers,ops,ops_per_s,p50_us,p99_us,max_us\n");
    let mut md = String::from(
        "| impl | mode | workers | ops | ops/s | p50 µs | p99 µs | max µs |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in &lines {
        let (p50, p99, max) = (l.pct(0.5), l.pct(0.99), l.max());
        writeln!(
            csv,
            "{},{},{},{},{:.0},{p50:.1},{p99:.1},{max:.1}",
            l.imp,
            l.mode,
            l.workers,
            l.ops,
            l.per_s()
        )?;
        writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {p50:.1} | {p99:.1} | {max:.1} |",
            l.imp,
            l.mode,
            l.workers,
            l.ops,
            l.per_s()
        )?;
    }
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join("writers.csv"), &csv)?;
    std::fs::write(out_dir.join("writers.md"), &md)?;
    print!("{md}");
    Ok(())
}
