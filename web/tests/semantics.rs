//! The cache's semantics on wasm32-unknown-unknown (sqlite-wasm-rs, in-memory VFS), run
//! with wasm-bindgen-test under node: expiry, tags, LRU by size, counters, transactions,
//! stats, and the platform specifics (no value files, wall clock from `Date.now()`).
//!
//! Run by `scripts/test-web.sh`.
#![cfg(all(target_family = "wasm", target_os = "unknown"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use sciqlop_cache::{Cache, Error, Index, ManualClock, SetOptions};
use wasm_bindgen_test::wasm_bindgen_test;

type R = Result<(), Error>;

/// A store name no other test uses (the memory VFS is shared by the whole module).
fn fresh(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("sem-{what}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn clocked(what: &str) -> (Cache, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000_000);
    let cache = Cache::builder()
        .clock(Arc::new(clock.clone()))
        .open(fresh(what))
        .expect("open");
    (cache, clock)
}

#[wasm_bindgen_test]
fn set_get_delete_round_trip() -> R {
    let cache = Cache::open(fresh("rt"))?;
    assert_eq!(cache.get("missing")?, None);
    cache.set("k", b"v1")?;
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"v1"[..]));
    cache.set("k", b"v2")?;
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"v2"[..]));
    cache.set("", b"")?;
    assert_eq!(cache.get("")?, Some(vec![]));
    assert_eq!(cache.len()?, 2);
    assert!(cache.delete("k")?);
    assert!(!cache.delete("k")?);
    assert_eq!(cache.get("k")?, None);
    assert_eq!(cache.len()?, 1);
    Ok(())
}

#[wasm_bindgen_test]
fn large_values_are_blobs_there_is_no_file_tier() -> R {
    let cache = Cache::builder().file_threshold(1024).open(fresh("big"))?;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    cache.set("big", &big)?;
    assert_eq!(cache.get("big")?.as_deref(), Some(&big[..]));
    let info = cache.entry_info("big")?.expect("entry");
    assert!(!info.in_file, "no value files in a browser");
    assert_eq!(info.size, big.len() as u64);
    assert_eq!(cache.size()?, big.len() as u64);
    assert!(cache.check(false)?.ok);
    Ok(())
}

#[wasm_bindgen_test]
fn same_name_reopens_the_same_database() -> R {
    let name = fresh("reopen");
    {
        let cache = Cache::open(&name)?;
        cache.set("kept", b"yes")?;
    }
    let cache = Cache::open(&name)?;
    assert_eq!(cache.get("kept")?.as_deref(), Some(&b"yes"[..]));
    assert!(Index::open(&name).is_err(), "a cache is not an index");
    let other = Cache::open(fresh("reopen"))?;
    assert_eq!(other.get("kept")?, None, "names are separate databases");
    Ok(())
}

#[wasm_bindgen_test]
fn expiry_is_never_returned_and_purged() -> R {
    let (cache, clock) = clocked("exp");
    cache.set_with(
        "short",
        b"x",
        &SetOptions::new().expire(Duration::from_millis(500)),
    )?;
    cache.set_with("long", b"y", &SetOptions::new().expire(secs(100)))?;
    cache.set("forever", b"z")?;
    cache.set_with("zero", b"w", &SetOptions::new().expire(Duration::ZERO))?;
    assert_eq!(cache.get("zero")?, None, "zero TTL expires at once");
    assert!(cache.contains("short")?);
    clock.advance(Duration::from_millis(600));
    assert_eq!(cache.get("short")?, None, "sub-second expiry is honoured");
    assert_eq!(cache.len()?, 2, "len excludes expired entries before purge");
    let keys: Vec<String> = cache.keys().collect::<Result<_, _>>()?;
    assert_eq!(keys, ["forever", "long"]);
    assert!(
        !cache.delete("short")?,
        "deleting an expired entry reports false (and removes it)"
    );
    assert_eq!(cache.expire()?, 1, "zero is purged");
    assert_eq!(cache.size()?, 2);
    // add succeeds over an expired entry only.
    cache.set_with("e", b"old", &SetOptions::new().expire(secs(1)))?;
    assert!(!cache.add("e", b"new")?);
    clock.advance(secs(2));
    assert!(cache.add("e", b"new")?);
    assert_eq!(cache.get("e")?.as_deref(), Some(&b"new"[..]));
    Ok(())
}

