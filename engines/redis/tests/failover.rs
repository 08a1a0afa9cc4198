//! Failovers of a real Redis Cluster with replicas (3 primaries + 3 replicas, started
//! here): the engine keeps working after its store's primary is replaced by its
//! replica, with errors only during the switch (each within a bounded time) and success
//! after it.
//!
//! What Redis guarantees, and so what is checked: a coordinated failover (`CLUSTER
//! FAILOVER`) loses no acknowledged write, because the primary stops taking writes
//! until its replica has them all. Replication is asynchronous otherwise: when a
//! primary dies, the writes it acknowledged and had not yet sent to its replica are
//! lost. So the kill test makes its writes reach the replica first (`WAIT`) and checks
//! that those survive. A script's writes reach a replica together or not at all, so the
//! store's totals agree with its entries after either failover (`check`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sciqlop_cache::Error;
use sciqlop_cache_redis::testing::Cluster;
use sciqlop_cache_redis::{OpenRedis, RedisCache};

/// The longest a failover may take before the test calls it a hang (the cluster fails
/// over 2 s after a node stops answering; the client gives up on a call after its
/// timeout and a few retries).
const HANG: Duration = Duration::from_secs(60);

/// The store's name; its keys share the hash tag `{fo}`.
const STORE: &str = "fo";

fn open(cluster: &Cluster) -> RedisCache {
    let url = format!("{}&timeout_ms=2000", cluster.url(STORE));
    RedisCache::open(&url).expect("open the store on the cluster")
}

/// Calls `f` until it succeeds; the errors on the way and how long it took. Each failed
/// call must return within `HANG`, and so must the whole.
fn until_ok<T>(what: &str, mut f: impl FnMut() -> sciqlop_cache::Result<T>) -> (T, u32, Duration) {
    let start = Instant::now();
    let mut errors = 0;
    loop {
        let call = Instant::now();
        match f() {
            Ok(v) => return (v, errors, start.elapsed()),
            Err(e) => {
                assert!(call.elapsed() < HANG, "{what}: one call hung ({e})");
                assert!(
                    matches!(
                        e,
                        Error::Remote(_) | Error::ReadOnly { .. } | Error::Engine { .. }
                    ),
                    "{what}: unexpected error {e:?}"
                );
                if errors == 0 {
                    println!("{what}: first error after {:?}: {e}", start.elapsed());
                }
                errors += 1;
            }
        }
        assert!(start.elapsed() < HANG, "{what}: no success within {HANG:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value(i: u32) -> Vec<u8> {
    format!("value {i}").into_bytes()
}

#[test]
fn coordinated_failover_keeps_every_acknowledged_write() {
    let cluster = Cluster::start_with_replicas(1).expect("cluster with replicas");
    let cache = open(&cluster);
    let (primary, replicas) = cluster
        .serving(&format!("sqc{{{STORE}}}:t"))
        .expect("the store's slot");
    assert_eq!(replicas.len(), 1, "one replica per primary");

    // A writer sets k0, k1, … (with a tag and an expiry, the costly path) while the
    // replica takes over; it records which writes were acknowledged.
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            let opts = sciqlop_cache::SetOptions::new()
                .tag("t")
                .expire(Duration::from_secs(3600));
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let call = Instant::now();
                match cache.set_with(&format!("k{i}"), value(i), &opts) {
                    Ok(()) => acked.lock().expect("acked").push(i),
                    Err(e) => {
                        assert!(call.elapsed() < HANG, "a set hung ({e})");
                        failed.lock().expect("failed").push((i, e.to_string()));
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                i += 1;
            }
        });
        let count = || acked.lock().expect("acked").len();
        let start = Instant::now();
        while count() < 200 {
            assert!(start.elapsed() < HANG, "the writer made no progress");
            std::thread::sleep(Duration::from_millis(10));
        }
        let before = count();
        let switch = Instant::now();
        cluster.failover(replicas[0]).expect("CLUSTER FAILOVER");
        println!(
            "failover: replica {} is primary after {:?}",
            replicas[0],
            switch.elapsed()
        );
        // The writer goes on against the new primary.
        while count() < before + 200 {
            assert!(
                switch.elapsed() < HANG,
                "no write succeeded after the failover"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().expect("acked");
    let failed = failed.into_inner().expect("failed");
    println!(
        "{} writes acknowledged, {} failed during the switch: {:?}",
        acked.len(),
        failed.len(),
        failed.first()
    );
    let (now_primary, _) = cluster
        .serving(&format!("sqc{{{STORE}}}:t"))
        .expect("the store's slot");
    assert_eq!(now_primary, replicas[0], "the replica serves the store");
    assert_ne!(now_primary, primary);
    // Every acknowledged write is there, on the new primary.
    for i in &acked {
        assert_eq!(cache.get(&format!("k{i}")).expect("get"), Some(value(*i)));
    }
    let report = cache.check(false).expect("check");
    assert!(report.ok, "{report:?}");
    // A write whose answer was lost may have happened: between the two counts.
    let len = cache.len().expect("len");
    assert!(
        len >= acked.len() as u64 && len <= (acked.len() + failed.len()) as u64,
        "{len} entries, {} acknowledged, {} failed",
        acked.len(),
        failed.len()
    );
    assert_eq!(cache.evict_tag("t").expect("evict_tag"), len);
}

#[test]
fn a_killed_primary_is_replaced_and_replicated_writes_survive() {
    let mut cluster = Cluster::start_with_replicas(1).expect("cluster with replicas");
    let cache = open(&cluster);
    let (primary, replicas) = cluster
        .serving(&format!("sqc{{{STORE}}}:t"))
        .expect("the store's slot");
    const N: u32 = 300;
    for i in 0..N {
        cache.set(&format!("k{i}"), value(i)).expect("set");
    }
    assert_eq!(cache.incr("counter", 5, 0).expect("incr"), 5);
    // Redis replicates asynchronously: only writes the replica has survive the death
    // of the primary. WAIT makes sure it has these.
    cluster
        .wait_replicated(primary, &format!("{{{STORE}}}sync"), 1)
        .expect("replicated");

    let killed = Instant::now();
    cluster.node(primary).expect("the primary").kill();
    // Errors while the cluster notices and promotes the replica, then success.
    let ((), errors, took) = until_ok("set after the kill", || cache.set("after", b"1"));
    println!(
        "primary {primary} killed: {errors} failed calls, the first success after {took:?} (replica {} promoted)",
        replicas[0]
    );
    assert!(killed.elapsed() < HANG);
    let (now_primary, _) = cluster
        .serving(&format!("sqc{{{STORE}}}:t"))
        .expect("the store's slot");
    assert_eq!(now_primary, replicas[0], "the replica serves the store");

    for i in 0..N {
        assert_eq!(cache.get(&format!("k{i}")).expect("get"), Some(value(i)));
    }
    assert_eq!(cache.incr("counter", 1, 0).expect("incr"), 6);
    assert_eq!(cache.len().expect("len"), u64::from(N) + 2);
    let report = cache.check(false).expect("check");
    assert!(report.ok, "{report:?}");
    // Optimistic transactions work on the new primary too.
    let mut tx = cache.optimistic();
    let n = tx.incr("counter", 1, 0).expect("tx incr");
    tx.set("last", n.to_string()).expect("tx set");
    tx.commit().expect("commit");
    assert_eq!(cache.get("last").expect("get"), Some(b"7".to_vec()));
}
