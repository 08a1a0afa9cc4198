//! Behaviour of every public operation of Cache and Index.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sciqlop_cache::{Cache, Error, Index, ManualClock, SetOptions};

type R = Result<(), Box<dyn std::error::Error>>;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn clocked(dir: &std::path::Path) -> (Cache, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000_000);
    let cache = Cache::builder()
        .clock(Arc::new(clock.clone()))
        .maintenance_interval(Duration::ZERO)
        .open(dir)
        .expect("open");
    (cache, clock)
}

#[test]
fn set_get_delete_round_trip() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    assert_eq!(cache.get("missing")?, None);
    cache.set("k", b"v1")?;
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"v1"[..]));
    cache.set("k", b"v2")?;
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"v2"[..]));
    assert_eq!(cache.len()?, 1);
    assert!(cache.delete("k")?);
    assert!(!cache.delete("k")?);
    assert_eq!(cache.get("k")?, None);
    assert_eq!(cache.len()?, 0);
    Ok(())
}

#[test]
fn empty_key_and_empty_value() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    cache.set("", b"")?;
    assert_eq!(cache.get("")?, Some(vec![]));
    assert!(cache.contains("")?);
    Ok(())
}

#[test]
fn large_values_live_in_files_and_round_trip() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(1024).open(dir.path())?;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    cache.set("big", &big)?;
    assert_eq!(cache.get("big")?.as_deref(), Some(&big[..]));
    let files = count_value_files(dir.path());
    assert_eq!(files, 1);
    // Replacing a file value by an inline one removes the file.
    cache.set("big", b"small")?;
    assert_eq!(count_value_files(dir.path()), 0);
    cache.set("big", &big)?;
    assert!(cache.delete("big")?);
    assert_eq!(count_value_files(dir.path()), 0);
    cache.set("big", &big)?;
    assert_eq!(cache.pop("big")?.as_deref(), Some(&big[..]));
    assert_eq!(count_value_files(dir.path()), 0);
    assert_eq!(cache.size()?, 0);
    assert!(cache.check(false)?.ok);
    Ok(())
}

fn count_value_files(dir: &std::path::Path) -> usize {
    walk_values(dir).len()
}

#[test]
fn size_and_volume_are_exact() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(1000).open(dir.path())?;
    cache.set("a", vec![0u8; 10])?;
    cache.set("b", vec![0u8; 5000])?;
    assert_eq!(cache.size()?, 5010);
    cache.set("a", vec![0u8; 20])?;
    assert_eq!(cache.size()?, 5020);
    assert!(cache.volume()? >= 5020);
    cache.delete("b")?;
    assert_eq!(cache.size()?, 20);
    Ok(())
}

#[test]
fn persists_across_reopen_and_moved_directory() -> R {
    let dir = tempfile::tempdir()?;
    let a = dir.path().join("a");
    {
        let cache = Cache::builder().file_threshold(16).open(&a)?;
        cache.set("inline", b"x")?;
        cache.set("file", vec![7u8; 100])?;
    }
    let b = dir.path().join("b");
    std::fs::rename(&a, &b)?;
    let cache = Cache::open(&b)?;
    assert_eq!(cache.get("inline")?.as_deref(), Some(&b"x"[..]));
    assert_eq!(cache.get("file")?, Some(vec![7u8; 100]));
    Ok(())
}

#[test]
fn add_only_when_absent_or_expired() -> R {
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
    assert!(cache.add("k", b"1")?);
    assert!(!cache.add("k", b"2")?);
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"1"[..]));
    cache.set_with("e", b"old", &SetOptions::new().expire(secs(1)))?;
    clock.advance(secs(2));
    assert!(cache.add("e", b"new")?);
    assert_eq!(cache.get("e")?.as_deref(), Some(&b"new"[..]));
    Ok(())
}

#[test]
fn expiry_is_never_returned_and_purged() -> R {
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
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
    assert!(!cache.contains("short")?);
    assert_eq!(cache.len()?, 2, "len excludes expired entries before purge");
    let keys: Vec<String> = cache.keys().collect::<Result<_, _>>()?;
    assert_eq!(keys, ["forever", "long"]);
    assert!(
        !cache.delete("short")?,
        "deleting an expired entry reports false"
    );
    cache.set_with("short2", b"x", &SetOptions::new().expire(secs(1)))?;
    clock.advance(secs(2));
    assert_eq!(cache.expire()?, 2, "zero and short2");
    assert_eq!(cache.len()?, 2);
    assert_eq!(cache.size()?, 2);
    Ok(())
}

