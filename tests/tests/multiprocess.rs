//! Multi-process contention: 8 real processes (`src/bin/mp_worker.rs`) on one directory.
//!
//! Proves: `incr` totals are exact across processes; every `add` race has exactly one
//! winner and the stored value is the winner's; `lock` gives mutual exclusion (a plain
//! file counter read-modify-written under it loses no update); mixed operations on
//! small and file-backed values never see bytes no writer wrote; no operation fails
//! (in particular never with "database is locked"); the store checks clean afterwards
//! with as many value files as file-backed rows. Throughput is printed, never asserted.
//!
//! The same runs on an 8-shard `FanoutCache` (transactions pair keys of one shard; a
//! key of another shard inside one must fail with `WrongShard`).
//!
//! Counts scale with `MP_SCALE` (default 1).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, FanoutCache};
use sciqlop_cache_tests::{
    LineReader, SMALL_THRESHOLD, env_usize, file_backed_rows, parse_payload, value_files,
};

const PROCS: u64 = 8;

/// What the workers reported.
struct Outcome {
    wins: BTreeMap<u64, Vec<u64>>,
    /// phase → (ops, micros summed over workers, max micros of one worker)
    phases: BTreeMap<String, (u64, u64, u64)>,
    counter_incrs: u64,
}

/// Counts per worker: incrs, add rounds, lock rounds, mixed operations.
fn counts() -> [u64; 4] {
    let scale = env_usize("MP_SCALE", 1) as u64;
    [500 * scale, 200 * scale, 50 * scale, 800 * scale]
}

/// Spawns the workers on `dir` (with `extra` arguments), starts them together, waits
/// for all and checks that none failed.
fn run_workers(dir: &Path, n: [u64; 4], extra: &[&str]) -> Outcome {
    let worker = env!("CARGO_BIN_EXE_mp_worker");
    let go = dir.with_extension("go");
    let counter_file = dir.with_extension("counter");
    std::fs::write(&counter_file, "0\n").expect("counter file");
    let [incrs, adds, locks, mixed] = n;
    let mut children = Vec::new();
    for id in 0..PROCS {
        let mut child = Command::new(worker)
            .arg(dir)
            .arg(id.to_string())
            .arg(&go)
            .arg(&counter_file)
            .args([incrs, adds, locks, mixed].map(|n| n.to_string()))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let out = LineReader::spawn(child.stdout.take().expect("stdout"));
        let err = LineReader::spawn(child.stderr.take().expect("stderr"));
        children.push((id, child, out, err));
    }
    // Let every worker open the store, then release them at once.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, b"").expect("go file");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut outcome = Outcome {
        wins: BTreeMap::new(),
        phases: BTreeMap::new(),
        counter_incrs: 0,
    };
    let mut failures = Vec::new();
    for (id, mut child, out, err) in children {
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("worker {id} did not finish within 10 minutes (hang?)");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = err.lines().join("\n");
        assert!(
            !stderr.contains("database is locked"),
            "worker {id} hit 'database is locked': {stderr}"
        );
        if !status.success() {
            failures.push(format!("worker {id}: {status}: {stderr}"));
        }
        for line in out.lines() {
            let t: Vec<&str> = line.split(' ').collect();
            match t[..] {
                ["WIN", r] => outcome
                    .wins
                    .entry(r.parse().expect("round"))
                    .or_default()
                    .push(id),
                ["PHASE", name, ops, micros] => {
                    let e = outcome.phases.entry(name.to_owned()).or_default();
                    let us: u64 = micros.parse().expect("micros");
                    e.0 += ops.parse::<u64>().expect("ops");
                    e.1 += us;
                    e.2 = e.2.max(us);
                }
                ["CINCR", n] => outcome.counter_incrs += n.parse::<u64>().expect("count"),
                _ => panic!("worker {id}: unexpected output {line:?}"),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "workers failed:\n{}",
        failures.join("\n")
    );
    let lock_total: u64 = std::fs::read_to_string(&counter_file)
        .expect("read counter file")
        .trim()
        .parse()
        .expect("counter file holds a number (not corrupted)");
    assert_eq!(
        lock_total,
        PROCS * locks,
        "file counter updated under lock() lost updates: mutual exclusion broken"
    );
    println!(
        "{PROCS} processes, wall {:.2?}{}",
        started.elapsed(),
        if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(" "))
        }
    );
    for (name, (ops, _sum, max)) in &outcome.phases {
        println!(
            "  {name:>6}: {ops:>6} ops by all processes, slowest process {:>8.1} ms, aggregate {:>8.0} ops/s",
            *max as f64 / 1000.0,
            *ops as f64 / (*max as f64 / 1e6).max(1e-9)
        );
    }
    outcome
}

