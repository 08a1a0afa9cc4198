//! Regressions for the defects an adversarial test run found in the core (issue #21):
//! each test names the item it covers and fails on the code before the fix. The WAL
//! bound (item 1) is in `wal_bound.rs`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sciqlop_cache::{Cache, Error, FanoutCache, Index};
use sciqlop_cache_tests::{DB_FILE, temp_files, value_files};

fn store(dir: &Path) -> Cache {
    Cache::builder()
        .file_threshold(64)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
        .expect("open")
}

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).expect("open db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    c
}

/// Runs `f` on a thread and fails the test if it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

/// Item 2: `check(true)` beside writers deleted their in-progress temporary files (a
/// window between creating a temporary file and locking it), so their `set` failed,
/// and reported live temporary files as orphans.
#[test]
fn check_fix_beside_writers_never_breaks_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(
        Cache::builder()
            .file_threshold(1024)
            .open(dir.path())
            .expect("open"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sets = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (c, stop, sets) = (cache.clone(), stop.clone(), sets.clone());
            std::thread::spawn(move || -> Result<(), Error> {
                let value = vec![t as u8; 20_000];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    c.set(&format!("t{t}/k{}", i % 50), &value)?;
                    sets.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut checks = 0;
    while Instant::now() < deadline {
        let r = cache.check(true).expect("check(true)");
        assert_eq!(
            r.orphaned_files, 0,
            "live temporary files reported as orphans: {r:?}"
        );
        assert!(r.ok, "{r:?}");
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join()
            .expect("writer thread")
            .expect("a set failed beside check(true)");
    }
    println!(
        "{checks} checks beside {} sets",
        sets.load(Ordering::Relaxed)
    );
    assert!(checks > 10 && sets.load(Ordering::Relaxed) > 100);
    assert!(cache.check(false).expect("check").ok);
}

/// Item 2, across processes: temporary files of a live writer process are never taken
/// for orphans; those of a process that died are.
#[test]
fn temporary_files_of_a_dead_process_are_orphans_and_a_live_ones_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", vec![1u8; 100]).expect("set");
    // What a killed writer leaves: its lock file (unlocked now) and a temporary file.
    let tmp = dir.path().join("data/tmp");
    std::fs::write(tmp.join("0123456789abcdef0123456789abcdef.lock"), b"").expect("lock file");
    std::fs::write(
        tmp.join("0123456789abcdef0123456789abcdef-00000000000000aa.tmp"),
        b"x",
    )
    .expect("temp file");
    // And a temporary file whose owner's lock file is already gone.
    std::fs::write(
        tmp.join("ffffffffffffffffffffffffffffffff-00000000000000bb.tmp"),
        b"y",
    )
    .expect("temp file");
    let r = cache.check(false).expect("check");
    assert_eq!(r.orphaned_files, 3, "{r:?}");
    let r = cache.check(true).expect("check(true)");
    assert!(r.ok && r.fixed, "{r:?}");
    assert!(temp_files(dir.path()).is_empty());
    // This process's own lock file stays (it is alive and locked).
    let left: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .expect("read tmp")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(cache.check(false).expect("check").ok);
    assert_eq!(cache.get("k").expect("get").map(|v| v.len()), Some(100));
}

/// Item 3: a lock released inside a transaction that rolled back stayed held until it
/// expired (the unlock joined the transaction and was rolled back with it).
#[test]
fn a_lock_released_inside_a_rolled_back_transaction_is_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = store(dir.path());
    let g = c.lock("lr", Duration::from_secs(600)).expect("lock");
    let r: Result<(), Error> = c.transact(|_| {
        drop(g);
        Err(Error::InvalidArgument("x".into()))
    });
    assert!(r.is_err());
    let again = c.try_lock("lr", Duration::from_secs(1)).expect("try_lock");
    assert!(again.is_some(), "the lock stayed held after the rollback");
    drop(again);

    // Released inside a transaction that commits: released as well.
    let g = c.lock("lc", Duration::from_secs(600)).expect("lock");
    c.transact(|tx| {
        drop(g);
        tx.set("x", b"1")
    })
    .expect("transact");
    assert!(
        c.try_lock("lc", Duration::from_secs(1))
            .expect("try")
            .is_some()
    );

    // Taking a lock inside a transaction is refused clearly: the transaction would take
    // it back on rollback while the guard still believed it held.
    let r = c.transact(|tx| {
        tx.try_lock("in-tx", Duration::from_secs(5))
            .map(|g| g.is_some())
    });
    assert!(
        matches!(r, Err(Error::InvalidArgument(ref m)) if m.contains("transaction")),
        "{r:?}"
    );
}

/// Item 4: the value-file path stored in the database was not validated: after
/// `UPDATE entries SET file = '/some/where/victim.txt'`, `get` read that file and
/// `delete` (and `check(true)`) unlinked it, outside the store.
#[test]
fn value_paths_outside_the_store_are_never_read_or_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, b"precious").expect("victim");
    let store_dir = dir.path().join("store");
    let cache = store(&store_dir);
    for k in ["abs", "rel", "del", "chk"] {
        cache.set(k, vec![7u8; 100]).expect("set");
    }
    let rel_to_victim = format!(
        "../../../{}/victim.txt",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
    );
    {
        let conn = db(&store_dir);
        for (k, path) in [
            ("abs", victim.to_str().expect("utf-8").to_owned()),
            ("rel", rel_to_victim.clone()),
            ("del", victim.to_str().expect("utf-8").to_owned()),
            ("chk", rel_to_victim),
        ] {
            conn.execute(
                "UPDATE entries SET file = ?2, size = 8 WHERE key = ?1",
                rusqlite::params![k, path],
            )
            .expect("tamper");
        }
    }
    for k in ["abs", "rel"] {
        let e = cache.get(k).expect_err("a foreign path");
        assert!(matches!(e, Error::ValueFileInvalid { .. }), "{k}: {e:?}");
        assert!(
            e.to_string()
                .contains("not one of this store's value files"),
            "{e}"
        );
    }
    assert!(cache.delete("del").expect("delete removes the row"));
    assert!(cache.pop("abs").is_err(), "pop reads the value");
    let r = cache.check(false).expect("check");
    assert!(!r.ok && r.dangling_rows >= 3, "{r:?}");
    let r = cache.check(true).expect("check(true)");
    assert!(r.fixed, "{r:?}");
    cache.maintain().expect("drain discarded files");
    assert!(cache.check(false).expect("check").ok);
    assert_eq!(
        std::fs::read(&victim).expect("the victim is still there"),
        b"precious"
    );
    assert_eq!(cache.len().expect("len"), 0);
}