#[test]
fn touch_changes_expiry_of_live_entries_only() -> R {
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
    cache.set_with("k", b"v", &SetOptions::new().expire(secs(10)))?;
    assert!(cache.touch("k", Some(secs(100)))?);
    clock.advance(secs(50));
    assert!(cache.contains("k")?);
    assert!(cache.touch("k", None)?);
    clock.advance(secs(1000));
    assert!(cache.contains("k")?);
    cache.set_with("gone", b"v", &SetOptions::new().expire(secs(1)))?;
    clock.advance(secs(2));
    assert!(
        !cache.touch("gone", Some(secs(100)))?,
        "touch does not revive"
    );
    assert_eq!(cache.get("gone")?, None);
    assert!(!cache.touch("never-set", None)?);
    Ok(())
}

#[test]
fn tags_evict_together() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(64).open(dir.path())?;
    let t = SetOptions::new().tag("sensor");
    cache.set_with("sensor/temp", b"1", &t)?;
    cache.set_with("sensor/hum", vec![1u8; 100], &t.clone().expire(secs(600)))?;
    cache.set_with("other", b"1", &SetOptions::new().tag("other"))?;
    cache.set("plain", b"1")?;
    assert_eq!(cache.evict_tag("sensor")?, 2);
    assert_eq!(cache.evict_tag("sensor")?, 0);
    assert_eq!(cache.len()?, 2);
    assert_eq!(count_value_files(dir.path()), 0);
    // set without tag clears the tag.
    cache.set("other", b"2")?;
    assert_eq!(cache.evict_tag("other")?, 0);
    Ok(())
}

#[test]
fn keys_paging_and_prefix() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Index::open(dir.path())?;
    for i in 0..1000 {
        cache.set(&format!("p/{i:04}"), b"")?;
    }
    cache.set("q", b"")?;
    cache.set("o", b"")?;
    let keys: Vec<String> = cache.keys_with_prefix("p/").collect::<Result<_, _>>()?;
    assert_eq!(keys.len(), 1000);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(cache.keys().count(), 1002);
    let page = cache.keys_page("p/", Some("p/0997"), 10)?;
    assert_eq!(page, ["p/0998", "p/0999"]);
    let page = cache.keys_page("p/", None, 3)?;
    assert_eq!(page, ["p/0000", "p/0001", "p/0002"]);
    Ok(())
}

#[test]
fn clear_removes_everything() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(10).open(dir.path())?;
    for i in 0..50 {
        cache.set(&format!("{i}"), vec![0u8; i * 2])?;
    }
    assert_eq!(cache.clear()?, 50);
    assert_eq!(cache.len()?, 0);
    assert_eq!(cache.size()?, 0);
    assert_eq!(count_value_files(dir.path()), 0);
    Ok(())
}

#[test]
fn counters() -> R {
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
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
    assert_eq!(
        cache.get("text")?.as_deref(),
        Some(&b"hello"[..]),
        "not overwritten"
    );
    cache.set("max", i64::MAX.to_string())?;
    assert!(matches!(
        cache.incr("max", 1, 0),
        Err(Error::CounterOverflow { .. })
    ));
    // Counters keep expiry; an expired counter restarts from the default.
    cache.set_with("ttl", b"10", &SetOptions::new().expire(secs(5)))?;
    assert_eq!(cache.incr("ttl", 1, 0)?, 11);
    clock.advance(secs(6));
    assert_eq!(cache.incr("ttl", 1, 0)?, 1);
    Ok(())
}

#[test]
fn counters_are_exact_across_threads() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    cache.incr("n", 1, 0).expect("incr");
                }
            });
        }
    });
    assert_eq!(cache.get_counter("n")?, Some(1600));
    Ok(())
}

#[test]
fn stats_count_hits_and_misses() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
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

