//! The conformance suite (crate `sciqlop-cache-conformance`) on the browser build:
//! wasm32-unknown-unknown, sqlite-wasm-rs, in-memory VFS, under node. The same cases as
//! natively (tests/tests/conformance.rs); only a lock held by another process has no
//! meaning here (one process), and no case needs one.
//!
//! Run by `scripts/test-web.sh`.
#![cfg(all(target_family = "wasm", target_os = "unknown"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sciqlop_cache::{AnyStore, Cache, Config, Engine, Index};
use wasm_bindgen_test::wasm_bindgen_test;

/// A store name no other test uses (the memory VFS is shared by the whole module).
fn fresh(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("conformance-{what}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn suite(open: impl Fn(String) -> Arc<dyn Engine>) -> sciqlop_cache_conformance::Report {
    let report = sciqlop_cache_conformance::run(&mut || {
        AnyStore::from_engine(open(fresh("s")), &Config::default()).expect("store")
    });
    println!("{report}");
    report.assert_passed();
    report
}

#[wasm_bindgen_test]
fn a_cache_in_the_browser_build_conforms() {
    let r = suite(|name| Cache::open(name).expect("open").engine().clone());
    let skipped: Vec<_> = r
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, sciqlop_cache_conformance::Outcome::Skipped(_)))
        .collect();
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[wasm_bindgen_test]
fn an_index_in_the_browser_build_conforms() {
    suite(|name| Index::open(name).expect("open").engine().clone());
}
