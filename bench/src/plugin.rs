//! `plugin`: the cost of the wasm plugin boundary. A guest's get and set through
//! sciqlop-cache-host against the same calls made natively on the plugin's own scoped
//! cache, and the cost of instantiating a plugin (the method of
//! host/benches/guest_overhead.rs, written to the common CSV schema).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sciqlop_cache_host::{HostConfig, PluginHost, PluginPolicy};

use crate::stats::{CsvOut, Row, time_each};
use crate::workloads::{Plan, VALUE_LEN};

/// A guest's calls through the host.
pub const GUEST: &str = "plugin-guest";
/// The same calls made natively on the plugin's scoped cache.
pub const NATIVE: &str = "plugin-native";
/// Implementations of the plugin workload.
pub const IMPLS: &[&str] = &[GUEST, NATIVE];
/// The guest crate measured (guest-examples/adversarial).
pub const GUEST_CRATE: &str = "adversarial";
/// Name (and namespace) of the plugin in the host.
const PLUGIN: &str = "bench";
/// The guest's store, and the keys read and written (`<store>/<key>` natively).
const STORE: &str = "s";
const GET_KEY: &str = "k";
const SET_KEY: &str = "w";

/// The guest component: `<dir>/adversarial.wasm`, `dir` given or else built by
/// scripts/build-guests.sh (which prints it).
pub fn locate(dir: Option<&Path>) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => build_guests()?,
    };
    let wasm = dir.join(format!("{GUEST_CRATE}.wasm"));
    ensure!(
        wasm.is_file(),
        "{} not found (build the guests with scripts/build-guests.sh)",
        wasm.display()
    );
    Ok(wasm)
}

fn build_guests() -> Result<PathBuf> {
    let script = crate::python::workspace_root()
        .join("scripts")
        .join("build-guests.sh");
    eprintln!("building the guest components: {}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(crate::python::workspace_root())
        // The guests have their own target directory and flags.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(
        out.status.success(),
        "{} failed ({}); its output is above",
        script.display(),
        out.status
    );
    let dir = String::from_utf8(out.stdout).context("build-guests.sh output")?;
    let dir = dir.lines().last().unwrap_or_default().trim();
    ensure!(!dir.is_empty(), "build-guests.sh printed no directory");
    Ok(PathBuf::from(dir))
}

/// This thread's CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`, exact to the call).
/// Not /proc/thread-self/schedstat: its counter only moves at scheduler ticks
/// (milliseconds), too coarse for loops of a few milliseconds.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u64::try_from(t.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// A clock for the loops: this thread's CPU time (Linux; robust to other load on the
/// machine), else the wall clock. The guest runs on the calling thread, so its time and
/// the host's are both counted; work of other threads (the cache's background
/// maintenance, the same for guest and native) is not.
#[derive(Clone, Copy)]
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

impl Clock {
    fn now() -> Self {
        Clock {
            wall: Instant::now(),
            cpu_ns: thread_cpu_ns(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
            _ => self.wall.elapsed(),
        }
    }

    /// What [`elapsed`](Self::elapsed) measures on this machine.
    fn kind() -> &'static str {
        if thread_cpu_ns().is_some() {
            "thread CPU time"
        } else {
            "wall clock"
        }
    }
}

fn host(root: &Path, pooling: bool, wasm: &Path) -> Result<PluginHost> {
    let mut cfg = HostConfig::new(root);
    cfg.pooling = pooling;
    cfg.inherit_stdio = false;
    let mut h = PluginHost::new(cfg).context("creating the plugin host")?;
    h.load_file(PLUGIN, wasm, PluginPolicy::default())
        .with_context(|| format!("loading {}", wasm.display()))?;
    Ok(h)
}

/// Runs the guest once; its output must be `ok:…`.
fn run(h: &PluginHost, args: &[String]) -> Result<String> {
    let out = h
        .run(PLUGIN, args)
        .with_context(|| format!("guest {args:?}"))?;
    ensure!(out.starts_with("ok:"), "guest {args:?}: {out}");
    Ok(out)
}

/// Per-call ns of a guest loop: one invocation looping `n` times minus one looping
/// once, so that instantiation and the invocation itself cancel out. `args(n)` are the
/// guest's arguments for a loop of `n`; `check(n, output)` checks its result.
fn guest_per_call(
    h: &PluginHost,
    n: u64,
    args: &dyn Fn(u64) -> Vec<String>,
    check: &dyn Fn(u64, &str) -> Result<()>,
) -> Result<u64> {
    let t = Clock::now();
    let out = run(h, &args(1))?;
    let one = t.elapsed();
    check(1, &out)?;
    let t = Clock::now();
    let out = run(h, &args(n))?;
    let many = t.elapsed();
    check(n, &out)?;
    Ok((many.saturating_sub(one).as_nanos() / u128::from(n - 1)) as u64)
}