#[test]
fn transact_commits_all_or_nothing() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(32).open(dir.path())?;
    cache.transact(|tx| {
        tx.set("a", b"1")?;
        tx.set("big", vec![1u8; 100])?;
        assert_eq!(
            tx.get("a")?.as_deref(),
            Some(&b"1"[..]),
            "sees its own writes"
        );
        Ok::<_, Error>(())
    })?;
    assert_eq!(cache.len()?, 2);

    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set("a", b"2")?;
        tx.delete("big")?;
        tx.set("big2", vec![2u8; 100])?;
        Err(Error::InvalidArgument("abort".into()))
    });
    assert!(r.is_err());
    assert_eq!(cache.get("a")?.as_deref(), Some(&b"1"[..]));
    assert_eq!(cache.get("big")?, Some(vec![1u8; 100]));
    assert_eq!(cache.get("big2")?, None);
    assert_eq!(count_value_files(dir.path()), 1, "rolled-back file removed");
    assert!(cache.check(false)?.ok);
    Ok(())
}

#[test]
fn transact_rolls_back_on_panic() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), Error> = cache.transact(|tx| {
            tx.set("k", b"v")?;
            panic!("boom");
        });
    }));
    assert!(r.is_err());
    assert_eq!(cache.get("k")?, None);
    cache.set("after", b"ok")?;
    assert_eq!(cache.len()?, 1);
    Ok(())
}

#[test]
fn nested_transact_joins_outer() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set("outer", b"1")?;
        let inner: Result<(), Error> = tx.transact(|tx2| {
            tx2.set("inner-failed", b"1")?;
            Err(Error::InvalidArgument("inner".into()))
        });
        assert!(inner.is_err());
        tx.transact(|tx2| tx2.set("inner-ok", b"1"))?;
        // The store itself, called from the same thread, joins too.
        cache.set("via-store", b"1")?;
        Ok(())
    });
    r?;
    assert!(cache.contains("outer")?);
    assert!(cache.contains("inner-ok")?);
    assert!(cache.contains("via-store")?);
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

#[test]
fn transaction_is_isolated_from_other_threads() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    cache.transact(|tx| {
        tx.set("k", b"v")?;
        std::thread::scope(|s| {
            let seen = s
                .spawn(|| cache.get("k").expect("get"))
                .join()
                .expect("join");
            assert_eq!(
                seen, None,
                "uncommitted writes are invisible to other threads"
            );
        });
        Ok::<_, Error>(())
    })?;
    assert!(cache.contains("k")?);
    Ok(())
}

#[test]
fn locks_exclude_and_expire() -> R {
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
    let l = cache.try_lock("res", secs(30))?.expect("free");
    assert!(cache.try_lock("res", secs(30))?.is_none());
    drop(l);
    let l = cache.try_lock("res", secs(30))?.expect("released on drop");
    let e = cache.lock_timeout("res", secs(30), Duration::from_millis(20));
    assert!(matches!(e, Err(Error::LockTimeout { .. })));
    clock.advance(secs(31));
    let l2 = cache
        .try_lock("res", secs(30))?
        .expect("expired lock is taken over");
    // The old guard must not release the new holder's lock.
    drop(l);
    assert!(cache.try_lock("res", secs(30))?.is_none());
    l2.release()?;
    assert!(cache.try_lock("res", secs(30))?.is_some());
    // Locks do not show up as entries.
    assert_eq!(cache.len()?, 0);
    Ok(())
}

#[test]
fn lock_gives_mutual_exclusion_between_threads() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    let _g = cache.lock("m", secs(30)).expect("lock");
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    Ok(())
}

#[test]
fn memoize_computes_once() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let v = cache
                    .get_or_set_with("slow", &SetOptions::new().tag("compute"), || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok::<_, Error>(b"result".to_vec())
                    })
                    .expect("memo");
                assert_eq!(v, b"result");
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let typed: Vec<u32> = cache.get_or_set_value_with("typed", &SetOptions::new(), || {
        Ok::<_, Error>(vec![1, 2, 3])
    })?;
    assert_eq!(typed, [1, 2, 3]);
    let again: Vec<u32> = cache.get_or_set_value_with("typed", &SetOptions::new(), || {
        Err(Error::InvalidArgument("must not recompute".into()))
    })?;
    assert_eq!(again, [1, 2, 3]);
    // A failed computation stores nothing.
    let r = cache.get_or_set_with("fails", &SetOptions::new(), || {
        Err(Error::InvalidArgument("nope".into()))
    });
    assert!(r.is_err());
    assert!(!cache.contains("fails")?);
    Ok(())
}

