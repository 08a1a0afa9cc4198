//! The primitives that bindings (Python, C) build on: caller-owned transactions, store
//! metadata, a bound changed at run time, eviction on demand, entries read with their
//! metadata, busy timeouts and reopening (after `fork`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, Error, FanoutCache, Index, ManualClock, SetOptions};

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn begin_commit_and_rollback() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(16).open(dir.path())?;
    let tx = cache.begin()?;
    cache.set("a", b"1")?;
    cache.set("big", [7u8; 100])?;
    assert_eq!(
        cache.get("a")?.as_deref(),
        Some(&b"1"[..]),
        "own writes are seen"
    );
    tx.rollback();
    assert_eq!(cache.get("a")?, None);
    assert_eq!(cache.get("big")?, None);
    assert!(cache.check(false)?.ok, "rolled-back value file removed");

    let tx = cache.begin()?;
    cache.set("a", b"2")?;
    let inner = cache.begin()?;
    cache.set("b", b"x")?;
    inner.rollback();
    tx.commit()?;
    assert_eq!(cache.get("a")?.as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.get("b")?, None, "the savepoint rolled back alone");

    // Dropping is rolling back.
    {
        let _tx = cache.begin()?;
        cache.set("c", b"3")?;
    }
    assert_eq!(cache.get("c")?, None);
    Ok(())
}

#[test]
fn an_open_transaction_is_invisible_to_other_threads() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Arc::new(Cache::open(dir.path())?);
    let tx = cache.begin()?;
    cache.set("k", b"v")?;
    let other = cache.clone();
    let seen = std::thread::spawn(move || other.get("k"))
        .join()
        .expect("thread")?;
    assert_eq!(seen, None);
    tx.commit()?;
    assert_eq!(cache.get("k")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn fanout_begin_is_scoped_to_the_shard_of_its_key() -> R {
    let dir = tempfile::tempdir()?;
    let fc = FanoutCache::builder().shards(4).open(dir.path())?;
    let tx = fc.begin("k")?;
    fc.set("k", b"v")?;
    tx.rollback();
    assert_eq!(fc.get("k")?, None);
    Ok(())
}

#[test]
fn metadata_survives_reopen_and_is_not_an_entry() -> R {
    let dir = tempfile::tempdir()?;
    {
        let cache = Cache::open(dir.path())?;
        assert_eq!(cache.metadata("serializer")?, None);
        cache.set_metadata("serializer", Some("pickle"))?;
        cache.set_metadata("serializer", Some("msgspec"))?;
        assert_eq!(cache.len()?, 0);
        assert_eq!(cache.keys().count(), 0);
        cache.clear()?;
    }
    let cache = Cache::open(dir.path())?;
    assert_eq!(cache.metadata("serializer")?.as_deref(), Some("msgspec"));
    // Names cannot reach the store's own format records.
    assert_eq!(cache.metadata("format")?, None);
    cache.set_metadata("format", Some("x"))?;
    drop(cache);
    assert!(Cache::open(dir.path()).is_ok(), "store format untouched");

    let index = Index::open(dir.path().join("i"))?;
    index.set_metadata("m", Some("1"))?;
    assert_eq!(index.metadata("m")?.as_deref(), Some("1"));
    index.set_metadata("m", None)?;
    assert_eq!(index.metadata("m")?, None);

    let fc = FanoutCache::builder()
        .shards(3)
        .open(dir.path().join("f"))?;
    fc.set_metadata("m", Some("2"))?;
    drop(fc);
    let fc = FanoutCache::open(dir.path().join("f"))?;
    assert_eq!(fc.metadata("m")?.as_deref(), Some("2"));
    Ok(())
}

#[test]
fn max_size_changed_at_run_time_and_evict_on_demand() -> R {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000_000);
    let cache = Cache::builder()
        .clock(Arc::new(clock.clone()))
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())?;
    assert_eq!(cache.max_size(), 0);
    for i in 0..10 {
        cache.set(&format!("k{i}"), [0u8; 100])?;
        clock.advance(Duration::from_millis(1));
    }
    assert_eq!(cache.evict()?, 0, "unbounded: nothing to evict");
    cache.set_max_size(500)?;
    assert_eq!(cache.max_size(), 500);
    // Set to a bound already exceeded: with no background thread, eviction ran inline.
    let left = cache.len()?;
    assert!(left <= 5, "{left} entries left over a 500 B bound");
    assert!(cache.size()? <= 450);
    // The oldest went first.
    assert!(!cache.contains("k0")?);
    assert!(cache.contains("k9")?);
    cache.set_max_size(0)?;
    for i in 10..20 {
        cache.set(&format!("k{i}"), [0u8; 100])?;
    }
    assert_eq!(cache.evict()?, 0);
    cache.set_max_size(1000)?;
    cache.set_max_size(2000)?;
    assert_eq!(cache.evict()?, 0, "under the bound");
    Ok(())
}

