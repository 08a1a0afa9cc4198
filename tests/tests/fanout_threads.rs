//! Multi-thread smoke over the fanout form, and its on-disk promises.
//!
//! Proves: with 8 threads on one `FanoutCache`, incr totals are exact, each `add` race has
//! one winner, transactions on one shard are all-or-nothing under concurrency (a pair of
//! keys of one shard is always seen with equal versions), keys of another shard inside a
//! transaction fail with `WrongShard` and roll back with it, the result checks clean;
//! reopening with another shard count is `ShardCountMismatch` and loses nothing;
//! `FanoutIndex` offers the same basic behaviour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sciqlop_cache::fanout::shard_of;
use sciqlop_cache::{Error, FanoutCache, FanoutIndex};
use sciqlop_cache_tests::{SMALL_THRESHOLD, parse_payload, payload};

const SHARDS: u32 = 8;
const THREADS: u64 = 8;

fn open(dir: &std::path::Path) -> FanoutCache {
    FanoutCache::builder()
        .shards(SHARDS)
        .file_threshold(SMALL_THRESHOLD)
        .open(dir)
        .expect("open fanout")
}

/// Two keys routed to the same shard.
fn pair_in_one_shard(prefix: &str) -> (String, String) {
    let a = format!("{prefix}/a");
    let s = shard_of(&a, SHARDS);
    let b = (0..)
        .map(|i| format!("{prefix}/b{i}"))
        .find(|b| shard_of(b, SHARDS) == s)
        .expect("a key of the same shard");
    (a, b)
}

fn key_of_other_shard(key: &str) -> String {
    let s = shard_of(key, SHARDS);
    (0..)
        .map(|i| format!("elsewhere/{i}"))
        .find(|k| shard_of(k, SHARDS) != s)
        .expect("a key of another shard")
}

#[test]
fn eight_threads_on_one_fanout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = open(tmp.path());
    let (pa, pb) = pair_in_one_shard("pair");
    cache
        .transact(&pa, |tx| {
            tx.set(&pa, payload(&pa, 0))?;
            tx.set(&pb, payload(&pb, 0))
        })
        .expect("initial pair");
    let incrs = 300;
    let rounds = 200;
    let tx_rounds = 100;
    let torn = AtomicU64::new(0);
    let pair_reads = AtomicU64::new(0);
    let wins: Vec<AtomicU64> = (0..rounds).map(|_| AtomicU64::new(0)).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, torn, pair_reads, wins) = (&cache, &torn, &pair_reads, &wins);
            let (pa, pb) = (&pa, &pb);
            s.spawn(move || {
                for i in 0..incrs {
                    cache.incr("total", 1, 0).expect("incr");
                    cache.incr(&format!("n/{}", i % 16), 1, 0).expect("incr");
                }
                for (r, win) in wins.iter().enumerate() {
                    if cache.add(&format!("race/{r}"), t.to_string()).expect("add") {
                        win.fetch_add(1, Ordering::SeqCst);
                    }
                }
                for i in 0..tx_rounds {
                    let version = t * 1_000_000 + i + 1;
                    if t % 2 == 0 {
                        cache
                            .transact(pa, |tx| {
                                tx.set(pa, payload(pa, version))?;
                                tx.set(pb, payload(pb, version))
                            })
                            .expect("pair transaction");
                    } else {
                        // Readers of the pair: never a torn pair.
                        let a = cache.get(pa).expect("get").expect("pair a");
                        let b = cache.get(pb).expect("get").expect("pair b");
                        pair_reads.fetch_add(1, Ordering::Relaxed);
                        // Two separate reads may straddle a commit; read both inside a
                        // transaction of their shard to get one snapshot.
                        let (ta, tb) = cache
                            .transact(pa, |tx| {
                                Ok::<_, Error>((
                                    tx.get(pa)?.expect("pair a"),
                                    tx.get(pb)?.expect("pair b"),
                                ))
                            })
                            .expect("snapshot transaction");
                        if parse_payload(pa, &ta) != parse_payload(pb, &tb) {
                            torn.fetch_add(1, Ordering::SeqCst);
                        }
                        assert!(parse_payload(pa, &a).is_some() && parse_payload(pb, &b).is_some());
                    }
                }
            });
        }
    });
    println!(
        "fanout, {THREADS} threads: {} ops in {:.2?}",
        THREADS * (2 * incrs + rounds as u64 + tx_rounds),
        started.elapsed()
    );
    assert_eq!(
        cache.get_counter("total").expect("get"),
        Some((THREADS * incrs) as i64)
    );
    let spread: i64 = (0..16)
        .map(|i| {
            cache
                .get_counter(&format!("n/{i}"))
                .expect("get")
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        spread,
        (THREADS * incrs) as i64,
        "counters spread over shards"
    );
    for (r, w) in wins.iter().enumerate() {
        assert_eq!(w.load(Ordering::SeqCst), 1, "add race {r}: winners");
    }
    assert_eq!(
        torn.load(Ordering::SeqCst),
        0,
        "a transaction was seen half-applied"
    );
    assert!(pair_reads.load(Ordering::Relaxed) > 0);
    assert!(cache.check(false).expect("check").ok);
}

