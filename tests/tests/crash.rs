//! Crash safety: a child writes small and file-backed values (sets, deletes, committed
//! and rolled-back transactions) and is SIGKILLed at a random moment, over and over.
//! After each kill the parent proves that the store opens, that every acknowledged
//! write is there byte for byte, that no acknowledged delete came back, that the one
//! operation possibly in flight is either wholly applied or not at all (transactions
//! included), that no rolled-back transaction left a trace, and that `check` finds only
//! what a crash may legitimately leave (orphan files), repairs it, and then reports ok
//! with as many value files as file-backed rows.
//!
//! The same runs with four writer threads in the child, whose autocommit writes meet in
//! group commits: each thread's acknowledged writes are there, and each thread's write
//! in flight is wholly applied or not at all.
//!
//! `CRASH_CYCLES=5000 cargo test -p sciqlop-cache-tests --test crash -- --nocapture`
//! runs more cycles (default 200 with one thread, 100 with four).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sciqlop_cache::Cache;
use sciqlop_cache_tests::{
    CRASH_KEYS, LineReader, SMALL_THRESHOLD, crash_key, describe, env_usize, file_backed_rows,
    payload, temp_files, value_files,
};

/// The state the parent expects: key → version (None: absent).
type Model = BTreeMap<String, Option<u64>>;

#[derive(Debug, Clone)]
enum Op {
    Set(String, u64),
    Delete(String),
    /// (version, sets, deletes, rolls back)
    Tx(u64, Vec<String>, Vec<String>, bool),
}

fn parse_keys(s: &str) -> Vec<String> {
    if s == "-" {
        Vec::new()
    } else {
        s.split(',').map(str::to_owned).collect()
    }
}

fn parse_op(line: &str) -> Op {
    let t: Vec<&str> = line.split(' ').collect();
    match t[..] {
        ["I", "S", k, v] => Op::Set(k.to_owned(), v.parse().expect("version")),
        ["I", "D", k] => Op::Delete(k.to_owned()),
        ["I", kind @ ("T" | "R"), v, sets, dels] => Op::Tx(
            v.parse().expect("version"),
            parse_keys(sets),
            parse_keys(dels),
            kind == "R",
        ),
        _ => panic!("unexpected line from the writer: {line:?}"),
    }
}

/// What `op` does to the model when it takes effect.
fn effects(op: &Op) -> Vec<(String, Option<u64>)> {
    match op {
        Op::Set(k, v) => vec![(k.clone(), Some(*v))],
        Op::Delete(k) => vec![(k.clone(), None)],
        Op::Tx(_, _, _, true) => Vec::new(),
        Op::Tx(v, sets, dels, false) => sets
            .iter()
            .map(|k| (k.clone(), Some(*v)))
            .chain(dels.iter().map(|k| (k.clone(), None)))
            .collect(),
    }
}

#[derive(Default)]
struct Tally {
    acked: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    orphans_repaired: u64,
    killed_before_first_ack: u64,
}

fn open(dir: &std::path::Path) -> Cache {
    Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
        .expect("the store opens after a crash")
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    crash_cycles(1, env_usize("CRASH_CYCLES", 200));
}

#[test]
fn sigkill_during_group_commits_loses_nothing_acknowledged() {
    crash_cycles(4, env_usize("CRASH_CYCLES", 100));
}