#[test]
fn evict_returns_the_count_it_evicted() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder()
        .max_size(1000)
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())?;
    // Written through another (unbounded) handle: this one has not noticed.
    let writer = Cache::builder()
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())?;
    writer.set_many((0..30).map(|i| (format!("k{i}"), [1u8; 100])))?;
    let before = cache.len()?;
    assert_eq!(before, 30);
    let n = cache.evict()?;
    assert!(n > 0);
    assert_eq!(cache.len()?, before - n);
    assert!(cache.size()? <= 900);
    Ok(())
}

#[test]
fn get_entry_and_pop_entry_carry_expiry_and_tag() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(64).open(dir.path())?;
    let opts = SetOptions::new().expire(Duration::from_secs(60)).tag("t");
    cache.set_with("small", b"abc", &opts)?;
    cache.set_with("big", [9u8; 100], &opts)?;
    cache.set("plain", b"p")?;
    let (v, info) = cache.get_entry("small")?.expect("live");
    assert_eq!(v, b"abc");
    assert_eq!(info.tag.as_deref(), Some("t"));
    assert_eq!(info.size, 3);
    assert!(!info.in_file);
    let at = info.expire.expect("expiry");
    let left = at.duration_since(std::time::SystemTime::now())?;
    assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60));

    let (v, info) = cache.get_entry("big")?.expect("live");
    assert_eq!(v, [9u8; 100]);
    assert!(info.in_file);
    assert_eq!(info.tag.as_deref(), Some("t"));

    let (_, info) = cache.get_entry("plain")?.expect("live");
    assert_eq!((info.expire, info.tag), (None, None));
    assert_eq!(cache.get_entry("missing")?, None);

    let (v, info) = cache.pop_entry("big")?.expect("live");
    assert_eq!((v.len(), info.in_file), (100, true));
    assert_eq!(cache.pop_entry("big")?, None);
    let (v, info) = cache.pop_entry("small")?.expect("live");
    assert_eq!(
        (v.as_slice(), info.tag.as_deref()),
        (&b"abc"[..], Some("t"))
    );
    assert!(cache.check(false)?.ok);
    assert_eq!(cache.stats().hits, 5);
    Ok(())
}

#[test]
fn busy_timeout_ends_a_wait_for_another_writer() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Arc::new(
        Cache::builder()
            .busy_timeout(Duration::from_millis(200))
            .open(dir.path())?,
    );
    // Another process's write transaction, through a second connection.
    let db = dir.path().join("sciqlop-cache.db");
    let other = rusqlite::Connection::open(&db)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let start = Instant::now();
    let err = cache.set("k", b"v").expect_err("locked");
    let waited = start.elapsed();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("sciqlop-cache.db"), "{err}");
    assert!(
        waited >= Duration::from_millis(150),
        "gave up after {waited:?}"
    );
    // Reads do not wait for writers.
    assert_eq!(cache.get("k")?, None);
    other.execute_batch("COMMIT")?;
    cache.set("k", b"v")?;

    // Another thread's transaction in this process is bounded the same way.
    let tx = cache.begin()?;
    let c = cache.clone();
    let err = std::thread::spawn(move || c.set("k2", b"v"))
        .join()
        .expect("thread")
        .expect_err("locked");
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    tx.commit()?;
    Ok(())
}

#[test]
fn reopen_gives_an_independent_handle_with_the_same_settings() -> R {
    let dir = tempfile::tempdir()?;
    let cache = Cache::builder().file_threshold(10).open(dir.path())?;
    cache.set("k", [1u8; 20])?;
    let again = cache.reopen()?;
    drop(cache);
    assert_eq!(again.get("k")?.as_deref(), Some(&[1u8; 20][..]));
    again.set("j", [2u8; 20])?;
    assert!(
        again.entry_info("j")?.expect("live").in_file,
        "threshold kept"
    );

    let fc = FanoutCache::builder()
        .shards(2)
        .open(dir.path().join("f"))?;
    fc.set("x", b"1")?;
    let fc2 = fc.reopen()?;
    drop(fc);
    assert_eq!(fc2.get("x")?.as_deref(), Some(&b"1"[..]));
    // Shard routing is kept: a transaction on one shard still refuses others' keys.
    let other_key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| fc2.shard_for(k).path() != fc2.shard_for("x").path())
        .expect("a key of the other shard");
    let r: Result<(), Error> = fc2.transact("x", |tx| tx.set(&other_key, b"v"));
    assert!(matches!(r, Err(Error::WrongShard { .. })), "{r:?}");
    Ok(())
}