/// Item 4: a bucket directory replaced by a link to another directory (another store's
/// bucket, say) never makes the store read or delete the files it points to.
#[test]
fn a_bucket_behind_a_link_is_never_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a_dir = dir.path().join("a");
    let cache = store(&a_dir);
    cache.set("k", vec![1u8; 100]).expect("set");
    drop(cache);
    let file = value_files(&a_dir).pop().expect("one value file");
    let bucket = file.parent().expect("bucket").to_owned();
    // Move the real bucket elsewhere and link to it: the name resolves, but through a link.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(&bucket, &elsewhere).expect("move bucket");
    symlink(&elsewhere, &bucket).expect("link");
    let cache = store(&a_dir);
    let e = cache.get("k").expect_err("behind a link");
    assert!(matches!(e, Error::ValueFileInvalid { .. }), "{e:?}");
    assert!(cache.delete("k").expect("delete"));
    cache.maintain().expect("drain");
    let r = cache.check(true).expect("check(true)");
    assert!(r.fixed || r.ok, "{r:?}");
    let target = elsewhere.join(file.file_name().expect("name"));
    assert!(target.exists(), "a file behind the link was deleted");
    assert!(cache.check(false).expect("check").ok);
    // The link itself (inside the store) is gone; what it pointed to is not.
    assert!(std::fs::symlink_metadata(&bucket).is_err());
    assert!(elsewhere.exists());
}

/// Item 6: a FIFO in place of a value file made `get` hang forever (blocking open).
#[test]
fn a_fifo_in_place_of_a_value_file_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", vec![1u8; 100]).expect("set");
    let file = value_files(dir.path()).pop().expect("value file");
    std::fs::remove_file(&file).expect("rm");
    let st = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let d = dir.path().to_owned();
    let e = within(Duration::from_secs(10), "get of a FIFO", move || {
        store(&d).get("k")
    })
    .expect_err("a FIFO is not a value");
    assert!(
        matches!(e, Error::ValueFileInvalid { ref reason, .. } if reason.contains("regular")),
        "{e:?}"
    );
    let r = cache.check(true).expect("check(true)");
    assert!(r.fixed, "{r:?}");
    assert!(cache.check(false).expect("check").ok);
}

