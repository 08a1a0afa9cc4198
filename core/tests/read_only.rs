//! Stores opened read-only (`Builder::read_only`): every read works, every write is
//! `Error::ReadOnly`, nothing is created or changed on disk. (Stores this user cannot
//! write are opened read-only without asking: see tests/tests/bad_disks.rs and
//! cli/tests/conventions.rs, which drop privileges.)

use std::path::Path;
use std::time::Duration;

use sciqlop_cache::{Cache, Error, FanoutCache, SetOptions};

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        let name = p.display().to_string();
        // SQLite's WAL and index files, which a read-only connection makes beside a
        // database in a writable directory (empty; the next writer removes them).
        if name.ends_with("-wal") || name.ends_with("-shm") {
            continue;
        }
        out.push(name);
        if p.is_dir() {
            out.extend(listing(&p));
        }
    }
    out.sort();
    out
}

#[test]
fn a_read_only_store_reads_and_refuses_every_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    {
        let c = Cache::builder().max_size(1 << 20).open(&dir).expect("open");
        c.set_with("k", b"v", &SetOptions::new().tag("t"))
            .expect("set");
        c.set("big", vec![5u8; 100_000]).expect("set");
        c.incr("n", 2, 0).expect("incr");
        c.namespace("other")
            .expect("ns")
            .set("x", b"y")
            .expect("set");
    }
    let before = listing(&dir);
    let ro = Cache::builder()
        .read_only(true)
        .max_size(10)
        .maintenance_interval(Duration::from_millis(1))
        .open(&dir)
        .expect("open read-only");
    assert_eq!(ro.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(ro.get("big").expect("get"), Some(vec![5u8; 100_000]));
    assert_eq!(ro.len().expect("len"), 3);
    assert_eq!(
        ro.namespace("other")
            .expect("ns")
            .get("x")
            .expect("get")
            .as_deref(),
        Some(&b"y"[..])
    );
    for e in [
        ro.set("k", b"w").expect_err("set"),
        ro.set("big2", vec![1u8; 100_000]).expect_err("set a file"),
        ro.delete("k").map(|_| ()).expect_err("delete"),
        ro.incr("n", 1, 0).map(|_| ()).expect_err("incr"),
        ro.clear().map(|_| ()).expect_err("clear"),
        ro.evict_tag("t").map(|_| ()).expect_err("evict_tag"),
        ro.transact(|_| Ok(())).expect_err("transact"),
        ro.check(true).map(|_| ()).expect_err("check --fix"),
    ] {
        assert!(
            matches!(&e, Error::ReadOnly { reason, .. } if reason.contains("opened read-only")),
            "{e:?}"
        );
    }
    assert!(ro.check(false).expect("check").ok);
    ro.maintain().expect("nothing to do");
    // An optimistic transaction that only read commits; one that writes is refused.
    let mut tx = ro.optimistic();
    assert_eq!(tx.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    tx.commit()
        .expect("a read-only optimistic transaction commits");
    let mut tx = ro.optimistic();
    tx.set("k", b"z").expect("buffered");
    assert!(matches!(tx.commit(), Err(Error::ReadOnly { .. })));
    // The bound is kept in memory only: nothing is evicted.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ro.len().expect("len"), 3);
    drop(ro);
    assert_eq!(
        listing(&dir),
        before,
        "a read-only open changes nothing in the store"
    );
}

#[test]
fn a_read_only_open_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("none");
    let e = Cache::builder()
        .read_only(true)
        .open(&missing)
        .expect_err("no store");
    assert!(matches!(e, Error::NotACache { .. }), "{e:?}");
    let e = FanoutCache::builder()
        .configure(|b| b.read_only(true))
        .open(&missing)
        .expect_err("no fanout");
    assert!(matches!(e, Error::NotACache { .. }), "{e:?}");
    assert!(!missing.exists(), "nothing was made");
    // An existing fanout reads; writes are refused.
    let f = tmp.path().join("fan");
    FanoutCache::builder()
        .shards(3)
        .open(&f)
        .expect("create")
        .set("k", b"v")
        .expect("set");
    let ro = FanoutCache::builder()
        .configure(|b| b.read_only(true))
        .open(&f)
        .expect("open read-only");
    assert_eq!(ro.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    assert!(matches!(ro.set("k", b"w"), Err(Error::ReadOnly { .. })));
}
