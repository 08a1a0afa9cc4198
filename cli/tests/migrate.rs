//! Migration from directories made by the real diskcache 5.6.3, checked entry by entry.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::OptionalExtension;
use sciqlop_cache::{Cache, FanoutCache, Index};
use sqcache::migrate::{MigrateOptions, MigrationReport, PickledValues, migrate};
use sqcache::store::{AnyStore, StoreExt, StoreKind, open_existing};

/// `(expire micros, tag)` of `key` in a single sciqlop-cache store, read from its table.
fn expire_and_tag(dir: &Path, key: &str) -> (Option<i64>, Option<String>) {
    let c = rusqlite::Connection::open(dir.join("sciqlop-cache.db")).expect("open");
    c.query_row(
        "SELECT expire, tag FROM entries WHERE key = ?1",
        [key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("row")
}

fn expected_skips(records: &[Record]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in records.iter().filter(|r| r.expect != "migrate") {
        *m.entry(r.expect.clone()).or_insert(0) += 1;
    }
    m
}

fn skips(report: &MigrationReport) -> BTreeMap<String, u64> {
    report
        .skip_counts()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Checks every migrate record's value (and, for single caches, expiry and tag).
fn check_entries(dest: &AnyStore, records: &[Record], single_cache_dir: Option<&Path>) {
    let mut n = 0;
    for r in records.iter().filter(|r| r.expect == "migrate") {
        let key = r.key.as_deref().expect("migrated records have a key");
        let want = unhex(r.value_hex.as_deref().expect("value"));
        let got = dest
            .get(key)
            .expect("get")
            .unwrap_or_else(|| panic!("{} ({key:?}) missing", r.key_repr));
        assert_eq!(got, want, "value of {}", r.key_repr);
        if let Some(dir) = single_cache_dir {
            let (expire, tag) = expire_and_tag(dir, key);
            assert_eq!(tag, r.tag, "tag of {}", r.key_repr);
            match (expire, r.expire_time) {
                (None, None) => {}
                (Some(us), Some(secs)) => {
                    let drift = (us as f64 / 1e6 - secs).abs();
                    assert!(drift < 2.0, "expiry of {} off by {drift}s", r.key_repr);
                }
                other => panic!("expiry of {}: {other:?}", r.key_repr),
            }
        }
        n += 1;
    }
    assert_eq!(dest.len().expect("len"), n, "no more and no fewer entries");
}

#[test]
fn cache_entry_by_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("cache");
    let report = migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(skips(&report), expected_skips(&records));
    assert_eq!(
        report.migrated,
        records.iter().filter(|r| r.expect == "migrate").count() as u64
    );
    assert_eq!(report.source_entries, records.len() as u64);
    let dest = open_existing(&dst, None).expect("open");
    assert_eq!(dest.store_kind(), StoreKind::Cache);
    check_entries(&dest, &records, Some(&dst));
    // Integer values are counters.
    assert_eq!(dest.incr("int", 1, 0).expect("incr"), 43);
    assert_eq!(dest.incr("counter", -5, 0).expect("incr"), 0);
    // Nothing was written to the source.
    assert_eq!(diskcache_rows(&src), records.len() as i64);
    // Tags work.
    assert_eq!(dest.evict_tag("grp").expect("evict"), 2);
}

#[test]
fn access_order_is_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    // Source order of the str keys by access_time (reads moved alpha and k00 last).
    let c = rusqlite::Connection::open(src.join("cache.db")).expect("open");
    let mut st = c
        .prepare("SELECT key FROM Cache WHERE typeof(key) = 'text' AND raw = 1 ORDER BY access_time, rowid")
        .expect("prepare");
    let source_order: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    drop(st);
    migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    let d = rusqlite::Connection::open(dst.join("sciqlop-cache.db")).expect("open");
    let mut st = d
        .prepare("SELECT last_use FROM entries WHERE key = ?1")
        .expect("prepare");
    let mut uses = Vec::new();
    for k in &source_order {
        if let Some(u) = st
            .query_row([k], |r| r.get::<_, i64>(0))
            .optional()
            .expect("query")
        {
            uses.push((k.clone(), u));
        }
    }
    assert!(uses.len() > 50, "most str keys migrated");
    for w in uses.windows(2) {
        assert!(w[0].1 <= w[1].1, "{} used after {}", w[0].0, w[1].0);
    }
    let last: Vec<&str> = uses[uses.len() - 2..]
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(last, ["k00", "alpha"], "the keys read last in diskcache");
}

#[test]
fn fanout_source_entry_by_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("fanout", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("fanout");
    let report = migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Collisions are found across shards (int 5 and '5' may live in different ones).
    assert_eq!(skips(&report), expected_skips(&records));
    let dest = open_existing(&dst, None).expect("open");
    check_entries(&dest, &records, Some(&dst));
}

#[test]
fn into_a_fanout_destination() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("cache");
    let opts = MigrateOptions {
        shards: Some(3),
        ..MigrateOptions::default()
    };
    let report = migrate(&src, &dst, &opts).expect("migrate");
    assert!(report.errors.is_empty());
    let dest = open_existing(&dst, None).expect("open");
    assert_eq!(dest.store_kind(), StoreKind::FanoutCache);
    assert_eq!(dest.shard_count(), 3);
    check_entries(&dest, &records, None);
    let f = FanoutCache::open(&dst).expect("open as FanoutCache");
    assert_eq!(f.get("alpha").expect("get").as_deref(), Some(&b"hello"[..]));
}

