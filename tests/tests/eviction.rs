//! Eviction under load: writers keep writing far past `max_size` while readers read a hot
//! set continuously. Proves that the store comes back under the bound (bounded wait, no
//! timing asserted), that the hot set survives (no read of a hot key ever misses), and
//! that the cold entries evicted are the least recently used: for each writer, the cold
//! keys that survive are exactly its most recent writes (no evicted key was written
//! after a surviving one), across writers the evicted keys are older than the survivors
//! (up to the writes in flight together), the newest write survives, and eviction did
//! not throw away far more than needed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, DEFAULT_FILE_THRESHOLD, FanoutCache};
use sciqlop_cache_tests::{env_usize, parse_payload, payload};

const MAX: u64 = 4_000_000;
const HOT: usize = 16;
const WRITERS: u64 = 2;
const READERS: usize = 2;

/// The operations the workload needs, on a plain store or a fanout.
trait Bounded: Sync {
    fn set(&self, k: &str, v: &[u8]);
    fn get(&self, k: &str) -> Option<Vec<u8>>;
    fn contains(&self, k: &str) -> bool;
    fn size(&self) -> u64;
    fn check_ok(&self) -> bool;
    /// The independently evicted part (shard) holding `k`.
    fn part(&self, k: &str) -> u32;
}

impl Bounded for Cache {
    fn set(&self, k: &str, v: &[u8]) {
        Cache::set(self, k, v).expect("set under load");
    }
    fn get(&self, k: &str) -> Option<Vec<u8>> {
        Cache::get(self, k).expect("get under load")
    }
    fn contains(&self, k: &str) -> bool {
        Cache::contains(self, k).expect("contains")
    }
    fn size(&self) -> u64 {
        Cache::size(self).expect("size")
    }
    fn check_ok(&self) -> bool {
        self.check(false).expect("check").ok
    }
    fn part(&self, _: &str) -> u32 {
        0
    }
}

impl Bounded for FanoutCache {
    fn set(&self, k: &str, v: &[u8]) {
        (**self).set(k, v).expect("set under load");
    }
    fn get(&self, k: &str) -> Option<Vec<u8>> {
        (**self).get(k).expect("get under load")
    }
    fn contains(&self, k: &str) -> bool {
        (**self).contains(k).expect("contains")
    }
    fn size(&self) -> u64 {
        (**self).size().expect("size")
    }
    fn check_ok(&self) -> bool {
        self.check(false).expect("check").ok
    }
    fn part(&self, k: &str) -> u32 {
        sciqlop_cache::fanout::shard_of(k, self.shard_count())
    }
}

fn cold_key(w: u64, i: u64) -> String {
    format!("cold/{w}/{i:06}")
}

