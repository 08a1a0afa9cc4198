//! `sqbench`: sciqlop-cache side by side with raw SQLite, cacache and diskcache, and
//! the cost of the wasm plugin boundary.
//!
//! Every workload runs the same operations on every implementation and writes one CSV
//! schema (`impl,workload,param,op,n,mean_us,p50_us,p99_us,mb_per_s`); `report` turns
//! the CSV files of a run into `results.csv`, PNG charts and `table.md`. See
//! bench/README.md.

mod kv;
mod plugin;
mod python;
mod redis;
mod report;
mod stats;
mod workloads;
mod writers;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use stats::CsvOut;
use workloads::Plan;

#[derive(Parser)]
#[command(
    name = "sqbench",
    version,
    about = "Benchmarks of sciqlop-cache against raw SQLite, cacache and diskcache"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Debug)]
struct Common {
    /// Output directory: raw/*.csv, results.csv, *.png, table.md, machine.txt.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Small sizes and few operations (a smoke test, not figures).
    #[arg(long)]
    quick: bool,
    /// Also scale to 1e7 entries (long; needs several GB of disk).
    #[arg(long)]
    huge: bool,
    /// Do not run diskcache (no Python needed).
    #[arg(long)]
    skip_python: bool,
    /// Rust implementations to run (default: all), comma-separated.
    #[arg(long, value_delimiter = ',')]
    impls: Option<Vec<String>>,
    /// Python venv for diskcache (default: <workspace>/target/bench-venv).
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Where stores are created during the run (default: a temporary folder in --out).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Do not write the report after the run.
    #[arg(long)]
    no_report: bool,
    /// Directory holding the built guest components (adversarial.wasm) for `plugin`
    /// (default: build them with scripts/build-guests.sh).
    #[arg(long)]
    guest_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every workload, then the report.
    All(Common),
    /// Per-op latency of set, get-hit, get-miss, delete at 1e2…1e6 entries.
    Scaling(Common),
    /// Set and get latency and MB/s for values of 64 B … 10 MiB.
    Valuesize(Common),
    /// Amortized µs/op of 1 … 10,000 sets per transaction.
    Batch(Common),
    /// 1/2/4 threads and 1/2/4 processes, Cache vs FanoutCache.
    Concurrency(Common),
    /// A guest's get/set through the wasm plugin host vs native, and instantiation time.
    Plugin(Common),
    /// Autocommit sets from 1…8 threads (group commit on and off), 8 plugins, 1…8
    /// processes (ours and diskcache's), and gets while 4 threads write: writers.md.
    Writers(Common),
    /// The Redis engine vs raw redis GET/SET on the same server (started here), the
    /// local SQLite cache, redis-benchmark, and 1/2/4/8 client processes.
    Redis {
        /// Operations per measurement.
        #[arg(long, default_value_t = 20_000)]
        ops: usize,
        /// Client process counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        procs: Vec<usize>,
    },
    /// One process of the redis workload (internal).
    #[command(hide = true)]
    RedisWorker {
        #[arg(long)]
        url: String,
        #[arg(long)]
        id: usize,
        #[arg(long)]
        ops: usize,
    },
    /// Rebuilds results.csv, the charts and table.md from <out>/raw/*.csv.
    Report {
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
    /// One process of the concurrency workload (internal).
    #[command(hide = true)]
    Worker {
        #[arg(long = "impl")]
        imp: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: usize,
        #[arg(long)]
        ops: usize,
        #[arg(long)]
        start_at_us: u64,
    },
}

/// In this order: `valuesize` first, because the file system stays slow for a while
/// after `scaling` deletes its stores of a million entries (on a disk mounted with
/// `discard`, creating and deleting value files then took three times longer).
const WORKLOADS: &[&str] = &["valuesize", "scaling", "batch", "concurrency", "plugin"];
/// Workloads the diskcache driver has (it has no plugin host).
const PYTHON_WORKLOADS: &[&str] = &["valuesize", "scaling", "batch", "concurrency"];

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::All(c) => run(&c, WORKLOADS),
        Cmd::Scaling(c) => run(&c, &["scaling"]),
        Cmd::Valuesize(c) => run(&c, &["valuesize"]),
        Cmd::Batch(c) => run(&c, &["batch"]),
        Cmd::Concurrency(c) => run(&c, &["concurrency"]),
        Cmd::Plugin(c) => run(&c, &["plugin"]),
        Cmd::Writers(c) => run_writers(&c),
        Cmd::Report { out } => report::report(&out),
        Cmd::Redis { ops, procs } => redis::run(ops, &procs),
        Cmd::RedisWorker { url, id, ops } => redis::worker(&url, id, ops),
        Cmd::Worker {
            imp,
            dir,
            id,
            ops,
            start_at_us,
        } => workloads::worker_main(&imp, &dir, id, ops, start_at_us),
    }
}