#[test]
fn index_source_into_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("index", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("index");
    let opts = MigrateOptions {
        kind: Some(StoreKind::Index),
        ..MigrateOptions::default()
    };
    let report = migrate(&src, &dst, &opts).expect("migrate");
    assert!(report.errors.is_empty());
    assert_eq!(skips(&report), expected_skips(&records));
    let dest = open_existing(&dst, None).expect("open");
    assert_eq!(dest.store_kind(), StoreKind::Index);
    check_entries(&dest, &records, None);
    let idx = Index::open(&dst).expect("open");
    assert_eq!(idx.get("7").expect("get").as_deref(), Some(&b"2.25"[..]));
}

#[test]
fn an_index_becomes_an_index_unless_asked_otherwise() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("index", tmp.path());
    let dst = tmp.path().join("dst");
    let report = migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    assert!(report.errors.is_empty());
    let dest = open_existing(&dst, None).expect("open");
    assert_eq!(dest.store_kind(), StoreKind::Index);
    // A cache stays a cache.
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst-cache");
    migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    assert_eq!(
        open_existing(&dst, None).expect("open").store_kind(),
        StoreKind::Cache
    );
}

#[test]
fn a_stopped_migration_says_so_and_a_rerun_finishes_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = MigrateOptions {
        batch_size: 2,
        drop_source: true,
        stop: Some(stop),
        ..MigrateOptions::default()
    };
    let first = migrate(&src, &dst, &opts).expect("migrate");
    assert!(first.interrupted, "{first:?}");
    assert!(first.migrated <= 2, "one batch only: {first:?}");
    assert!(first.source_entries > first.migrated + 2, "{first:?}");
    let opts = MigrateOptions {
        drop_source: true,
        ..MigrateOptions::default()
    };
    let rest = migrate(&src, &dst, &opts).expect("re-run");
    assert!(!rest.interrupted && rest.errors.is_empty(), "{rest:?}");
    let dest = open_existing(&dst, None).expect("open");
    assert_eq!(dest.len().expect("len"), first.migrated + rest.migrated);
}

#[test]
fn cache_into_index_skips_expiry_and_tags() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let opts = MigrateOptions {
        kind: Some(StoreKind::Index),
        ..MigrateOptions::default()
    };
    let report = migrate(&src, &dst, &opts).expect("migrate");
    let counts = skips(&report);
    // ttl (expiry), ttl-tagged (expiry first), tagged, int-tag, 20 even k## (tags).
    assert_eq!(counts.get("expiry-in-index"), Some(&2));
    assert_eq!(counts.get("tag-in-index"), Some(&22));
    let idx = Index::open(&dst).expect("open");
    assert!(!idx.contains("ttl").expect("contains"));
    assert!(idx.contains("alpha").expect("contains"));
}

