//! Multi-process worker: one of N processes hammering one store directory.
//!
//! Usage: `mp_worker DIR ID GO_FILE COUNTER_FILE INCRS ADD_ROUNDS LOCKS MIXED [fanout SHARDS]`
//!
//! Waits for `GO_FILE` to exist (so all workers start together), then runs four phases:
//! - `INCRS` × `incr("counter")` and `incr("per/ID")`;
//! - `ADD_ROUNDS` × `add("race/R", ID)`, printing `WIN R` for each round it won;
//! - `LOCKS` × under `lock("mutex")`, a read-modify-write of the plain file
//!   `COUNTER_FILE` (lost updates would show if two processes held the lock at once);
//! - `MIXED` random operations (set/get/delete/pop/transact/incr) on small and
//!   file-backed values, every value read checked to be a valid payload of its key.
//!
//! Prints `PHASE name ops micros` per phase. Any error is printed on stderr and ends the
//! process with status 1.

use std::path::Path;
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, Error, FanoutCache};
use sciqlop_cache_tests::{SMALL_THRESHOLD, parse_payload, payload};

/// The operations the worker needs, on a plain store or on a fanout.
trait Target {
    fn incr(&self, key: &str) -> Result<i64, Error>;
    fn add(&self, key: &str, v: &[u8]) -> Result<bool, Error>;
    fn set(&self, key: &str, v: &[u8]) -> Result<(), Error>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn delete(&self, key: &str) -> Result<bool, Error>;
    fn pop(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Sets both keys in one transaction (they must share a shard on a fanout).
    fn set_pair(&self, a: &str, b: &str, version: u64) -> Result<(), Error>;
    /// Runs `f` under the cross-process lock `name`.
    fn with_lock(&self, name: &str, f: &mut dyn FnMut()) -> Result<(), Error>;
}

impl Target for Cache {
    fn incr(&self, key: &str) -> Result<i64, Error> {
        Cache::incr(self, key, 1, 0)
    }
    fn add(&self, key: &str, v: &[u8]) -> Result<bool, Error> {
        Cache::add(self, key, v)
    }
    fn set(&self, key: &str, v: &[u8]) -> Result<(), Error> {
        Cache::set(self, key, v)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Cache::get(self, key)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        Cache::delete(self, key)
    }
    fn pop(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Cache::pop(self, key)
    }
    fn set_pair(&self, a: &str, b: &str, version: u64) -> Result<(), Error> {
        self.transact(|tx| {
            tx.set(a, payload(a, version))?;
            tx.set(b, payload(b, version))
        })
    }
    fn with_lock(&self, name: &str, f: &mut dyn FnMut()) -> Result<(), Error> {
        let guard = self.lock(name, Duration::from_secs(120))?;
        f();
        guard.release()
    }
}

impl Target for FanoutCache {
    fn incr(&self, key: &str) -> Result<i64, Error> {
        (**self).incr(key, 1, 0)
    }
    fn add(&self, key: &str, v: &[u8]) -> Result<bool, Error> {
        (**self).add(key, v)
    }
    fn set(&self, key: &str, v: &[u8]) -> Result<(), Error> {
        (**self).set(key, v)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        (**self).get(key)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        (**self).delete(key)
    }
    fn pop(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        (**self).pop(key)
    }
    fn set_pair(&self, a: &str, b: &str, version: u64) -> Result<(), Error> {
        // A transaction spans one shard: pair `a` with `b` only when they share it.
        let count = self.shard_count();
        let same =
            sciqlop_cache::fanout::shard_of(a, count) == sciqlop_cache::fanout::shard_of(b, count);
        self.transact(a, |tx| {
            tx.set(a, payload(a, version))?;
            if same {
                tx.set(b, payload(b, version))?;
            } else {
                match tx.set(b, payload(b, version)) {
                    Err(Error::WrongShard { .. }) => {}
                    other => fail("transact", &format!("key of another shard: {other:?}")),
                }
            }
            Ok(())
        })
    }
    fn with_lock(&self, name: &str, f: &mut dyn FnMut()) -> Result<(), Error> {
        let guard = self.lock(name, Duration::from_secs(120))?;
        f();
        guard.release()
    }
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("worker error in {what}: {e}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 9 && args.len() != 11 {
        eprintln!(
            "usage: mp_worker DIR ID GO_FILE COUNTER_FILE INCRS ADD_ROUNDS LOCKS MIXED [fanout SHARDS]"
        );
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let id: u64 = args[2].parse().expect("ID");
    let go = Path::new(&args[3]);
    let counter_file = Path::new(&args[4]);
    let n: Vec<u64> = args[5..9]
        .iter()
        .map(|a| a.parse().expect("count"))
        .collect();
    let target: Box<dyn Target> = if args.len() == 11 {
        let shards: u32 = args[10].parse().expect("SHARDS");
        Box::new(
            FanoutCache::builder()
                .shards(shards)
                .file_threshold(SMALL_THRESHOLD)
                .open(dir)
                .unwrap_or_else(|e| fail("open", &e)),
        )
    } else {
        Box::new(
            Cache::builder()
                .file_threshold(SMALL_THRESHOLD)
                .open(dir)
                .unwrap_or_else(|e| fail("open", &e)),
        )
    };
    run(&*target, id, go, counter_file, &n);
}

fn run(t: &dyn Target, id: u64, go: &Path, counter_file: &Path, n: &[u64]) {
    let start_wait = Instant::now();
    while !go.exists() {
        if start_wait.elapsed() > Duration::from_secs(120) {
            fail("start", &"the go file never appeared");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let phase = |name: &str, ops: u64, t0: Instant| {
        println!("PHASE {name} {ops} {}", t0.elapsed().as_micros());
    };

    let t0 = Instant::now();
    let per = format!("per/{id}");
    for _ in 0..n[0] {
        t.incr("counter").unwrap_or_else(|e| fail("incr", &e));
        t.incr(&per).unwrap_or_else(|e| fail("incr", &e));
    }
    phase("incr", 2 * n[0], t0);

    let t0 = Instant::now();
    for r in 0..n[1] {
        if t.add(&format!("race/{r}"), id.to_string().as_bytes())
            .unwrap_or_else(|e| fail("add", &e))
        {
            println!("WIN {r}");
        }
    }
    phase("add", n[1], t0);

    let t0 = Instant::now();
    for _ in 0..n[2] {
        let mut io_err: Option<std::io::Error> = None;
        t.with_lock("mutex", &mut || {
            let r = (|| -> std::io::Result<()> {
                let text = std::fs::read_to_string(counter_file)?;
                let v: u64 = text.trim().parse().map_err(std::io::Error::other)?;
                // Widen the window a broken lock would let another process into.
                std::thread::yield_now();
                std::fs::write(counter_file, format!("{}\n", v + 1))
            })();
            io_err = r.err();
        })
        .unwrap_or_else(|e| fail("lock", &e));
        if let Some(e) = io_err {
            fail("counter file under lock", &e);
        }
    }
    phase("lock", n[2], t0);

    let t0 = Instant::now();
    let mut rng = fastrand::Rng::with_seed(id);
    let mut version = id * 1_000_000_000;
    let mut counter_incrs = 0u64;
    let any_key = |rng: &mut fastrand::Rng| format!("m/{}/{}", rng.u64(..8), rng.u8(..16));
    for _ in 0..n[3] {
        version += 2;
        let own = format!("m/{id}/{}", rng.u8(..16));
        match rng.u8(..10) {
            0..=2 => t
                .set(&own, &payload(&own, version))
                .unwrap_or_else(|e| fail("set", &e)),
            3..=5 => {
                let k = any_key(&mut rng);
                if let Some(v) = t.get(&k).unwrap_or_else(|e| fail("get", &e))
                    && parse_payload(&k, &v).is_none()
                {
                    fail("get", &format!("key {k} holds bytes that no writer wrote"));
                }
            }
            6 => {
                t.delete(&own).unwrap_or_else(|e| fail("delete", &e));
            }
            7 => {
                let k = any_key(&mut rng);
                if let Some(v) = t.pop(&k).unwrap_or_else(|e| fail("pop", &e))
                    && parse_payload(&k, &v).is_none()
                {
                    fail("pop", &format!("key {k} held bytes that no writer wrote"));
                }
            }
            8 => {
                let other = format!("m/{id}/{}", rng.u8(..16));
                t.set_pair(&own, &other, version)
                    .unwrap_or_else(|e| fail("transact", &e));
            }
            _ => {
                t.incr(&format!("c/{}", rng.u8(..4)))
                    .unwrap_or_else(|e| fail("incr (mixed)", &e));
                counter_incrs += 1;
            }
        }
    }
    println!("CINCR {counter_incrs}");
    phase("mixed", n[3], t0);
}