#[test]
fn typed_values_and_decode_errors() -> R {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Reading {
        ts: u64,
        values: Vec<f64>,
    }
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let r = Reading {
        ts: 1_710_000_000,
        values: vec![21.3, 21.5],
    };
    cache.set_value("sensor", &r)?;
    assert_eq!(cache.get_value::<Reading>("sensor")?, Some(r));
    assert_eq!(cache.get_value::<Reading>("missing")?, None);
    cache.set("raw", b"\xff")?;
    assert!(matches!(
        cache.get_value::<Reading>("raw"),
        Err(Error::Decode { .. })
    ));
    Ok(())
}

#[test]
fn limits_are_enforced() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder()
        .max_key_len(8)
        .max_value_size(16)
        .open(dir.path())?;
    assert!(matches!(
        cache.set("123456789", b""),
        Err(Error::KeyTooLong { len: 9, max: 8 })
    ));
    assert!(matches!(
        cache.get("123456789"),
        Err(Error::KeyTooLong { .. })
    ));
    assert!(matches!(
        cache.set("k", [0u8; 17]),
        Err(Error::ValueTooLarge { len: 17, max: 16 })
    ));
    cache.set("k", [0u8; 16])?;
    let e = cache.set("123456789", b"").expect_err("too long");
    assert!(e.to_string().contains("longer than the maximum"), "{e}");
    Ok(())
}

#[test]
fn lru_evicts_least_recently_read() -> R {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000_000);
    let cache = Cache::builder()
        .clock(Arc::new(clock.clone()))
        .max_size(350)
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())?;
    for k in ["a", "b", "c"] {
        cache.set(k, [0u8; 100])?;
        clock.advance(secs(1));
    }
    // Read "a": it becomes the most recently used.
    assert!(cache.get("a")?.is_some());
    clock.advance(secs(1));
    cache.set("d", [0u8; 100])?; // 400 > 350: evict down to 90 % (315)
    cache.maintain()?;
    assert!(cache.size()? <= 350);
    assert!(!cache.contains("b")?, "b was least recently used");
    assert!(cache.contains("a")?);
    assert!(cache.contains("d")?);
    Ok(())
}

#[test]
fn lru_order_survives_reopen() -> R {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000_000);
    let open = || {
        Cache::builder()
            .clock(Arc::new(clock.clone()))
            .max_size(350)
            .maintenance_interval(Duration::ZERO)
            .open(dir.path())
    };
    {
        let cache = open()?;
        for k in ["a", "b", "c"] {
            cache.set(k, [0u8; 100])?;
            clock.advance(secs(1));
        }
        cache.get("a")?;
        clock.advance(secs(1));
    } // dropping flushes the buffered recency
    let cache = open()?;
    cache.set("d", [0u8; 100])?;
    cache.maintain()?;
    assert!(!cache.contains("b")?);
    assert!(cache.contains("a")?);
    Ok(())
}

#[test]
fn background_eviction_comes_back_under_bound() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder()
        .max_size(100_000)
        .maintenance_interval(Duration::from_millis(10))
        .open(dir.path())?;
    for i in 0..2000 {
        cache.set(&format!("k{i}"), [0u8; 1000])?;
    }
    let deadline = std::time::Instant::now() + secs(10);
    while cache.size()? > 100_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cache.size()? <= 100_000, "size {}", cache.size()?);
    assert!(cache.contains("k1999")?, "the newest entry survives");
    Ok(())
}