#[test]
fn pickled_values_copied_on_request() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let opts = MigrateOptions {
        pickled_values: PickledValues::CopyOpaque,
        ..MigrateOptions::default()
    };
    let report = migrate(&src, &dst, &opts).expect("migrate");
    assert!(!skips(&report).contains_key("pickled-value"));
    let cache = Cache::open(&dst).expect("open");
    let mut n = 0;
    for r in records("cache")
        .iter()
        .filter(|r| r.expect == "pickled-value")
    {
        let key = r.key.as_deref().expect("key");
        let want = unhex(r.pickle_hex.as_deref().expect("pickle"));
        assert_eq!(cache.get(key).expect("get"), Some(want), "{}", r.key_repr);
        n += 1;
    }
    assert_eq!(n, 3, "inline and file-backed pickles");
}

#[test]
fn drop_moves_entries_and_rerun_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("cache");
    let skipped = records.iter().filter(|r| r.expect != "migrate").count() as i64;
    let opts = MigrateOptions {
        drop_source: true,
        ..MigrateOptions::default()
    };
    let first = migrate(&src, &dst, &opts).expect("migrate");
    assert_eq!(first.dropped, first.migrated);
    // Only the skipped entries stay, with their files.
    assert_eq!(diskcache_rows(&src), skipped);
    let c = rusqlite::Connection::open(src.join("cache.db")).expect("open");
    let files: Vec<String> = c
        .prepare("SELECT filename FROM Cache WHERE filename IS NOT NULL")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(files.len(), 1, "the big pickle's file stays");
    let on_disk = count_val_files(&src);
    assert_eq!(on_disk, 1, "value files of dropped entries are removed");
    // diskcache's own counters follow (its triggers ran).
    let count: i64 = c
        .query_row("SELECT value FROM Settings WHERE key = 'count'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(count, skipped);

    let second = migrate(&src, &dst, &opts).expect("rerun");
    assert_eq!(second.migrated, 0);
    assert_eq!(second.skipped.len() as i64, skipped);
    let dest = open_existing(&dst, None).expect("open");
    check_entries(&dest, &records, Some(&dst));
}

fn count_val_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            n += count_val_files(&e.path());
        } else if e.path().extension().is_some_and(|x| x == "val") {
            n += 1;
        }
    }
    n
}

#[test]
fn committed_but_not_dropped_then_drop() {
    // The state a kill between the destination commit and the source delete leaves.
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let records = records("cache");
    migrate(&src, &dst, &MigrateOptions::default()).expect("copy");
    let opts = MigrateOptions {
        drop_source: true,
        ..MigrateOptions::default()
    };
    let r = migrate(&src, &dst, &opts).expect("drop");
    assert_eq!(r.dropped, r.migrated);
    let dest = open_existing(&dst, None).expect("open");
    check_entries(&dest, &records, Some(&dst));
}

#[test]
fn rerun_with_drop_copies_the_new_state_of_a_changed_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("bulk");
    fixtures_script(&["bulk", src.to_str().expect("utf-8"), "50"]);
    let dst = tmp.path().join("dst");
    migrate(&src, &dst, &MigrateOptions::default()).expect("copy");
    let c = rusqlite::Connection::open(src.join("cache.db")).expect("open");
    c.execute(
        "UPDATE Cache SET value = 'changed', store_time = store_time + 1 WHERE key = 'key-000001'",
        [],
    )
    .expect("update");
    drop(c);
    let opts = MigrateOptions {
        drop_source: true,
        batch_size: 10,
        ..MigrateOptions::default()
    };
    let r = migrate(&src, &dst, &opts).expect("drop");
    assert_eq!((r.migrated, r.dropped, r.changed_in_source), (50, 50, 0));
    assert_eq!(diskcache_rows(&src), 0);
    let cache = Cache::open(&dst).expect("open");
    assert_eq!(
        cache.get("key-000001").expect("get").as_deref(),
        Some(&b"changed"[..])
    );
}