/// The checks on the final state, through any store with these reads.
fn verify(
    outcome: &Outcome,
    n: [u64; 4],
    get: &dyn Fn(&str) -> Option<Vec<u8>>,
    get_counter: &dyn Fn(&str) -> Option<i64>,
) {
    let [incrs, adds, _, _] = n;
    assert_eq!(
        get_counter("counter"),
        Some((PROCS * incrs) as i64),
        "shared incr total"
    );
    for id in 0..PROCS {
        assert_eq!(
            get_counter(&format!("per/{id}")),
            Some(incrs as i64),
            "per-process counter of worker {id}"
        );
    }
    for r in 0..adds {
        let winners = outcome.wins.get(&r).cloned().unwrap_or_default();
        assert_eq!(
            winners.len(),
            1,
            "add race round {r}: winners {winners:?} (exactly one expected)"
        );
        let stored = get(&format!("race/{r}"));
        assert_eq!(
            stored.as_deref(),
            Some(winners[0].to_string().as_bytes()),
            "round {r}: stored value is not the winner's"
        );
    }
    let c: i64 = (0..4)
        .map(|i| get_counter(&format!("c/{i}")).unwrap_or(0))
        .sum();
    assert_eq!(c as u64, outcome.counter_incrs, "mixed-phase counters");
    for w in 0..PROCS {
        for i in 0..16 {
            let k = format!("m/{w}/{i}");
            if let Some(v) = get(&k) {
                assert!(
                    parse_payload(&k, &v).is_some(),
                    "{k} holds bytes no writer wrote"
                );
            }
        }
    }
}

#[test]
fn eight_processes_on_one_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    // Create it first so the workers race on operations, not on creating the schema.
    drop(
        Cache::builder()
            .file_threshold(SMALL_THRESHOLD)
            .open(&dir)
            .expect("create store"),
    );
    let outcome = run_workers(&dir, counts(), &[]);
    let cache = Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .open(&dir)
        .expect("reopen");
    verify(&outcome, counts(), &|k| cache.get(k).expect("get"), &|k| {
        cache.get_counter(k).expect("get_counter")
    });
    let report = cache.check(false).expect("check");
    assert!(report.ok, "check after contention: {report:?}");
    assert_eq!(
        value_files(&dir).len() as u64,
        file_backed_rows(&dir),
        "value files vs file-backed rows"
    );
}

#[test]
fn eight_processes_racing_to_create_the_store() {
    // No pre-creation: all workers open a directory that does not exist yet.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fresh");
    let n = [20, 20, 5, 50];
    let outcome = run_workers(&dir, n, &[]);
    let cache = Cache::open(&dir).expect("reopen");
    verify(&outcome, n, &|k| cache.get(k).expect("get"), &|k| {
        cache.get_counter(k).expect("get_counter")
    });
    assert!(cache.check(false).expect("check").ok);
}

#[test]
fn eight_processes_on_one_fanout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fanout");
    drop(
        FanoutCache::builder()
            .shards(8)
            .file_threshold(SMALL_THRESHOLD)
            .open(&dir)
            .expect("create fanout"),
    );
    let outcome = run_workers(&dir, counts(), &["fanout", "8"]);
    let cache = FanoutCache::builder()
        .shards(8)
        .file_threshold(SMALL_THRESHOLD)
        .open(&dir)
        .expect("reopen");
    verify(&outcome, counts(), &|k| cache.get(k).expect("get"), &|k| {
        cache.get_counter(k).expect("get_counter")
    });
    let report = cache.check(false).expect("check");
    assert!(report.ok, "check after contention: {report:?}");
    for i in 0..8 {
        let shard = dir.join(format!("{i:03}"));
        assert_eq!(
            value_files(&shard).len() as u64,
            file_backed_rows(&shard),
            "shard {i}: value files vs file-backed rows"
        );
    }
}

#[test]
fn eight_processes_racing_to_create_a_fanout() {
    // All workers create the fanout directory (marker and shard stores) at once.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fresh-fanout");
    let n = [20, 20, 5, 50];
    let outcome = run_workers(&dir, n, &["fanout", "8"]);
    let cache = FanoutCache::open(&dir).expect("reopen");
    assert_eq!(cache.shard_count(), 8);
    verify(&outcome, n, &|k| cache.get(k).expect("get"), &|k| {
        cache.get_counter(k).expect("get_counter")
    });
    assert!(cache.check(false).expect("check").ok);
}

/// A process killed while it holds the write lock inside a transaction (and with it the
/// writers' turnstile) hands both on: the next writer of another process gets them
/// instead of waiting its whole busy timeout and failing with `Busy`, and nothing of the
/// killed transaction is there.
#[test]
fn a_writer_killed_holding_the_write_lock_hands_it_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    Cache::open(&store)
        .expect("create")
        .set("before", b"1")
        .expect("set");
    let mut child = Command::new(env!("CARGO_BIN_EXE_disk_worker"))
        .args(["hold", store.to_str().expect("utf-8 path"), "doomed"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn disk_worker");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(
        line.trim(),
        "HOLDING",
        "the child did not get to hold the lock"
    );
    // SQLite's own locks go with the process; the turnstile must too.
    child.kill().expect("kill");
    child.wait().expect("wait");
    let cache = Cache::builder()
        .busy_timeout(Duration::from_secs(5))
        .open(&store)
        .expect("reopen");
    cache
        .set("after", b"2")
        .expect("the next writer gets the lock");
    assert_eq!(cache.get("doomed").expect("get"), None);
    assert_eq!(
        cache.get("before").expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert!(
        store.join(".sciqlop-cache.writers").exists(),
        "writers queue through the turnstile file"
    );
}