#[test]
fn check_finds_and_repairs_file_damage() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(16).open(dir.path())?;
    for i in 0..3 {
        cache.set(&format!("f{i}"), vec![i as u8; 100])?;
    }
    assert!(cache.check(false)?.ok);
    let files: Vec<std::path::PathBuf> = walk_values(dir.path());
    assert_eq!(files.len(), 3);
    // Which key owns which file does not matter: break two of them, add an orphan.
    std::fs::remove_file(&files[0])?;
    std::fs::write(&files[1], b"short")?;
    let orphan = files[2].with_file_name("0123456789abcdef0123456789abcd.val");
    std::fs::write(&orphan, b"orphan")?;

    let mut errors = 0;
    for i in 0..3 {
        match cache.get(&format!("f{i}")) {
            Ok(v) => assert_eq!(v, Some(vec![i as u8; 100])),
            Err(Error::ValueFileMissing { .. } | Error::ValueFileTruncated { .. }) => errors += 1,
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(errors, 2);
    let report = cache.check(false)?;
    assert!(!report.ok);
    assert_eq!((report.dangling_rows, report.orphaned_files), (2, 1));
    let fixed = cache.check(true)?;
    assert!(fixed.ok && fixed.fixed);
    let clean = cache.check(false)?;
    assert!(clean.ok, "{clean:?}");
    assert_eq!(cache.len()?, 1);
    assert_eq!(cache.size()?, 100);
    assert!(!orphan.exists());
    Ok(())
}

/// Value files under `data/<bucket>/` (not `data/tmp`, nor the reserve file).
fn walk_values(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for bucket in std::fs::read_dir(dir.join("data")).expect("data") {
        let bucket = bucket.expect("entry");
        if bucket.file_name() == "tmp" || !bucket.file_type().expect("type").is_dir() {
            continue;
        }
        for f in std::fs::read_dir(bucket.path()).expect("bucket") {
            out.push(f.expect("file").path());
        }
    }
    out.sort();
    out
}

#[test]
fn check_repairs_counter_drift() -> R {
    let dir = tempfile::tempdir()?;
    {
        let cache = Cache::open(dir.path())?;
        cache.set("a", b"123")?;
    }
    {
        let conn = rusqlite_open(dir.path());
        conn.execute("UPDATE totals SET count = 99, size = 7", [])?;
    }
    let cache = Cache::open(dir.path())?;
    let r = cache.check(false)?;
    assert!(!r.ok && !r.counters_consistent);
    assert!(cache.check(true)?.ok);
    assert!(cache.check(false)?.ok);
    assert_eq!((cache.len()?, cache.size()?), (1, 3));
    Ok(())
}

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("sciqlop-cache.db")).expect("open db")
}

#[test]
fn bad_paths_and_files_give_clear_errors() -> R {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"x")?;
    assert!(matches!(Cache::open(&file), Err(Error::NotADirectory(_))));

    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage)?;
    std::fs::write(garbage.join("sciqlop-cache.db"), vec![0x42u8; 8192])?;
    let e = Cache::open(&garbage).expect_err("garbage");
    assert!(matches!(e, Error::NotACache { .. }), "{e:?}");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign)?;
    rusqlite::Connection::open(foreign.join("sciqlop-cache.db"))?
        .execute_batch("CREATE TABLE t(x)")?;
    assert!(matches!(
        Cache::open(&foreign),
        Err(Error::NotACache { .. })
    ));

    let idx = dir.path().join("idx");
    drop(Index::open(&idx)?);
    let e = Cache::open(&idx).expect_err("kind");
    assert!(matches!(e, Error::WrongKind { .. }), "{e:?}");
    assert!(e.to_string().contains("index"), "{e}");
    Ok(())
}

#[test]
fn read_only_directory_is_a_clear_error() -> R {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro)?;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555))?;
    // Root ignores permissions: only meaningful as an unprivileged user.
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        eprintln!("running as root: permission test skipped");
        return Ok(());
    }
    let e = Cache::open(ro.join("sub")).expect_err("read-only");
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    Ok(())
}

#[test]
fn index_has_no_expiry_or_stats_overhead_but_same_api() -> R {
    let dir = tempfile::tempdir()?;
    let index = Index::open(dir.path())?;
    index.set("a", b"1")?;
    assert!(index.add("b", b"2")?);
    assert_eq!(index.incr("c", 2, 0)?, 2);
    assert_eq!(index.pop("a")?.as_deref(), Some(&b"1"[..]));
    assert_eq!(index.len()?, 2);
    let v = index.get_or_set_with("m", || Ok::<_, Error>(b"computed".to_vec()))?;
    assert_eq!(v, b"computed");
    assert!(index.check(false)?.ok);
    Ok(())
}

#[test]
fn errors_convert_from_io() {
    fn f() -> Result<(), Error> {
        Err(std::io::Error::other("disk on fire"))?;
        Ok(())
    }
    assert!(f().expect_err("io").to_string().contains("disk on fire"));
}

