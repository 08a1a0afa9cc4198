//! A database with damaged pages: `check` reports the damage (never only an error),
//! repairs nothing in place, and `salvage` copies every readable entry into a new store
//! and names the key ranges it lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sciqlop_cache::{Cache, Error, SetOptions};
use sciqlop_cache_tests::{DB_FILE, damage_two_leaves, value_files};

/// Fills a store with `n` entries (some tagged, some file-backed) and returns them.
fn fill(dir: &Path, n: usize) -> BTreeMap<String, Vec<u8>> {
    let cache = Cache::builder()
        .file_threshold(1000)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
        .expect("open");
    let mut want = BTreeMap::new();
    for i in 0..n {
        let key = format!("key{i:04}");
        let value = if i % 50 == 0 {
            vec![(i % 251) as u8; 5000]
        } else {
            format!("{key}:{}", "x".repeat(150)).into_bytes()
        };
        let opts = if i % 7 == 0 {
            SetOptions::new().tag("seven")
        } else {
            SetOptions::new()
        };
        cache.set_with(&key, &value, &opts).expect("set");
        want.insert(key, value);
    }
    want
}

#[test]
fn check_reports_a_damaged_database_and_salvage_copies_what_is_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let want = fill(&dir, 400);
    damage_two_leaves(&dir.join(DB_FILE), &[b"key01", &[b'x'; 20]]);

    let cache = Cache::builder()
        .maintenance_interval(Duration::ZERO)
        .open(&dir)
        .expect("a damaged store still opens");
    let report = cache.check(false).expect("check reports, it does not fail");
    assert!(!report.ok && !report.sqlite_integrity_ok, "{report:?}");
    assert!(!report.sqlite_errors.is_empty(), "{report:?}");
    let fixed = cache.check(true).expect("check --fix reports too");
    assert!(
        !fixed.ok && !fixed.fixed,
        "nothing is repaired in place: {fixed:?}"
    );
    assert!(fixed.removed_keys.is_empty(), "{fixed:?}");
    drop(cache);

    let survey = sciqlop_cache::salvage(&dir, None).expect("survey");
    let out = tmp.path().join("salvaged");
    let report = sciqlop_cache::salvage(&dir, Some(&out)).expect("salvage");
    assert_eq!(survey.copied, report.copied);
    assert_eq!(report.kind, "cache");
    assert!(!report.lost_ranges.is_empty(), "{report:?}");
    assert!(report.lost_values.is_empty(), "{report:?}");
    let saved = Cache::open(&out).expect("open the salvaged store");
    assert!(saved.check(false).expect("check").ok);
    assert_eq!(saved.len().expect("len"), report.copied);
    // Every salvaged entry is exact; every missing one lies in a reported lost range.
    let mut missing = 0;
    for (k, v) in &want {
        match saved.get(k).expect("get") {
            Some(got) => assert_eq!(&got, v, "{k}"),
            None => {
                missing += 1;
                assert!(
                    report.lost_ranges.iter().any(|r| {
                        r.after.as_deref().is_none_or(|a| a < k.as_str())
                            && r.before.as_deref().is_none_or(|b| k.as_str() < b)
                    }),
                    "{k} is lost but in no reported range: {:?}",
                    report.lost_ranges
                );
            }
        }
    }
    assert_eq!(missing as u64, want.len() as u64 - report.copied);
    assert!(
        missing > 0 && missing < 200,
        "lost {missing} of {}",
        want.len()
    );
    // Tags came along.
    assert!(saved.evict_tag("seven").expect("evict_tag") > 0);
    // The source was left as it was, and a second salvage into the same place refuses.
    assert!(matches!(
        sciqlop_cache::salvage(&dir, Some(&out)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn check_names_the_keys_it_removes_and_tells_damaged_from_missing_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let cache = Cache::builder()
        .file_threshold(100)
        .maintenance_interval(Duration::ZERO)
        .open(&dir)
        .expect("open");
    cache.set("gone", vec![1u8; 500]).expect("set");
    cache.set("cut", vec![2u8; 500]).expect("set");
    cache.set("fine", vec![3u8; 500]).expect("set");
    let mut files = Vec::new();
    for e in value_files(&dir) {
        let bytes = std::fs::read(&e).expect("read");
        files.push((bytes[0], e));
    }
    for (b, p) in &files {
        match b {
            1 => std::fs::remove_file(p).expect("remove"),
            2 => std::fs::write(p, [2u8; 10]).expect("truncate"),
            _ => {}
        }
    }
    let r = cache.check(false).expect("check");
    assert_eq!((r.dangling_rows, r.damaged_files), (2, 1), "{r:?}");
    let r = cache.check(true).expect("fix");
    let mut removed = r.removed_keys.clone();
    removed.sort();
    assert_eq!(removed, ["cut", "gone"]);
    assert!(r.ok && r.fixed, "{r:?}");
    assert_eq!(cache.get("fine").expect("get"), Some(vec![3u8; 500]));
}
