//! Crash-test child: writes small and file-backed values (set, delete, transactions that
//! commit and transactions that roll back) to a store until it is killed, reporting on
//! stdout each operation before it starts (`I …`) and after it returned (`A`).
//!
//! Usage: `crash_writer DIR FIRST_VERSION SEED [THREADS]`. Versions are
//! `FIRST_VERSION`, `FIRST_VERSION + 1`, …: unique across the parent's cycles, so the
//! parent can tell exactly which write a stored value comes from. With `THREADS`
//! writers (default: one), thread `t` writes its own keys ([`crash_key`]) with versions
//! starting at `FIRST_VERSION` plus `t` million: their autocommit writes meet in group
//! commits.
//!
//! Lines (one `write` each, flushed), each prefixed with the thread's number and a space:
//! - `I S key ver`       set key to payload(key, ver)
//! - `I D key`           delete key
//! - `I T ver s1,s2 d1`  transaction: set s* to payload(s*, ver), delete d* (`-`: none)
//! - `I R ver s1,s2 d1`  the same transaction, which then returns Err (rolled back)
//! - `A`                 the last announced operation returned as expected

use std::io::Write;
use std::time::Duration;

use sciqlop_cache::{Cache, Error};
use sciqlop_cache_tests::{CRASH_KEYS, SMALL_THRESHOLD, crash_key, payload};

fn say(thread: usize, line: &str) {
    let mut l = std::io::stdout().lock();
    // One write per line; a parent that went away ends the child.
    if l.write_all(format!("{thread} {line}\n").as_bytes())
        .and_then(|()| l.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

fn keys_list(ks: &[String]) -> String {
    if ks.is_empty() {
        "-".to_owned()
    } else {
        ks.join(",")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, first, seed, threads) = match &args[..] {
        [_, dir, first, seed] => (dir, first, seed, 1),
        [_, dir, first, seed, threads] => (dir, first, seed, threads.parse().expect("THREADS")),
        _ => {
            eprintln!("usage: crash_writer DIR FIRST_VERSION SEED [THREADS]");
            std::process::exit(2);
        }
    };
    let first: u64 = first.parse().expect("FIRST_VERSION");
    let seed: u64 = seed.parse().expect("SEED");
    let cache = Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .maintenance_interval(Duration::from_millis(3))
        .open(dir)
        .expect("open the store");
    std::thread::scope(|s| {
        for t in 0..threads {
            let cache = &cache;
            s.spawn(move || write(cache, t, first + t as u64 * 1_000_000, seed + t as u64));
        }
    });
}

/// The writes of thread `t`, until the process is killed.
fn write(cache: &Cache, t: usize, mut version: u64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let key = |rng: &mut fastrand::Rng| crash_key(t, rng.usize(..CRASH_KEYS));
    for _ in 0..1_000_000 {
        version += 1;
        match rng.u8(..10) {
            0..=4 => {
                let k = key(&mut rng);
                say(t, &format!("I S {k} {version}"));
                cache.set(&k, payload(&k, version)).expect("set");
            }
            5..=6 => {
                let k = key(&mut rng);
                say(t, &format!("I D {k}"));
                cache.delete(&k).expect("delete");
            }
            n => {
                let rollback = n == 9;
                let mut sets: Vec<String> = (0..rng.usize(1..5)).map(|_| key(&mut rng)).collect();
                sets.sort();
                sets.dedup();
                let mut dels: Vec<String> = (0..rng.usize(0..3))
                    .map(|_| key(&mut rng))
                    .filter(|k| !sets.contains(k))
                    .collect();
                dels.sort();
                dels.dedup();
                say(
                    t,
                    &format!(
                        "I {} {version} {} {}",
                        if rollback { "R" } else { "T" },
                        keys_list(&sets),
                        keys_list(&dels)
                    ),
                );
                let r: Result<(), Error> = cache.transact(|tx| {
                    for k in &sets {
                        tx.set(k, payload(k, version))?;
                    }
                    for k in &dels {
                        tx.delete(k)?;
                    }
                    if rollback {
                        return Err(Error::InvalidArgument("deliberate rollback".into()));
                    }
                    Ok(())
                });
                match (rollback, r) {
                    (false, Ok(())) => {}
                    (true, Err(Error::InvalidArgument(_))) => {}
                    (_, r) => panic!("transaction: unexpected {r:?}"),
                }
            }
        }
        say(t, "A");
    }
}