#[test]
fn stores_are_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<Cache>();
    assert::<Index>();
    assert::<sciqlop_cache::FanoutCache>();
}

#[test]
fn absolute_expiry_and_entry_info() -> R {
    use std::time::{SystemTime, UNIX_EPOCH};
    let dir = tempfile::tempdir()?;
    let (cache, clock) = clocked(dir.path());
    let now = UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000);
    cache.set_with(
        "at",
        b"v",
        &SetOptions::new().expire_at(now + secs(10)).tag("t"),
    )?;
    cache.set_with("past", b"v", &SetOptions::new().expire_at(now - secs(1)))?;
    cache.set_with(
        "ancient",
        b"v",
        &SetOptions::new().expire_at(SystemTime::UNIX_EPOCH - secs(5)),
    )?;
    assert!(!cache.contains("past")? && !cache.contains("ancient")?);
    let info = cache.entry_info("at")?.expect("live");
    assert_eq!(info.expire, Some(now + secs(10)));
    assert_eq!(
        (info.size, info.tag.as_deref(), info.in_file),
        (1, Some("t"), false)
    );
    assert_eq!(cache.entry_info("past")?, None);
    assert_eq!(cache.entry_info("missing")?, None);
    clock.advance(secs(11));
    assert_eq!(cache.get("at")?, None);
    assert_eq!(cache.entry_info("at")?, None);
    let big = Cache::builder()
        .file_threshold(8)
        .open(dir.path().join("big"))?;
    big.set("f", [1u8; 100])?;
    let info = big.entry_info("f")?.expect("live");
    assert!(info.in_file && info.expire.is_none() && info.size == 100);
    Ok(())
}

#[test]
fn batches_are_all_or_nothing() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder()
        .file_threshold(64)
        .max_value_size(1000)
        .open(dir.path())?;
    cache.set_many_with(
        [("a", vec![1u8; 10]), ("b", vec![2u8; 100])],
        &SetOptions::new().tag("batch"),
    )?;
    assert_eq!(
        cache.get_many(&["b", "nope", "a"])?,
        [Some(vec![2u8; 100]), None, Some(vec![1u8; 10])]
    );
    // One entry over the limit: nothing of the batch is written.
    let e = cache.set_many([("c", vec![0u8; 10]), ("d", vec![0u8; 2000])]);
    assert!(matches!(e, Err(Error::ValueTooLarge { .. })), "{e:?}");
    assert!(!cache.contains("c")?);
    assert_eq!(cache.evict_tag("batch")?, 2);
    Ok(())
}

/// Sets a key on one kind of store or the other.
type SetFn = dyn Fn(&str) -> Result<(), Error>;

fn wal_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("sciqlop-cache.db-wal")).map_or(0, |m| m.len())
}

/// Readers look up every page in the WAL index, whose hash chains grow until the WAL
/// restarts: under steady writes the WAL must keep restarting (it once grew to 50 MB in
/// 5000 sets, and reads got twice as slow).
#[test]
fn wal_keeps_restarting_under_steady_writes() -> R {
    for index in [false, true] {
        let dir = tempfile::tempdir()?;
        let value = [7u8; 100];
        let set: Box<SetFn> = if index {
            let store = Index::open(dir.path())?;
            Box::new(move |k| store.set(k, value))
        } else {
            let store = Cache::open(dir.path())?;
            Box::new(move |k| store.set(k, value))
        };
        for i in 0..5000 {
            set(&format!("k{i:06}"))?;
        }
        let len = wal_len(dir.path());
        assert!(
            len < 8 << 20,
            "index={index}: WAL of {len} bytes after 5000 sets"
        );
    }
    Ok(())
}