/// The two scenarios load both cores on their own: run them one at a time, so neither
/// starves the other's hot readers (which would make their keys truly least recent).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(store: &dyn Bounded, label: &str) {
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let scale = env_usize("EVICT_SCALE", 1) as u64;
    let per_writer_bytes = 3 * MAX * scale;
    for h in 0..HOT {
        let k = format!("hot/{h}");
        store.set(&k, &payload(&k, 1));
    }
    let done = AtomicBool::new(false);
    let hot_reads = AtomicU64::new(0);
    let hot_misses = AtomicU64::new(0);
    let max_seen = AtomicU64::new(0);
    let written: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    // Global completion order of the cold writes, per writer.
    let seq = AtomicU64::new(0);
    let mut seqs: Vec<Vec<u64>> = Vec::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        for r in 0..READERS {
            let (done, hot_reads, hot_misses) = (&done, &hot_reads, &hot_misses);
            s.spawn(move || {
                let mut i = r;
                while !done.load(Ordering::Relaxed) {
                    let k = format!("hot/{}", i % HOT);
                    match store.get(&k) {
                        Some(v) => assert_eq!(parse_payload(&k, &v), Some(1), "hot value {k}"),
                        None => {
                            hot_misses.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    hot_reads.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (written, max_seen, seq) = (&written, &max_seen, &seq);
                s.spawn(move || {
                    let mut bytes = 0;
                    let mut i = 0;
                    let mut order = Vec::new();
                    while bytes < per_writer_bytes {
                        let k = cold_key(w, i);
                        // Mixed sizes: inline and file-backed values.
                        let len = if i % 3 == 0 {
                            DEFAULT_FILE_THRESHOLD + 4096
                        } else {
                            3_000
                        };
                        store.set(&k, &vec![(i % 251) as u8; len]);
                        bytes += len as u64;
                        i += 1;
                        order.push(seq.fetch_add(1, Ordering::SeqCst));
                        written[w as usize].store(i, Ordering::Relaxed);
                        if i % 64 == 0 {
                            max_seen.fetch_max(store.size(), Ordering::Relaxed);
                        }
                    }
                    order
                })
            })
            .collect();
        for w in writers {
            seqs.push(w.join().expect("writer"));
        }
        done.store(true, Ordering::Relaxed);
    });
    let load_time = started.elapsed();

    // Bounded wait for the background eviction to finish its work.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut size = store.size();
    while size > MAX && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        size = store.size();
    }
    let total_writes: u64 = written.iter().map(|w| w.load(Ordering::Relaxed)).sum();
    println!(
        "{label}: {} cold writes ({} MB) in {load_time:.2?} ({:.0} writes/s) with {} hot reads; \
         largest size seen during load {:.2} MB (bound {:.2} MB); final size {:.2} MB",
        total_writes,
        WRITERS * per_writer_bytes / 1_000_000,
        total_writes as f64 / load_time.as_secs_f64(),
        hot_reads.load(Ordering::Relaxed),
        max_seen.load(Ordering::Relaxed) as f64 / 1e6,
        MAX as f64 / 1e6,
        size as f64 / 1e6
    );
    assert!(
        size <= MAX,
        "{label}: size {size} still above the bound {MAX} 10 s after the load stopped"
    );
    assert!(
        size > MAX / 2,
        "{label}: eviction went far below the bound (size {size}, bound {MAX})"
    );
    assert_eq!(
        hot_misses.load(Ordering::Relaxed),
        0,
        "{label}: reads of the continuously read hot set missed"
    );
    for h in 0..HOT {
        assert!(
            store.contains(&format!("hot/{h}")),
            "{label}: hot/{h} evicted"
        );
    }
    // Per shard (each shard evicts on its own): the cold keys evicted are older than the
    // ones that survive. Exact per writer (its survivors are a suffix of its writes);
    // across writers, completion order may differ from recency by the writes in flight
    // at the same moment, so at most WRITERS inversions are allowed.
    let mut parts: std::collections::BTreeMap<u32, Vec<(u64, u64, u64, bool)>> = Default::default();
    for w in 0..WRITERS {
        for (i, s) in seqs[w as usize].iter().enumerate() {
            let k = cold_key(w, i as u64);
            parts
                .entry(store.part(&k))
                .or_default()
                .push((*s, w, i as u64, store.contains(&k)));
        }
    }
    let mut evicted_total = 0;
    let newest = parts.values().flatten().max().expect("cold writes");
    assert!(
        newest.3,
        "{label}: the newest write {} was evicted",
        cold_key(newest.1, newest.2)
    );
    for (part, mut keys) in parts {
        for w in 0..WRITERS {
            let mine: Vec<&(u64, u64, u64, bool)> = keys.iter().filter(|k| k.1 == w).collect();
            if let Some(first_alive) = mine.iter().position(|k| k.3) {
                let holes: Vec<u64> = mine[first_alive..]
                    .iter()
                    .filter(|k| !k.3)
                    .map(|k| k.2)
                    .take(10)
                    .collect();
                assert!(
                    holes.is_empty(),
                    "{label}: writer {w}, shard {part}: keys #{holes:?} evicted although older \
                     key {} survived (not LRU)",
                    cold_key(w, mine[first_alive].2)
                );
            }
        }
        keys.sort_unstable();
        let oldest_alive = keys.iter().position(|k| k.3).unwrap_or(keys.len());
        let inversions = keys[oldest_alive..].iter().filter(|k| !k.3).count();
        assert!(
            inversions <= WRITERS as usize,
            "{label}: shard {part}: {inversions} cold keys evicted although written after the \
             oldest survivor (not LRU)"
        );
        evicted_total += keys.iter().filter(|k| !k.3).count();
    }
    assert!(evicted_total > 0, "{label}: nothing was evicted");
    assert!(store.check_ok(), "{label}: check after eviction");
}

#[test]
fn eviction_under_load_keeps_the_hot_set_and_evicts_lru() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::builder()
        .max_size(MAX)
        .maintenance_interval(Duration::from_millis(20))
        .open(dir.path())
        .expect("open");
    run(&cache, "cache");
}

#[test]
fn fanout_eviction_under_load_keeps_the_hot_set_and_evicts_lru() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FanoutCache::builder()
        .shards(4)
        .max_size(MAX)
        .maintenance_interval(Duration::from_millis(20))
        .open(dir.path())
        .expect("open");
    run(&cache, "fanout (4 shards)");
}