#[wasm_bindgen_test]
fn system_clock_comes_from_the_platform() -> R {
    // SystemTime::now() panics on wasm32-unknown-unknown; the cache must not use it.
    let cache = Cache::open(fresh("clock"))?;
    cache.set_with("k", b"v", &SetOptions::new().expire(secs(3600)))?;
    let info = cache.entry_info("k")?.expect("entry");
    let expire = info.expire.expect("has expiry");
    let unix = expire
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let now = js_sys::Date::now() / 1000.0;
    assert!(
        (unix - (now + 3600.0)).abs() < 600.0,
        "expiry {unix} is about now + 1 h ({now})"
    );
    // An absolute time in the past expires at once.
    cache.set_with(
        "past",
        b"v",
        &SetOptions::new().expire_at(SystemTime::UNIX_EPOCH + secs(1)),
    )?;
    assert_eq!(cache.get("past")?, None);
    Ok(())
}

#[wasm_bindgen_test]
fn tags_evict_together() -> R {
    let cache = Cache::open(fresh("tags"))?;
    let t = SetOptions::new().tag("sensor");
    cache.set_with("sensor/temp", b"1", &t)?;
    cache.set_with("sensor/hum", vec![1u8; 100], &t.clone().expire(secs(600)))?;
    cache.set_with("other", b"1", &SetOptions::new().tag("other"))?;
    cache.set("plain", b"1")?;
    assert_eq!(cache.evict_tag("sensor")?, 2);
    assert_eq!(cache.evict_tag("sensor")?, 0);
    assert_eq!(cache.len()?, 2);
    cache.set("other", b"2")?;
    assert_eq!(
        cache.evict_tag("other")?,
        0,
        "set without tag clears the tag"
    );
    Ok(())
}

#[wasm_bindgen_test]
fn lru_evicts_least_recently_read() -> R {
    let clock = ManualClock::new(1_700_000_000_000_000);
    let cache = Cache::builder()
        .clock(Arc::new(clock.clone()))
        .max_size(350)
        .open(fresh("lru"))?;
    for k in ["a", "b", "c"] {
        cache.set(k, [0u8; 100])?;
        clock.advance(secs(1));
    }
    assert!(
        cache.get("a")?.is_some(),
        "a becomes the most recently used"
    );
    clock.advance(secs(1));
    cache.set("d", [0u8; 100])?; // 400 > 350: evict down to 90 %
    cache.maintain()?;
    assert!(cache.size()? <= 350);
    assert!(!cache.contains("b")?, "b was least recently used");
    assert!(cache.contains("a")?);
    assert!(cache.contains("d")?);
    Ok(())
}

#[wasm_bindgen_test]
fn inline_eviction_keeps_the_bound_without_a_thread() -> R {
    let cache = Cache::builder().max_size(10_000).open(fresh("bound"))?;
    for i in 0..500 {
        cache.set(&format!("k{i}"), [7u8; 100])?;
    }
    cache.maintain()?;
    let size = cache.size()?;
    assert!(size <= 10_000, "size {size} exceeds the bound");
    assert!(cache.contains("k499")?, "the newest entry stays");
    assert!(!cache.contains("k0")?, "the oldest entry went");
    Ok(())
}