/// Once writes pause, the maintenance thread checkpoints the whole WAL, so the next
/// write starts it over instead of appending.
#[test]
fn wal_is_checkpointed_when_writes_pause() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let value = [7u8; 100];
    let burst = |from: usize| -> Result<(), Error> {
        (from..from + 150).try_for_each(|i| cache.set(&format!("k{i:06}"), value))
    };
    let db_len = || std::fs::metadata(dir.path().join("sciqlop-cache.db")).map_or(0, |m| m.len());
    let before = db_len();
    burst(0)?;
    let first = wal_len(dir.path());
    assert!(first > 0);
    // The checkpoint copies the new pages into the database file (waits for at most
    // 10 s, for loaded machines; it takes 50 ms).
    let start = std::time::Instant::now();
    while db_len() == before && start.elapsed() < secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(db_len() > before, "no checkpoint after writes paused");
    std::thread::sleep(Duration::from_millis(200));
    burst(150)?;
    let second = wal_len(dir.path());
    assert!(
        second < first + first / 2,
        "the WAL grew from {first} to {second} bytes: it was not checkpointed"
    );
    Ok(())
}

/// While one instance reads steadily (its reads pinned, see engine/sqlite/pin.rs),
/// another instance's writes are seen at once, and its WAL keeps being copied back.
#[test]
fn steady_reader_sees_other_writers_and_lets_the_wal_restart() -> R {
    let dir = tempfile::tempdir()?;
    let reader = Cache::open(dir.path())?;
    let writer = Cache::open(dir.path())?;
    writer.set("k", b"0")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let stop = stop.clone();
        let reader = Cache::open(dir.path())?;
        std::thread::spawn(move || -> Result<u64, Error> {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                reader.get("k")?;
                n += 1;
            }
            Ok(n)
        })
    };
    // Let the background reads get pinned.
    std::thread::sleep(Duration::from_millis(300));
    let value = [7u8; 100];
    for i in 1..=3000u32 {
        writer.set("k", i.to_string())?;
        if i % 500 == 0 {
            assert_eq!(
                reader.get("k")?.as_deref(),
                Some(i.to_string().as_bytes()),
                "a read missed the latest write"
            );
        }
        writer.set(&format!("f{i}"), value)?;
    }
    stop.store(true, Ordering::Relaxed);
    let n = reads.join().map_err(|_| "reader thread panicked")??;
    assert!(n > 0);
    let len = wal_len(dir.path());
    assert!(
        len < 16 << 20,
        "WAL of {len} bytes: checkpoints were starved"
    );
    Ok(())
}

/// `set_many` runs inline values through one statement and files one by one: the
/// entries still apply in order (the last value of a key wins), and replaced value
/// files are removed.
#[test]
fn set_many_mixes_inline_and_file_values_in_order() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(64).open(dir.path())?;
    let big = vec![9u8; 100];
    cache.set_many([
        ("a", &b"1"[..]),
        ("b", &big[..]),
        ("a", &big[..]),
        ("c", &b"3"[..]),
        ("b", &b"2"[..]),
    ])?;
    assert_eq!(cache.get("a")?, Some(big.clone()));
    assert_eq!(cache.get("b")?.as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.get("c")?.as_deref(), Some(&b"3"[..]));
    assert_eq!(cache.len()?, 3);
    assert_eq!(cache.size()?, 102);
    let report = cache.check(false)?;
    assert!(report.ok && report.counters_consistent, "{report:?}");
    assert_eq!(report.orphaned_files, 0);
    // Inside a transaction that rolls back, nothing stays.
    let r: Result<(), Error> = cache.transact(|tx| {
        tx.set_many([("d", &big[..]), ("e", &b"5"[..])])?;
        Err(Error::InvalidArgument("roll back".into()))
    });
    assert!(r.is_err());
    assert_eq!(cache.get("d")?, None);
    assert_eq!(cache.get("e")?, None);
    let report = cache.check(false)?;
    assert!(report.ok && report.orphaned_files == 0, "{report:?}");
    Ok(())
}

#[test]
fn check_reports_tables_another_program_added() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path()).expect("open");
    cache.set("k", b"v").expect("set");
    assert!(cache.check(false).expect("check").foreign_tables.is_empty());
    // What the original sciqlop-cache does on opening our directory: its own tables in
    // the database of the same name.
    let db = dir.path().join("sciqlop-cache.db");
    rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE cache (key TEXT PRIMARY KEY, path TEXT, value BLOB, size INT);
                 CREATE TABLE trash (path TEXT PRIMARY KEY, ts INT);",
            )
        })
        .expect("foreign tables");
    let r = cache.check(true).expect("check");
    assert_eq!(r.foreign_tables, ["cache", "trash"]);
    assert!(!r.ok, "reported, not repaired");
    assert_eq!(cache.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(
        cache.check(false).expect("check").foreign_tables.len(),
        2,
        "left as they are"
    );
}