#[test]
fn bad_sources_and_destinations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let opts = MigrateOptions::default();
    let missing = tmp.path().join("missing");
    let e = migrate(&missing, &tmp.path().join("d"), &opts).expect_err("missing");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let e = migrate(&empty, &tmp.path().join("d"), &opts).expect_err("empty");
    assert!(
        e.to_string().contains("is not a diskcache directory"),
        "{e}"
    );
    let garbage = tmp.path().join("garbage");
    std::fs::create_dir(&garbage).expect("mkdir");
    std::fs::write(
        garbage.join("cache.db"),
        b"not sqlite at all, not at all....",
    )
    .expect("write");
    assert!(migrate(&garbage, &tmp.path().join("d"), &opts).is_err());
    let src = copy_of("index", tmp.path());
    let e = migrate(&src, &src, &opts).expect_err("same dir");
    assert!(e.to_string().contains("source"), "{e}");
    // A destination holding something else is refused.
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(busy.join("notes.txt"), b"mine").expect("write");
    let e = migrate(&src, &busy, &opts).expect_err("busy");
    assert!(e.to_string().contains("neither empty nor"), "{e}");
    // An existing destination of another kind is refused when a kind is asked.
    let dst = tmp.path().join("dst");
    migrate(&src, &dst, &opts).expect("into an index, the source's kind");
    let e = migrate(
        &src,
        &dst,
        &MigrateOptions {
            kind: Some(StoreKind::Cache),
            ..MigrateOptions::default()
        },
    )
    .expect_err("kind mismatch");
    assert!(e.to_string().contains("of kind index, not cache"), "{e}");
}

#[test]
fn source_in_use_by_another_process() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("bulk");
    fixtures_script(&["bulk", src.to_str().expect("utf-8"), "3000"]);
    let dst = tmp.path().join("dst");
    let venv_script = repo_root().join("scripts/diskcache-fixtures.sh");
    let writer = std::process::Command::new("bash")
        .arg(&venv_script)
        .args(["writer", src.to_str().expect("utf-8"), "4"])
        .env(
            "SQCACHE_PY_VENV",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer");
    // Wait until the writer has started writing.
    let start = Instant::now();
    while diskcache_rows(&src) == 3000 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let opts = MigrateOptions {
        drop_source: true,
        batch_size: 100,
        ..MigrateOptions::default()
    };
    let report = migrate(&src, &dst, &opts).expect("migrate while written to");
    let out = writer.wait_with_output().expect("writer ends");
    assert!(out.status.success());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let cache = Cache::open(&dst).expect("open");
    for i in 0..3000 {
        let (k, v) = bulk_entry(i);
        assert_eq!(cache.get(&k).expect("get"), Some(v), "{k}");
    }
    // Every live-N key is in the source or in the destination.
    let written: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count");
    assert!(written > 0);
    let c = rusqlite::Connection::open(src.join("cache.db")).expect("open");
    for n in 0..written {
        let k = format!("live-{n}");
        let in_src: bool = c
            .query_row("SELECT count(*) FROM Cache WHERE key = ?1", [&k], |r| {
                r.get::<_, i64>(0)
            })
            .expect("count")
            > 0;
        assert!(in_src || cache.contains(&k).expect("contains"), "{k} lost");
    }
}

/// 100k-entry migration with its rate; `cargo test -p sqcache --release --test migrate
/// -- --ignored --nocapture bulk_100k`.
#[test]
#[ignore = "slow: makes a 100k-entry diskcache (about 15 s) and migrates it"]
fn bulk_100k() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("bulk");
    let t = Instant::now();
    fixtures_script(&["bulk", src.to_str().expect("utf-8"), "100000"]);
    eprintln!("fixture made in {:?}", t.elapsed());
    let dst = tmp.path().join("dst");
    let report = migrate(&src, &dst, &MigrateOptions::default()).expect("migrate");
    eprintln!(
        "migrated {} entries in {:?}: {:.0} entries/s",
        report.migrated,
        report.elapsed,
        report.rate()
    );
    assert_eq!(report.migrated, 100_000);
    let cache = Cache::open(&dst).expect("open");
    for i in (0..100_000).step_by(997) {
        let (k, v) = bulk_entry(i);
        assert_eq!(cache.get(&k).expect("get"), Some(v), "{k}");
    }
}
