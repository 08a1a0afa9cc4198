//! The Redis engine against real servers in trouble, and shared by real processes:
//! eight processes × 1000 `incr` on one key are exact; the server down at open, killed
//! mid-operation, frozen, restarted, out of memory, guarded by a password, or refusing a
//! value over its limit each give a clear error (never a panic or a hang) and the next
//! operation after a restart works. Times are printed, never asserted.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sciqlop_cache::{Config, Engine, Error, Kind};
use sciqlop_cache_redis::testing::{Cluster, Server};
use sciqlop_cache_redis::{OpenRedis, RedisCache, RedisEngine};

const CHILD_URL: &str = "SQC_REDIS_CHILD_URL";
const PROCS: usize = 8;
const INCRS: i64 = 1000;

/// In a child process (the test binary run again): `INCRS` increments of one counter.
#[test]
fn child_incr() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let cache = RedisCache::open(&url).expect("child open");
    for _ in 0..INCRS {
        cache.incr("hits", 1, 0).expect("child incr");
    }
}

fn incr_from_processes(url: &str) {
    let cache = RedisCache::open(url).expect("open");
    cache.clear().expect("clear");
    let exe = std::env::current_exe().expect("test binary");
    let start = Instant::now();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_incr",
                    "--test-threads",
                    "1",
                    "--nocapture",
                ])
                .env(CHILD_URL, url)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("child");
        assert!(
            out.status.success(),
            "a child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let total = PROCS as i64 * INCRS;
    println!(
        "{PROCS} processes x {INCRS} incr: {:?} ({:.0} incr/s)",
        start.elapsed(),
        total as f64 / start.elapsed().as_secs_f64()
    );
    assert_eq!(cache.get_counter("hits").expect("get"), Some(total));
    assert_eq!(
        cache.get("hits").expect("get"),
        Some(total.to_string().into_bytes())
    );
    assert_eq!(cache.len().expect("len"), 1);
    assert!(cache.check(false).expect("check").ok);
}

#[test]
fn eight_processes_incr_one_key_exactly() {
    let server = Server::start().expect("redis-server");
    incr_from_processes(&server.url("mp"));
}

#[test]
fn eight_processes_incr_one_key_exactly_on_a_cluster() {
    let cluster = Cluster::start().expect("cluster");
    incr_from_processes(&cluster.url("mp"));
}

fn is_remote(e: &Error, words: &str) -> bool {
    matches!(e, Error::Remote(m) if m.contains(words))
}

#[test]
fn server_down_at_open() {
    // A port nobody listens on: the server's, once it is gone.
    let mut server = Server::start().expect("redis-server");
    let url = format!("{}&timeout_ms=1000", server.url("down"));
    server.kill();
    let start = Instant::now();
    let e = RedisCache::open(&url).expect_err("open without a server");
    println!("open without a server: {:?}: {e}", start.elapsed());
    assert!(is_remote(&e, "cannot reach the Redis server"), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{}", server.port()))
    );
}