/// Runs `cycles` kill-and-verify cycles of a child with `threads` writer threads.
fn crash_cycles(threads: usize, cycles: usize) {
    let worker = env!("CARGO_BIN_EXE_crash_writer");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let seed = fastrand::u64(..);
    println!(
        "crash test: seed {seed}, {cycles} cycles, {threads} writer thread(s), dir {}",
        dir.display()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model: Model = (0..threads)
        .flat_map(|t| (0..CRASH_KEYS).map(move |i| (crash_key(t, i), None)))
        .collect();
    let mut tally = Tally::default();
    let started = Instant::now();

    for cycle in 0..cycles {
        let first_version = (cycle as u64 + 1) * 10_000_000;
        let mut child = Command::new(worker)
            .arg(&dir)
            .arg(first_version.to_string())
            .arg(rng.u64(..).to_string())
            .arg(threads.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let reader = LineReader::spawn(child.stdout.take().expect("stdout"));
        let errs = LineReader::spawn(child.stderr.take().expect("stderr"));
        // Mostly short lives (tens of ms), sometimes very short (killed while opening),
        // sometimes longer.
        // With several writer threads, a little longer (the child opens, then starts
        // its threads).
        let delay = match rng.u8(..10) {
            0 => rng.u64(0..5),
            1 => rng.u64(40..120),
            _ => rng.u64(5..40),
        } * if threads > 1 { 2 } else { 1 };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("wait for the writer");
        let lines = reader.lines();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "cycle {cycle}: the writer ended by itself ({status}) before being killed; stderr:\n{}",
            errs.lines().join("\n")
        );

        // Apply acknowledged operations; find each thread's one in flight.
        let mut pending: Vec<Option<Op>> = vec![None; threads];
        let mut acked_this_cycle = 0;
        for line in &lines {
            let (t, line) = line
                .split_once(' ')
                .and_then(|(t, rest)| Some((t.parse::<usize>().ok()?, rest)))
                .filter(|(t, _)| *t < threads)
                .unwrap_or_else(|| panic!("cycle {cycle}: unexpected line {line:?}"));
            if line == "A" {
                let op = pending[t].take().unwrap_or_else(|| {
                    panic!("cycle {cycle}: thread {t}: ack without an operation")
                });
                for (k, v) in effects(&op) {
                    model.insert(k, v);
                }
                tally.acked += 1;
                acked_this_cycle += 1;
            } else {
                assert!(
                    pending[t].is_none(),
                    "cycle {cycle}: thread {t}: two operations announced without ack"
                );
                pending[t] = Some(parse_op(line));
            }
        }
        if acked_this_cycle == 0 {
            tally.killed_before_first_ack += 1;
        }

        let cache = open(&dir);
        let mut actual: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for k in model.keys() {
            let v = cache
                .get(k)
                .unwrap_or_else(|e| panic!("cycle {cycle}: get({k}) after the crash: {e}"));
            actual.insert(k.clone(), v);
        }
        let matches = |k: &str, want: Option<u64>| -> bool {
            match (want, actual.get(k).and_then(Option::as_deref)) {
                (None, None) => true,
                (Some(v), Some(bytes)) => bytes == payload(k, v),
                _ => false,
            }
        };

        // Each operation in flight: all of its effects, or none of them.
        let mut inflight_keys: Vec<String> = Vec::new();
        for op in pending.iter().flatten() {
            let eff = effects(op);
            inflight_keys.extend(eff.iter().map(|(k, _)| k.clone()));
            let all_new = eff.iter().all(|(k, v)| matches(k, *v));
            let all_old = eff.iter().all(|(k, _)| matches(k, model[k]));
            assert!(
                all_new || all_old,
                "cycle {cycle}: operation in flight at the kill is half-applied: {op:?}\n{}",
                eff.iter()
                    .map(|(k, v)| format!(
                        "  {k}: before {:?}, op {:?}, found {}",
                        model[k],
                        v,
                        describe(k, actual[k].as_deref())
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if all_new && !all_old {
                tally.in_flight_applied += 1;
                for (k, v) in eff {
                    model.insert(k, v);
                }
            } else {
                tally.in_flight_not_applied += 1;
            }
        }
        // Everything else: exactly the acknowledged state.
        for (k, want) in &model {
            if inflight_keys.contains(k) {
                continue;
            }
            assert!(
                matches(k, *want),
                "cycle {cycle}: key {k}: acknowledged {}, found {} (ops in flight: {pending:?})",
                match want {
                    Some(v) => format!("version {v}"),
                    None => "absent (deleted or never set)".to_owned(),
                },
                describe(k, actual[k].as_deref())
            );
        }
        assert_eq!(
            cache.len().expect("len"),
            model.values().filter(|v| v.is_some()).count() as u64,
            "cycle {cycle}: len"
        );
        let size: u64 = model
            .iter()
            .filter_map(|(k, v)| v.map(|v| payload(k, v).len() as u64))
            .sum();
        assert_eq!(cache.size().expect("size"), size, "cycle {cycle}: size");

        // A crash may leave orphan files, nothing else.
        let fixed = cache.check(true).expect("check(true)");
        assert!(
            fixed.sqlite_integrity_ok
                && fixed.counters_consistent
                && fixed.dangling_rows == 0
                && fixed.size_mismatches == 0,
            "cycle {cycle}: crash left more than orphan files: {fixed:?}"
        );
        assert!(fixed.ok, "cycle {cycle}: check(true) not ok: {fixed:?}");
        tally.orphans_repaired += fixed.orphaned_files;
        let clean = cache.check(false).expect("check(false)");
        assert!(
            clean.ok && clean.orphaned_files == 0,
            "cycle {cycle}: check(false) after repair: {clean:?}"
        );
        let temps = temp_files(&dir);
        assert!(
            temps.is_empty(),
            "cycle {cycle}: temporary files survive check(true): {temps:?}"
        );
        let files = value_files(&dir).len() as u64;
        let rows = file_backed_rows(&dir);
        assert_eq!(
            files, rows,
            "cycle {cycle}: {files} value files for {rows} file-backed rows after check(true)"
        );
        drop(cache);
    }
    println!(
        "crash test ({threads} thread(s)): {cycles} cycles in {:.1?}: {} acknowledged ops \
         verified, in-flight op applied {} / not applied {} times, {} kills before the first \
         ack, {} orphan files repaired by check(true)",
        started.elapsed(),
        tally.acked,
        tally.in_flight_applied,
        tally.in_flight_not_applied,
        tally.killed_before_first_ack,
        tally.orphans_repaired,
    );
}
