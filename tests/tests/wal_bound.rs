//! The WAL stays bounded whatever the number of writer processes, and is truncated back
//! once writes pause (issue: four processes looping `set` grew it to 1.1 GiB in 15 s).
//!
//! `WAL_PROCS` (default 8) and `WAL_SECS` (default 15) set the load; the long run of the
//! issue is `WAL_SECS=600 cargo test -p sciqlop-cache-tests --release --test wal_bound
//! -- --nocapture`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sciqlop_cache::Cache;
use sciqlop_cache_tests::{DB_FILE, LineReader, env_usize};

/// The bound documented in the README: a few MiB plus slack for the frames written
/// while a blocking checkpoint waits for the other writers.
const WAL_BOUND: u64 = 16 << 20;

fn wal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(format!("{DB_FILE}-wal"))).map_or(0, |m| m.len())
}

/// Bytes of the files under `dir` (files vanishing meanwhile are skipped).
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
        .map(|(p, m)| if m.is_dir() { du(&p) } else { m.len() })
        .sum()
}

/// The tests run one at a time: each loads the machine with its writer processes.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `procs` writers for `secs` seconds; returns (largest WAL seen, largest disk use
/// seen, total sets).
fn run(dir: &Path, procs: usize, secs: u64, value: usize, max_size: u64) -> (u64, u64, u64) {
    let children: Vec<_> = (0..procs)
        .map(|_| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_wal_writer"))
                .arg(dir)
                .args([secs, value as u64, max_size, 100].map(|n| n.to_string()))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn wal_writer");
            let out = LineReader::spawn(c.stdout.take().expect("stdout"));
            (c, out)
        })
        .collect();
    let (mut max_wal, mut max_du) = (0, 0);
    let end = Instant::now() + Duration::from_secs(secs) + Duration::from_millis(500);
    while Instant::now() < end {
        max_wal = max_wal.max(wal_len(dir));
        if dir.exists() {
            max_du = max_du.max(du(dir));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sets = 0;
    for (mut c, out) in children {
        let status = c.wait().expect("wait");
        let lines = out.lines();
        assert!(status.success(), "a writer failed: {status}; {lines:?}");
        for l in lines {
            if let Some(n) = l.strip_prefix("SETS ") {
                sets += n.parse::<u64>().expect("count");
            }
        }
    }
    max_wal = max_wal.max(wal_len(dir));
    (max_wal, max_du, sets)
}

fn settle_and_check(dir: &Path, what: &str) {
    // Once writers pause, a handle's background thread copies the WAL back and
    // truncates it.
    let cache = Cache::open(dir).expect("open");
    cache.set("wake", b"1").expect("set");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal_len(dir) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        wal_len(dir),
        0,
        "{what}: WAL not truncated once writes paused"
    );
    let report = cache.check(false).expect("check");
    assert!(report.ok, "{what}: {report:?}");
}

#[test]
fn wal_stays_bounded_with_many_writer_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let procs = env_usize("WAL_PROCS", 8);
    let secs = env_usize("WAL_SECS", 15) as u64;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (max_wal, max_du, sets) = run(&dir, procs, secs, 200, 0);
    println!(
        "{procs} writer processes × {secs} s, 200 B values: {sets} sets, largest WAL {:.1} MiB, largest store {:.1} MiB",
        max_wal as f64 / 1048576.0,
        max_du as f64 / 1048576.0
    );
    assert!(sets > 0);
    assert!(
        max_wal <= WAL_BOUND,
        "WAL reached {max_wal} bytes (bound {WAL_BOUND})"
    );
    settle_and_check(&dir, "200 B values");
}

#[test]
fn disk_use_stays_near_max_size_with_file_values() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let procs = env_usize("WAL_PROCS", 8);
    let secs = (env_usize("WAL_SECS", 15) as u64 / 2).max(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let max_size = 1 << 20;
    let (max_wal, max_du, sets) = run(&dir, procs, secs, 100_000, max_size);
    println!(
        "{procs} writer processes × {secs} s, 100 KB values, max_size 1 MiB: {sets} sets, largest WAL {:.1} MiB, largest store {:.1} MiB",
        max_wal as f64 / 1048576.0,
        max_du as f64 / 1048576.0
    );
    assert!(max_wal <= WAL_BOUND, "WAL reached {max_wal} bytes");
    // Values in files are bounded by max_size plus what eviction has not caught up with
    // yet (each process may be one batch ahead), the database and the WAL.
    let bound = max_size + WAL_BOUND + 8 * (procs as u64) * 100_000 + (4 << 20);
    assert!(
        max_du <= bound,
        "the store used {max_du} bytes (bound {bound})"
    );
    settle_and_check(&dir, "100 KB values");
}