#[wasm_bindgen_test]
fn counters() -> R {
    let (cache, clock) = clocked("ctr");
    assert_eq!(cache.incr("views", 1, 0)?, 1);
    assert_eq!(cache.incr("views", 5, 0)?, 6);
    assert_eq!(cache.decr("views", 1, 0)?, 5);
    assert_eq!(cache.get("views")?.as_deref(), Some(&b"5"[..]));
    assert_eq!(cache.get_counter("views")?, Some(5));
    assert_eq!(cache.incr("fresh", 1, 100)?, 101);
    cache.set("text", b"hello")?;
    assert!(matches!(
        cache.incr("text", 1, 0),
        Err(Error::NotACounter { .. })
    ));
    assert_eq!(cache.get("text")?.as_deref(), Some(&b"hello"[..]));
    cache.set("max", i64::MAX.to_string())?;
    assert!(matches!(
        cache.incr("max", 1, 0),
        Err(Error::CounterOverflow { .. })
    ));
    cache.set_with("ttl", b"10", &SetOptions::new().expire(secs(5)))?;
    assert_eq!(cache.incr("ttl", 1, 0)?, 11);
    clock.advance(secs(6));
    assert_eq!(cache.incr("ttl", 1, 0)?, 1, "an expired counter restarts");
    Ok(())
}

#[wasm_bindgen_test]
fn transactions_commit_all_or_nothing() -> R {
    let cache = Cache::open(fresh("tx"))?;
    cache.transact(|tx| {
        tx.set("a", b"1")?;
        tx.set("big", vec![1u8; 100_000])?;
        assert_eq!(tx.get("a")?.as_deref(), Some(&b"1"[..]), "sees its writes");
        Ok::<_, Error>(())
    })?;
    assert_eq!(cache.len()?, 2);
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set("a", b"2")?;
        tx.delete("big")?;
        tx.set("big2", vec![2u8; 100])?;
        tx.incr("n", 1, 0)?;
        Err(Error::InvalidArgument("abort".into()))
    });
    assert!(r.is_err());
    assert_eq!(cache.get("a")?.as_deref(), Some(&b"1"[..]));
    assert_eq!(cache.get("big")?, Some(vec![1u8; 100_000]));
    assert_eq!(cache.get("big2")?, None);
    assert_eq!(cache.get("n")?, None);
    assert!(cache.check(false)?.ok);
    Ok(())
}

#[wasm_bindgen_test]
fn nested_transactions_join_the_outer_one() -> R {
    let cache = Cache::open(fresh("nest"))?;
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set("outer", b"1")?;
        let inner: Result<(), Error> = tx.transact(|tx2| {
            tx2.set("inner-failed", b"1")?;
            Err(Error::InvalidArgument("inner".into()))
        });
        assert!(inner.is_err());
        tx.transact(|tx2| tx2.set("inner-ok", b"1"))?;
        Ok(())
    });
    r?;
    assert!(cache.contains("outer")?);
    assert!(cache.contains("inner-ok")?);
    assert!(!cache.contains("inner-failed")?);
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.transact(|tx2| tx2.set("x", b"1"))?;
        Err(Error::InvalidArgument("outer".into()))
    });
    assert!(r.is_err());
    assert!(
        !cache.contains("x")?,
        "inner work rolls back with the outer"
    );
    Ok(())
}

#[wasm_bindgen_test]
fn stats_count_hits_and_misses() -> R {
    let cache = Cache::open(fresh("stats"))?;
    cache.set("k", b"v")?;
    cache.get("k")?;
    cache.get("missing")?;
    cache.get("missing")?;
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (1, 2));
    cache.reset_stats();
    assert_eq!(cache.stats().hits, 0);
    Ok(())
}

#[wasm_bindgen_test]
fn locks_do_not_block_in_a_browser() -> R {
    let cache = Cache::open(fresh("lock"))?;
    let held = cache.lock("job", secs(60))?;
    assert!(cache.try_lock("job", secs(60))?.is_none());
    assert!(matches!(
        cache.lock_timeout("job", secs(60), secs(5)),
        Err(Error::LockTimeout { .. })
    ));
    held.release()?;
    assert!(cache.try_lock("job", secs(60))?.is_some());
    Ok(())
}

#[wasm_bindgen_test]
fn typed_values_and_index() -> R {
    let cache = Cache::open(fresh("typed"))?;
    cache.set_value("point", &(1.5f64, 2.5f64))?;
    assert_eq!(cache.get_value::<(f64, f64)>("point")?, Some((1.5, 2.5)));
    let index = Index::open(fresh("index"))?;
    index.set("dataset/v2", b"meta")?;
    assert!(index.contains("dataset/v2")?);
    assert_eq!(index.len()?, 1);
    Ok(())
}