/// Every file and directory under `dir`, with file sizes.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((e.path(), if m.is_dir() { 0 } else { m.len() }));
        }
    }
    out.sort();
    out
}

#[test]
fn foreign_and_unrelated_directories_are_refused_untouched() {
    use sciqlop_cache::FanoutCache;
    let root = tempfile::tempdir().expect("tempdir");
    let sql = |path: &std::path::Path, schema: &str| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        rusqlite::Connection::open(path)
            .and_then(|c| c.execute_batch(schema))
            .expect("sqlite");
    };
    let original = "CREATE TABLE cache (key TEXT PRIMARY KEY NOT NULL, path TEXT, value BLOB, size INT) WITHOUT ROWID; CREATE TABLE meta (key TEXT PRIMARY KEY, value);";
    /// What the directory is, how to make it, what the refusal says.
    type Case<'a> = (&'a str, Box<dyn Fn(&std::path::Path) + 'a>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "original store",
            Box::new(|d| sql(&d.join("sciqlop-cache.db"), original)),
            "original sciqlop-cache",
        ),
        (
            "original fanout",
            Box::new(|d| sql(&d.join("00").join("sciqlop-cache.db"), original)),
            "original sciqlop-cache",
        ),
        (
            "diskcache",
            Box::new(|d| {
                sql(
                    &d.join("cache.db"),
                    "CREATE TABLE Cache (rowid INTEGER PRIMARY KEY);",
                )
            }),
            "diskcache",
        ),
        (
            "other database",
            Box::new(|d| sql(&d.join("sciqlop-cache.db"), "CREATE TABLE t (x);")),
            "no sciqlop-cache metadata",
        ),
        (
            "unrelated files",
            Box::new(|d| {
                std::fs::create_dir_all(d.join("src")).expect("mkdir");
                std::fs::write(d.join("notes.txt"), "mine").expect("write");
            }),
            "not empty",
        ),
    ];
    for (what, make, says) in cases {
        let dir = root.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        make(&dir);
        let before = tree(&dir);
        let single = Cache::open(&dir).map(|_| ()).expect_err(what).to_string();
        let fanout = FanoutCache::open(&dir)
            .map(|_| ())
            .expect_err(what)
            .to_string();
        assert!(single.contains(says), "{what}: {single}");
        // A database at the top is a single store's place: a fanout is refused there.
        assert!(
            fanout.contains(says) || fanout.contains("not a fanout"),
            "{what}: {fanout}"
        );
        if says != "not empty" && says != "no sciqlop-cache metadata" {
            assert!(single.contains("sqcache migrate"), "{what}: {single}");
        }
        assert_eq!(tree(&dir), before, "{what}: nothing created or changed");
    }
    // Hidden files and an empty directory are fine.
    let ok = root.path().join("hidden");
    std::fs::create_dir_all(&ok).expect("mkdir");
    std::fs::write(ok.join(".gitignore"), "*").expect("write");
    Cache::open(&ok).expect("a directory with only hidden files");
}

#[test]
fn an_optimistic_incr_keeps_the_counters_expiry_and_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Cache::open(dir.path()).expect("open");
    c.set_with(
        "n",
        b"5",
        &SetOptions::new().expire(Duration::from_secs(3600)).tag("t"),
    )
    .expect("set");
    let before = c.entry_info("n").expect("info").expect("live");
    let mut tx = c.optimistic();
    assert_eq!(tx.incr("n", 2, 0).expect("incr"), 7);
    assert_eq!(tx.incr("n", 1, 0).expect("incr again"), 8);
    tx.incr("fresh", 1, 0).expect("incr a new key");
    tx.commit().expect("commit");
    let after = c.entry_info("n").expect("info").expect("live");
    assert_eq!(c.get("n").expect("get").as_deref(), Some(&b"8"[..]));
    assert_eq!(after.tag.as_deref(), Some("t"));
    assert_eq!(after.expire, before.expire);
    let fresh = c.entry_info("fresh").expect("info").expect("live");
    assert!(fresh.expire.is_none() && fresh.tag.is_none());
    assert_eq!(c.evict_tag("t").expect("evict"), 1);
}
