//! The conformance suite on real Redis servers, started here: one standalone server and
//! a 3-node Redis Cluster. Each case gets a store of its own name on the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sciqlop_cache::{AnyStore, Config};
use sciqlop_cache_conformance::{Report, run};
use sciqlop_cache_redis::RedisEngine;
use sciqlop_cache_redis::testing::{Cluster, Server};

fn suite(url: impl Fn(&str) -> String) -> Report {
    static N: AtomicU32 = AtomicU32::new(0);
    let report = run(&mut || {
        let name = format!("conf{}", N.fetch_add(1, Ordering::Relaxed));
        let engine = RedisEngine::open(
            &url(&name),
            &Config::default(),
            Some(sciqlop_cache::Kind::CACHE),
        )
        .expect("open");
        AnyStore::from_engine(Arc::new(engine), &Config::default()).expect("store")
    });
    println!("{report}");
    report.assert_passed();
    report
}

fn skipped(r: &Report) -> Vec<&'static str> {
    r.skipped()
}

/// The documented exceptions: no open-ended transactions (so no savepoints).
const EXCEPTIONS: [&str; 2] = [
    "transactions_commit_or_roll_back",
    "nested_transactions_are_savepoints",
];

#[test]
fn standalone() {
    let server = Server::start().expect("redis-server");
    let r = suite(|name| server.url(name));
    assert_eq!(skipped(&r), EXCEPTIONS);
}

#[test]
fn cluster() {
    let cluster = Cluster::start().expect("redis cluster");
    let r = suite(|name| cluster.url(name));
    assert_eq!(skipped(&r), EXCEPTIONS);
}