/// Per-call ns of `n` native calls.
fn native_per_call(n: u64, mut f: impl FnMut(u64) -> Result<()>) -> Result<u64> {
    let t = Clock::now();
    for i in 0..n {
        f(i)?;
    }
    Ok((t.elapsed().as_nanos() / u128::from(n)) as u64)
}

/// Per-call samples (ns, one per repetition) of each measured series.
#[derive(Default)]
struct Samples {
    guest_get: Vec<u64>,
    native_get: Vec<u64>,
    guest_set: Vec<u64>,
    native_set: Vec<u64>,
    host_call: Vec<u64>,
}

/// The plugin workload on the component `wasm`: rows of the implementations in
/// `impls` (both are measured, interleaved, whatever the choice). Returns a line for
/// machine.txt.
pub fn plugin(
    plan: &Plan,
    work: &Path,
    wasm: &Path,
    impls: &[String],
    out: &mut CsvOut,
) -> Result<String> {
    let keep = |imp: &str| impls.iter().any(|i| i == imp);
    let root = work.join("plugin-pooling");
    let h = host(&root, true, wasm)?;
    let scope = h.scope(PLUGIN).context("the plugin's scope")?.clone();
    // The plugin's store, as the host serves it: its namespace of the plugin's cache.
    let cache = scope.store(STORE)?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let value = "v".repeat(VALUE_LEN);
    ensure!(
        run(&h, &s(&["set", STORE, GET_KEY, &value]))? == "ok:set",
        "guest set failed"
    );
    let (native_get_key, native_set_key) = (GET_KEY, SET_KEY);
    ensure!(
        cache.get(native_get_key)?.as_deref() == Some(value.as_bytes()),
        "the guest's value is not in the plugin's store {STORE} under {native_get_key}"
    );

    let get_args = |n: u64| s(&["get-loop", STORE, GET_KEY, &n.to_string()]);
    let get_check = |n: u64, out: &str| -> Result<()> {
        // get-loop prints its hits: every get must hit.
        ensure!(out == format!("ok:{n}"), "guest get-loop of {n}: {out}");
        Ok(())
    };
    let set_args = |n: u64| {
        s(&[
            "set-loop",
            STORE,
            SET_KEY,
            &n.to_string(),
            &VALUE_LEN.to_string(),
        ])
    };
    let set_check = |n: u64, out: &str| -> Result<()> {
        ensure!(out == format!("ok:{n}"), "guest set-loop of {n}: {out}");
        let v = cache.get(native_set_key)?;
        ensure!(
            v.as_ref()
                .is_some_and(|v| v.len() == VALUE_LEN && v[..8] == (n - 1).to_le_bytes()),
            "guest set-loop of {n}: the last value is not in the cache"
        );
        Ok(())
    };
    let stats_args = |n: u64| s(&["stats-loop", STORE, GET_KEY, &n.to_string()]);
    let any_ok = |_: u64, _: &str| -> Result<()> { Ok(()) };
    let mut set_value = vec![b'x'; VALUE_LEN];
    let mut native_get = |_: u64| -> Result<()> {
        let v = cache.get(native_get_key)?;
        ensure!(
            std::hint::black_box(v).is_some_and(|v| v.len() == VALUE_LEN),
            "native get: expected a hit"
        );
        Ok(())
    };
    let mut native_set = |i: u64| -> Result<()> {
        // Distinct values, as the guest's set-loop writes them.
        set_value[..8].copy_from_slice(&i.to_le_bytes());
        Ok(cache.set(native_set_key, &set_value)?)
    };

    let (get_n, set_n) = (plan.plugin_get_calls, plan.plugin_set_calls);
    eprintln!(
        "plugin: {} repetitions of {get_n} gets and {set_n} sets ({}), guest {}",
        plan.plugin_reps,
        Clock::kind(),
        wasm.display()
    );
    // Warm-up (page cache, SQLite's cache, the pooling allocator's slots): not recorded.
    guest_per_call(&h, (get_n / 10).max(2), &get_args, &get_check)?;
    guest_per_call(&h, (set_n / 10).max(2), &set_args, &set_check)?;
    native_per_call((get_n / 10).max(1), &mut native_get)?;
    native_per_call((set_n / 10).max(1), &mut native_set)?;

    // Interleaved, so that guest and native see the same machine load.
    let mut m = Samples::default();
    for rep in 0..plan.plugin_reps {
        m.native_get.push(native_per_call(get_n, &mut native_get)?);
        m.guest_get
            .push(guest_per_call(&h, get_n, &get_args, &get_check)?);
        m.native_set.push(native_per_call(set_n, &mut native_set)?);
        m.guest_set
            .push(guest_per_call(&h, set_n, &set_args, &set_check)?);
        m.host_call
            .push(guest_per_call(&h, get_n, &stats_args, &any_ok)?);
        eprintln!(
            "plugin: repetition {}/{}: get {:.3} vs {:.3} µs, set {:.3} vs {:.3} µs (guest vs native)",
            rep + 1,
            plan.plugin_reps,
            m.guest_get[rep] as f64 / 1e3,
            m.native_get[rep] as f64 / 1e3,
            m.guest_set[rep] as f64 / 1e3,
            m.native_set[rep] as f64 / 1e3,
        );
    }
    let reps = plan.plugin_reps as u64;
    let mut push = |imp: &str, op: &str, param: u64, ns: &mut [u64], calls: u64| -> Result<()> {
        if keep(imp) {
            let mut row = Row::measured(imp, "plugin", param, op, ns, 0);
            row.n = reps * calls;
            out.push(&row)?;
        }
        Ok(())
    };
    let len = VALUE_LEN as u64;
    push(GUEST, "get", len, &mut m.guest_get, get_n)?;
    push(NATIVE, "get", len, &mut m.native_get, get_n)?;
    push(GUEST, "set", len, &mut m.guest_set, set_n)?;
    push(NATIVE, "set", len, &mut m.native_set, set_n)?;
    push(GUEST, "host-call", 0, &mut m.host_call, get_n)?;

    // Instantiation (InstancePre: fresh store + WASI context + instance) and a whole
    // no-op invocation, each call timed on the wall clock.
    if keep(GUEST) {
        let on_demand_root = work.join("plugin-on-demand");
        let on_demand = host(&on_demand_root, false, wasm)?;
        let noop = s(&["noop"]);
        for (mode, h) in [("pooling", &h), ("on-demand", &on_demand)] {
            for _ in 0..plan.plugin_warmup {
                h.instantiate_only(PLUGIN)?;
                run(h, &noop)?;
            }
            let mut ns = time_each(plan.plugin_inst_iters, |_| Ok(h.instantiate_only(PLUGIN)?))?;
            out.push(&Row::measured(
                GUEST,
                "plugin",
                0,
                &format!("instantiate-{mode}"),
                &mut ns,
                0,
            ))?;
            let mut ns = time_each(plan.plugin_inst_iters, |_| {
                ensure!(run(h, &noop)? == "ok:noop", "noop");
                Ok(())
            })?;
            out.push(&Row::measured(
                GUEST,
                "plugin",
                0,
                &format!("run-noop-{mode}"),
                &mut ns,
                0,
            ))?;
        }
        drop(on_demand);
        let _ = std::fs::remove_dir_all(&on_demand_root);
    }
    drop(h);
    let _ = std::fs::remove_dir_all(&root);
    Ok(format!(
        "Plugin workload: guest {}; get/set per call in {}, {} repetitions",
        wasm.display(),
        Clock::kind(),
        plan.plugin_reps
    ))
}