/// Item 7: `check(true)` could not repair a value path that is a directory
/// (`IsADirectory` on every run; the store stayed not ok).
#[test]
fn check_fix_repairs_a_directory_in_place_of_a_value_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", vec![1u8; 100]).expect("set");
    cache.set("other", vec![2u8; 100]).expect("set");
    let file = value_files(dir.path())
        .into_iter()
        .next()
        .expect("value file");
    std::fs::remove_file(&file).expect("rm");
    std::fs::create_dir_all(file.join("inside")).expect("a directory in its place");
    let r = cache.check(false).expect("check");
    assert!(!r.ok && r.dangling_rows == 1, "{r:?}");
    let r = cache.check(true).expect("check(true) must not fail");
    assert!(r.fixed, "{r:?}");
    cache.maintain().expect("drain");
    let r = cache.check(false).expect("check");
    assert!(r.ok, "after the fix: {r:?}");
    assert!(!file.exists(), "the directory was removed");
    assert_eq!(cache.len().expect("len"), 1);
}

/// Item 8: a counter stored in a file (`file_threshold(1)`) read as a counter with
/// `get_counter`, but `incr` said `NotACounter`.
#[test]
fn a_counter_stored_in_a_file_can_be_incremented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::builder()
        .file_threshold(1)
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())
        .expect("open");
    cache.set("k", b"5").expect("set");
    assert!(cache.entry_info("k").expect("info").expect("live").in_file);
    assert_eq!(cache.get_counter("k").expect("get_counter"), Some(5));
    assert_eq!(cache.incr("k", 2, 0).expect("incr"), 7);
    assert_eq!(cache.get("k").expect("get").as_deref(), Some(&b"7"[..]));
    assert_eq!(cache.decr("k", 10, 0).expect("decr"), -3);
    cache.maintain().expect("drain");
    assert!(cache.check(false).expect("check").ok, "no file left behind");
    assert_eq!(value_files(dir.path()).len() as u64, 0);
}

/// Item 9: `decr(k, i64::MIN, _)` on -1 was `CounterOverflow` although the result,
/// `i64::MAX`, fits.
#[test]
fn decr_by_i64_min_works_when_the_result_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", b"-1").expect("set");
    assert_eq!(cache.decr("k", i64::MIN, 0).expect("decr"), i64::MAX);
    assert_eq!(
        cache.decr("fresh", i64::MIN, -1).expect("decr of absent"),
        i64::MAX
    );
    assert!(matches!(
        cache.decr("k", i64::MIN, 0),
        Err(Error::CounterOverflow { .. })
    ));
    let idx = Index::open(dir.path().join("i")).expect("index");
    idx.set("n", b"-5").expect("set");
    assert_eq!(
        idx.decr("n", i64::MIN + 10, 0).expect("decr"),
        i64::MAX - 14
    );
}

/// Item 10: `keys_page("", None, 0)` returned one key; lock names skipped the key
/// length check (a 4097-byte name was accepted).
#[test]
fn zero_page_and_overlong_lock_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("a", b"1").expect("set");
    cache.set("b", b"2").expect("set");
    assert_eq!(
        cache.keys_page("", None, 0).expect("page"),
        Vec::<String>::new()
    );
    assert_eq!(cache.keys_page("", None, 1).expect("page"), ["a"]);
    let long = "x".repeat(4097);
    assert!(matches!(
        cache.try_lock(&long, Duration::from_secs(1)),
        Err(Error::KeyTooLong { len: 4097, .. })
    ));
    assert!(matches!(
        cache.lock_timeout(&long, Duration::from_secs(1), Duration::from_millis(1)),
        Err(Error::KeyTooLong { .. })
    ));
    let fc = FanoutCache::builder()
        .shards(2)
        .open(dir.path().join("f"))
        .expect("fanout");
    assert!(matches!(
        fc.try_lock(&long, Duration::from_secs(1)),
        Err(Error::KeyTooLong { .. })
    ));
    assert_eq!(
        fc.keys_page("", None, 0).expect("page"),
        Vec::<String>::new()
    );
}