#[test]
fn key_of_another_shard_in_a_transaction_fails_and_rolls_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = open(tmp.path());
    let other = key_of_other_shard("home");
    let r: Result<(), Error> = cache.transact("home", |tx| {
        tx.set("home", b"1")?;
        tx.set(&other, b"2")?;
        Ok(())
    });
    match r {
        Err(Error::WrongShard {
            key,
            key_shard,
            tx_shard,
        }) => {
            assert_eq!(key, other);
            assert_eq!(key_shard, shard_of(&other, SHARDS));
            assert_eq!(tx_shard, shard_of("home", SHARDS));
        }
        r => panic!("expected WrongShard, got {r:?}"),
    }
    assert_eq!(
        cache.get("home").expect("get"),
        None,
        "rolled back with the error"
    );
    assert_eq!(cache.get(&other).expect("get"), None);
    // Reads of another shard's key are routed to its shard (they see its committed
    // value, outside the transaction); only writes there are refused.
    cache.set(&other, b"outside").expect("set");
    let r = cache.transact("home", |tx| tx.get(&other));
    assert_eq!(r.expect("read").as_deref(), Some(&b"outside"[..]));
}

#[test]
fn reopening_with_another_shard_count_is_refused_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    {
        let cache = open(tmp.path());
        for k in &keys {
            cache.set(k, payload(k, 1)).expect("set");
        }
    }
    for n in [1, 4, 16] {
        let e = FanoutCache::builder()
            .shards(n)
            .open(tmp.path())
            .expect_err("another shard count");
        assert!(
            matches!(e, Error::ShardCountMismatch { on_disk: 8, requested, .. } if requested == n),
            "{e:?}"
        );
    }
    let e = FanoutIndex::open(tmp.path()).expect_err("another kind");
    assert!(matches!(e, Error::WrongKind { .. }), "{e:?}");
    // Without a count, the recorded one is used.
    let cache = FanoutCache::open(tmp.path()).expect("reopen with the recorded count");
    assert_eq!(cache.shard_count(), SHARDS);
    for k in &keys {
        assert_eq!(cache.get(k).expect("get"), Some(payload(k, 1)), "{k}");
    }
    assert_eq!(cache.len().expect("len"), keys.len() as u64);
    // Entries are spread over the shards as routed.
    for (i, shard) in cache.shards().iter().enumerate() {
        for k in shard.keys() {
            let k = k.expect("key");
            assert_eq!(
                shard_of(&k, SHARDS) as usize,
                i,
                "{k} stored in the wrong shard"
            );
        }
    }
}

#[test]
fn fanout_index_threads_smoke() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = FanoutIndex::builder()
        .shards(4)
        .file_threshold(SMALL_THRESHOLD)
        .open(tmp.path())
        .expect("open");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let index = &index;
            s.spawn(move || {
                for i in 0..200u64 {
                    let k = format!("t{t}/{i}");
                    index.set(&k, payload(&k, i)).expect("set");
                    index.incr("count", 1, 0).expect("incr");
                }
            });
        }
    });
    assert_eq!(index.get_counter("count").expect("get"), Some(800));
    assert_eq!(index.len().expect("len"), 801);
    let keys: Vec<String> = index.keys().collect::<Result<_, _>>().expect("keys");
    assert_eq!(keys.len(), 801);
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "keys in global byte order"
    );
    for t in 0..4u64 {
        for i in (0..200u64).step_by(17) {
            let k = format!("t{t}/{i}");
            assert_eq!(index.get(&k).expect("get"), Some(payload(&k, i)));
        }
    }
    assert!(index.check(false).expect("check").ok);
}