#[test]
fn server_killed_mid_operation_then_restarted() {
    let mut server = Server::start().expect("redis-server");
    let url = format!("{}&timeout_ms=2000", server.url("killed"));
    let cache = Arc::new(RedisCache::open(&url).expect("open"));
    cache.set("k", b"v").expect("set");
    let writer = {
        let cache = Arc::clone(&cache);
        std::thread::spawn(move || {
            let big = vec![7u8; 256 * 1024];
            let start = Instant::now();
            loop {
                if let Err(e) = cache.set("big", &big) {
                    return (e, start.elapsed());
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    server.kill();
    let (e, _) = writer.join().expect("writer thread");
    println!(
        "killed mid-operation: error {:?} after the kill: {e}",
        killed.elapsed()
    );
    assert!(is_remote(&e, "cannot reach the Redis server"), "{e:?}");
    // While it is down, every operation fails the same way.
    let e = cache.get("k").expect_err("get while down");
    assert!(is_remote(&e, "cannot reach"), "{e:?}");
    // Restarted (empty: nothing is saved): the next operation reconnects.
    server.restart().expect("restart");
    assert_eq!(cache.get("k").expect("get after restart"), None);
    cache.set("k", b"again").expect("set after restart");
    assert_eq!(cache.get("k").expect("get").as_deref(), Some(&b"again"[..]));
}

#[test]
fn frozen_server_times_out() {
    let server = Server::start().expect("redis-server");
    let url = format!("{}&timeout_ms=300", server.url("frozen"));
    let cache = RedisCache::open(&url).expect("open");
    cache.set("k", b"v").expect("set");
    server.pause().expect("SIGSTOP");
    let start = Instant::now();
    let e = cache.get("k").expect_err("get from a frozen server");
    let e2 = cache.set("k", b"w").expect_err("set to a frozen server");
    println!("frozen server: two errors in {:?}: {e}", start.elapsed());
    server.resume().expect("SIGCONT");
    assert!(is_remote(&e, "did not answer within"), "{e:?}");
    assert!(
        is_remote(&e2, "did not answer within") || is_remote(&e2, "cannot reach"),
        "{e2:?}"
    );
    // Thawed: the next operation works on a new connection.
    assert_eq!(
        cache.get("k").expect("get after thaw").as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn wrong_password() {
    let server = Server::start_with(&["--requirepass", "s3cret"]).expect("redis-server");
    let port = server.port();
    for url in [
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://:nope@127.0.0.1:{port}/0"),
    ] {
        let e = RedisCache::open(&url).expect_err("wrong password");
        assert!(is_remote(&e, "refused the credentials"), "{url}: {e:?}");
        assert!(
            !e.to_string().contains("nope"),
            "the password is shown: {e}"
        );
    }
    let cache = RedisCache::open(&format!("redis://:s3cret@127.0.0.1:{port}/0")).expect("open");
    cache.set("k", b"v").expect("set");
    assert!(!cache.path().to_string_lossy().contains("s3cret"));
}

#[test]
fn out_of_memory_is_a_clear_error_and_writes_nothing() {
    let server = Server::start_with(&["--maxmemory", "3mb"]).expect("redis-server");
    let cache = RedisCache::open(&server.url("oom")).expect("open");
    let v = vec![1u8; 64 * 1024];
    let mut stored = 0u64;
    let e = loop {
        match cache.set(&format!("k{stored}"), &v) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10_000, "maxmemory never refused a write");
    };
    println!("out of memory after {stored} values of 64 KiB: {e}");
    assert!(
        matches!(&e, Error::QuotaExceeded(m) if m.contains("out of memory")),
        "{e:?}"
    );
    assert_eq!(cache.get(&format!("k{stored}")).expect("get"), None);
    assert_eq!(cache.len().expect("len"), stored);
    assert_eq!(cache.size().expect("size"), stored * v.len() as u64);
    assert!(cache.check(false).expect("check").ok);
    // Room made: writes work again.
    cache.clear().expect("clear");
    cache.set("after", &v).expect("set after clear");
}

#[test]
fn value_over_the_server_limit() {
    let server = Server::start_with(&["--proto-max-bulk-len", "1mb"]).expect("redis-server");
    let cache = RedisCache::open(&server.url("big")).expect("open");
    let e = cache
        .set("k", vec![0u8; 2 << 20])
        .expect_err("2 MiB over a 1 MiB limit");
    assert!(
        matches!(e, Error::ValueTooLarge { len, max } if len == 2 << 20 && max == 1 << 20),
        "{e:?}"
    );
    assert!(!cache.contains("k").expect("contains"));
    cache
        .set("k", vec![0u8; 1 << 19])
        .expect("a value under the limit");
}

#[test]
fn kinds_and_missing_stores() {
    let server = Server::start().expect("redis-server");
    let url = server.url("kinds");
    let e = RedisEngine::open(&url, &Config::default(), None).expect_err("no store yet");
    assert!(matches!(e, Error::NotACache { .. }), "{e:?}");
    RedisEngine::open(&url, &Config::default(), Some(Kind::INDEX)).expect("create an index");
    let e = RedisCache::open(&url).expect_err("an index opened as a cache");
    assert!(matches!(e, Error::WrongKind { .. }), "{e:?}");
    let e = RedisCache::open("redis://127.0.0.1:1/0?namespace={x}").expect_err("bad name");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn max_size_evicts_least_recently_used_with_exact_totals() {
    let server = Server::start().expect("redis-server");
    let config = sciqlop_cache::Cache::builder()
        .max_size(10_000)
        .config()
        .clone();
    let cache = RedisCache::open_with(&server.url("lru"), &config).expect("open");
    for i in 0..10 {
        cache.set(&format!("k{i}"), vec![0u8; 1000]).expect("set");
    }
    // k0 read: the least recently used is now k1.
    assert!(cache.get("k0").expect("get").is_some());
    cache.maintain().expect("maintain");
    cache
        .set("k10", vec![0u8; 1000])
        .expect("set over the bound");
    assert!(
        cache.contains("k0").expect("contains"),
        "a recently read entry was evicted"
    );
    assert!(
        !cache.contains("k1").expect("contains"),
        "the LRU entry stayed"
    );
    assert_eq!(cache.len().expect("len"), 10);
    assert_eq!(cache.engine().total_size().expect("total"), 10_000);
    assert!(cache.check(false).expect("check").ok);
    // Overwrites that change the size, the tag and the expiry keep the totals exact.
    let tagged = sciqlop_cache::SetOptions::new().tag("a");
    cache.set_with("k0", vec![0u8; 500], &tagged).expect("set");
    let expiring = sciqlop_cache::SetOptions::new().expire(Duration::from_secs(600));
    cache
        .set_with("k0", vec![0u8; 700], &expiring)
        .expect("set");
    assert_eq!(
        cache.evict_tag("a").expect("evict_tag"),
        0,
        "a stale tag evicted k0"
    );
    assert_eq!(cache.engine().total_size().expect("total"), 9_700);
    cache.touch("k0", None).expect("touch");
    assert_eq!(
        cache.entry_info("k0").expect("info").expect("k0").expire,
        None
    );
    assert_eq!(cache.len().expect("len"), 10);
    assert!(cache.check(false).expect("check").ok);
}

#[test]
fn a_cluster_node_killed_gives_an_error_for_its_stores_only() {
    let mut cluster = Cluster::start().expect("cluster");
    let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    let caches: Vec<RedisCache> = names
        .iter()
        .map(|n| RedisCache::open(&format!("{}&timeout_ms=1000", cluster.url(n))).expect("open"))
        .collect();
    for c in &caches {
        c.set("k", b"v").expect("set");
    }
    cluster.nodes()[0].kill();
    let start = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    for c in &caches {
        match c.get("k") {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some(&b"v"[..]));
                ok += 1;
            }
            Err(e) => {
                assert!(matches!(e, Error::Remote(_)), "{e:?}");
                failed += 1;
            }
        }
    }
    println!(
        "one node of 3 killed: {ok} stores served, {failed} failed, in {:?}",
        start.elapsed()
    );
    assert!(ok > 0 && failed > 0, "{ok} served, {failed} failed");
}