/// Item 5: two threads each in a transaction on one shard and writing to the other's
/// shard deadlocked forever. A write to another shard from inside a shard transaction
/// now fails at once with `WrongShard`.
#[test]
fn fanout_writes_to_another_shard_inside_a_transaction_fail_instead_of_deadlocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fc = Arc::new(
        FanoutCache::builder()
            .shards(4)
            .open(dir.path())
            .expect("fanout"),
    );
    let a = "a".to_owned();
    let b = (0..1000)
        .map(|i| format!("b{i}"))
        .find(|k| sciqlop_cache::fanout::shard_of(k, 4) != sciqlop_cache::fanout::shard_of(&a, 4))
        .expect("a key on another shard");
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let run = |mine: String, theirs: String| {
        let (fc, barrier) = (fc.clone(), barrier.clone());
        std::thread::spawn(move || {
            fc.transact(&mine.clone(), |tx| {
                tx.set(&mine, b"1")?;
                barrier.wait();
                fc.set(&theirs, b"2")
            })
        })
    };
    let t1 = run(a.clone(), b.clone());
    let t2 = run(b.clone(), a.clone());
    let (r1, r2) = within(
        Duration::from_secs(20),
        "the crossed transactions",
        move || (t1.join().expect("t1"), t2.join().expect("t2")),
    );
    for r in [r1, r2] {
        assert!(matches!(r, Err(Error::WrongShard { .. })), "{r:?}");
    }
    // Reads of another shard are fine, writes to the transaction's own shard join it.
    fc.set(&b, b"v").expect("set");
    let got = fc
        .transact(&a, |tx| {
            tx.set(&a, b"x")?;
            fc.set(&a, b"y")?;
            fc.get(&b)
        })
        .expect("transact");
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    assert_eq!(fc.get(&a).expect("get").as_deref(), Some(&b"y"[..]));
}

/// Item 12: deleting `sciqlop-fanout.toml` and reopening with another shard count
/// silently re-sharded the data (every key routed elsewhere); `Cache::open` on a fanout
/// directory succeeded and created a stray database.
#[test]
fn a_fanout_without_its_marker_is_not_resharded_and_is_not_a_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("f");
    {
        let fc = FanoutCache::builder().shards(4).open(&f).expect("fanout");
        for i in 0..50 {
            fc.set(&format!("k{i}"), b"v").expect("set");
        }
    }
    let e = Cache::open(&f).expect_err("a fanout is not a cache");
    assert!(matches!(e, Error::WrongKind { .. }), "{e:?}");
    assert!(
        !f.join(DB_FILE).exists(),
        "Cache::open created a stray database"
    );

    std::fs::remove_file(f.join("sciqlop-fanout.toml")).expect("rm marker");
    let e = FanoutCache::builder()
        .shards(8)
        .open(&f)
        .expect_err("another count");
    assert!(
        matches!(
            e,
            Error::ShardCountMismatch {
                on_disk: 4,
                requested: 8,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        !f.join("004").exists(),
        "shard directories were created for 8 shards"
    );
    // Opened with its count (or none), it finds its data and gets its marker back.
    let fc = FanoutCache::open(&f).expect("reopen");
    assert_eq!(fc.shard_count(), 4);
    assert_eq!(fc.len().expect("len"), 50);
    assert!(f.join("sciqlop-fanout.toml").exists());
}

/// Item 13: same-length garbage written into a value file was returned silently. Value
/// files now carry an xxh3 checksum in their name, verified on read and by `check`.
#[test]
fn same_length_garbage_in_a_value_file_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = store(dir.path());
    cache.set("k", vec![1u8; 1000]).expect("set");
    let file = value_files(dir.path()).pop().expect("value file");
    std::fs::write(&file, vec![2u8; 1000]).expect("overwrite with garbage");
    let e = cache.get("k").expect_err("changed bytes");
    assert!(matches!(e, Error::ValueFileCorrupt { .. }), "{e:?}");
    // Unverified reads are a documented choice.
    let unverified = Cache::builder()
        .verify_values(false)
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())
        .expect("open");
    assert_eq!(unverified.get("k").expect("get"), Some(vec![2u8; 1000]));
    let r = cache.check(false).expect("check");
    assert_eq!(r.dangling_rows, 1, "{r:?}");
    assert!(cache.check(true).expect("fix").fixed);
    assert_eq!(cache.get("k").expect("get"), None);
    cache.maintain().expect("drain");
    assert!(cache.check(false).expect("check").ok);
}