/// The `writers` workload (its own table: throughput and max latency).
fn run_writers(c: &Common) -> Result<()> {
    let work_parent = c.work_dir.clone().unwrap_or_else(|| c.out.clone());
    std::fs::create_dir_all(&work_parent)?;
    let work = tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(&work_parent)
        .context("creating the work directory")?;
    let python = if c.skip_python {
        None
    } else {
        let venv = c.venv.clone().unwrap_or_else(python::default_venv);
        Some(python::ensure_venv(&venv)?)
    };
    let wasm = plugin::locate(c.guest_dir.as_deref())?;
    let plugins = |root: &Path, n: usize, ops: usize| plugin::concurrent_sets(&wasm, root, n, ops);
    std::fs::write(c.out.join("machine.txt"), machine(c)).ok();
    writers::run(
        &c.out,
        work.path(),
        &writers::WritersPlan::new(c.quick),
        python.as_deref(),
        Some(&plugins),
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A description of the machine, for the report.
fn machine(c: &Common) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("?".into(), |s| s.trim().to_owned());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "CPU: {model}, {cores} logical cores; RAM {mem}; Linux {kernel}; {} build\n\
         Mode: {}; started at Unix time {secs}; 1-minute load at start: {}\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if c.quick { "quick" } else { "full" },
        load(),
    )
}

fn run(c: &Common, workloads: &[&str]) -> Result<()> {
    let raw = c.out.join("raw");
    if workloads.len() > 1 {
        // A full run replaces the previous one entirely.
        let _ = std::fs::remove_dir_all(&raw);
    }
    std::fs::create_dir_all(&raw).with_context(|| format!("creating {}", raw.display()))?;
    let work_parent = c.work_dir.clone().unwrap_or_else(|| c.out.clone());
    std::fs::create_dir_all(&work_parent)?;
    let work = tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(&work_parent)
        .context("creating the work directory")?;
    let plan = Plan::new(c.quick, c.huge);
    let venv = c.venv.clone().unwrap_or_else(python::default_venv);
    let py_workloads: Vec<&str> = workloads
        .iter()
        .copied()
        .filter(|w| PYTHON_WORKLOADS.contains(w))
        .collect();
    let python = !c.skip_python && !py_workloads.is_empty();
    if python {
        // Fail early, before the long Rust part, if the venv cannot be made.
        python::ensure_venv(&venv)?;
    }
    let machine_path = c.out.join("machine.txt");
    std::fs::write(&machine_path, machine(c))?;
    let chosen = |all: &[&str]| -> Vec<String> {
        all.iter()
            .filter(|i| c.impls.as_ref().is_none_or(|v| v.iter().any(|x| x == *i)))
            .map(|s| s.to_string())
            .collect()
    };
    // Lines added to machine.txt at the end.
    let mut notes: Vec<String> = Vec::new();
    // The guest component, built (or found) before the long part. `all` goes on without
    // it; `plugin` alone cannot.
    let plugin_impls = chosen(plugin::IMPLS);
    let mut skipped_plugin = None;
    let guest = if workloads.contains(&"plugin") && !plugin_impls.is_empty() {
        match plugin::locate(c.guest_dir.as_deref()) {
            Ok(wasm) => Some(wasm),
            Err(e) if workloads.len() > 1 => {
                let why = format!("the guest component is not available: {e:#}");
                eprintln!("warning: skipping the plugin workload: {why}");
                notes.push(format!("Plugin workload: skipped, {why}"));
                skipped_plugin = Some(why);
                None
            }
            Err(e) => return Err(e.context("the plugin workload needs the guest component")),
        }
    } else {
        None
    };
    for &w in workloads {
        if w == "plugin" {
            let Some(wasm) = &guest else { continue };
            eprintln!("== plugin: {} (load {})", plugin_impls.join(", "), load());
            let mut out = CsvOut::create(&raw.join("rust-plugin.csv"))?;
            let note = plugin::plugin(&plan, work.path(), wasm, &plugin_impls, &mut out)
                .context("plugin workload")?;
            notes.push(note);
            continue;
        }
        let mut out = CsvOut::create(&raw.join(format!("rust-{w}.csv")))?;
        let impls = if w == "concurrency" {
            chosen(workloads::CONCURRENCY_IMPLS)
        } else {
            chosen(kv::RUST_IMPLS)
        };
        for imp in &impls {
            eprintln!("== {w}: {imp} (load {})", load());
            let f = match w {
                "scaling" => workloads::scaling,
                "valuesize" => workloads::valuesize,
                "batch" => workloads::batch,
                _ => workloads::concurrency,
            };
            f(imp, &plan, work.path(), &mut out).with_context(|| format!("{w} on {imp}"))?;
        }
    }
    if python {
        eprintln!(
            "== diskcache: {} (load {})",
            py_workloads.join(", "),
            load()
        );
        let name = if py_workloads.len() > 1 {
            "diskcache-all".to_owned()
        } else {
            format!("diskcache-{}", py_workloads[0])
        };
        python::run_diskcache(
            &venv,
            &plan,
            &py_workloads,
            work.path(),
            &raw.join(format!("{name}.csv")),
        )?;
    }
    let mut m = std::fs::read_to_string(&machine_path)?;
    m.push_str(&format!("1-minute load at end: {}\n", load()));
    m.push_str(&format!(
        "Python side: {}\n",
        if !python {
            "skipped".to_owned()
        } else {
            format!("{} in {}", python::DISKCACHE, display(&venv))
        }
    ));
    for n in &notes {
        m.push_str(n);
        m.push('\n');
    }
    std::fs::write(&machine_path, m)?;
    if !c.no_report {
        report::report(&c.out)?;
    }
    if let Some(why) = skipped_plugin {
        // Again at the end, where it is seen.
        eprintln!("warning: the plugin workload was skipped: {why}");
    }
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
