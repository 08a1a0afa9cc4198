//! The conformance suite (crate `sciqlop-cache-conformance`) on every form of the
//! SQLite engine: a cache, an index, a fanout, and a store opened by location.

use std::sync::Arc;

use sciqlop_cache::{AnyStore, Cache, Config, Engine, FanoutCache, Index};
use sciqlop_cache_conformance::{Report, run};

/// Runs the suite on stores made by `open` in fresh directories.
fn suite(open: impl Fn(&std::path::Path) -> Arc<dyn Engine>) -> Report {
    let mut dirs = Vec::new();
    let report = run(&mut || {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path());
        dirs.push(dir);
        AnyStore::from_engine(engine, &Config::default()).expect("store")
    });
    println!("{report}");
    report.assert_passed();
    report
}

fn skipped(r: &Report) -> Vec<&'static str> {
    r.skipped()
}

#[test]
fn cache() {
    let r = suite(|d| Cache::open(d).expect("open").engine().clone());
    assert!(skipped(&r).is_empty(), "a cache skipped {:?}", skipped(&r));
}

#[test]
fn index() {
    let r = suite(|d| Index::open(d).expect("open").engine().clone());
    // Only what needs a cache's expiry and tags.
    assert_eq!(
        skipped(&r),
        [
            "expiry_is_never_returned",
            "tags_evict_together",
            "entry_info"
        ]
    );
}

#[test]
fn fanout() {
    let r = suite(|d| {
        FanoutCache::builder()
            .shards(4)
            .open(d)
            .expect("open")
            .engine()
            .clone()
    });
    // A fanout is atomic per shard, not across shards.
    assert_eq!(skipped(&r), ["optimistic_transactions"]);
}

#[test]
fn opened_by_location() {
    let r = suite(|d| {
        let path = d.join("store");
        Cache::open(&path).expect("create");
        let s = AnyStore::builder()
            .open_location(path.to_str().expect("utf-8"))
            .expect("open by location");
        s.engine().clone()
    });
    assert!(skipped(&r).is_empty());
}