/// `plugins` plugins of one host (the component `wasm`, each its own scope under
/// `root`) each running a guest loop of `ops` sets at the same time: the wall time, and
/// each plugin's mean ns per set.
pub fn concurrent_sets(
    wasm: &Path,
    root: &Path,
    plugins: usize,
    ops: usize,
) -> Result<(Duration, Vec<u64>)> {
    let mut cfg = HostConfig::new(root);
    cfg.inherit_stdio = false;
    let mut h = PluginHost::new(cfg).context("creating the plugin host")?;
    let names: Vec<String> = (0..plugins).map(|i| format!("p{i}")).collect();
    for n in &names {
        h.load_file(n, wasm, PluginPolicy::default())
            .with_context(|| format!("loading {}", wasm.display()))?;
    }
    let args = |n: usize| -> Vec<String> {
        [
            "set-loop",
            STORE,
            SET_KEY,
            &n.to_string(),
            &VALUE_LEN.to_string(),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    // Warm-up: each plugin's instance and store are made before the clock starts.
    for n in &names {
        ensure!(
            h.run(n, &args(1))? == "ok:1",
            "plugin {n}: warm-up set-loop failed"
        );
    }
    let barrier = std::sync::Barrier::new(plugins);
    let t = Instant::now();
    let per_set = std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|n| {
                let (h, barrier, args) = (&h, &barrier, &args);
                s.spawn(move || -> Result<u64> {
                    barrier.wait();
                    let t = Instant::now();
                    let out = h.run(n, &args(ops))?;
                    ensure!(out == format!("ok:{ops}"), "plugin {n}: set-loop: {out}");
                    Ok(t.elapsed().as_nanos() as u64 / ops as u64)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a plugin thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok((t.elapsed(), per_set))
}
