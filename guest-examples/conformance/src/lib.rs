//! Test fixture: the conformance suite (crate `sciqlop-cache-conformance`) run inside a
//! plugin, on the guest engine through the host — the same cases as natively and in the
//! browser build. `run([])` answers the report; every case on a fresh store of the
//! plugin (`c0`, `c1`, …). Cases needing what the guest engine's capabilities lack are
//! reported as skipped, with the reason.

use std::sync::Arc;

use cache_guest::Plugin;
use sciqlop_cache::engine::guest::GuestEngine;
use sciqlop_cache::{AnyStore, Config};

struct Conformance;

impl Plugin for Conformance {
    fn run(_args: Vec<String>) -> Result<String, String> {
        let mut n = 0u32;
        // A fixture: a store the host refuses to open traps the plugin (the host test
        // then fails with the message).
        let report = sciqlop_cache_conformance::run(&mut || {
            n += 1;
            let engine = GuestEngine::open(&format!("c{n}")).expect("open a store of the plugin");
            AnyStore::from_engine(Arc::new(engine), &Config::default()).expect("a store")
        });
        Ok(report.to_string())
    }
}

cache_guest::export_plugin!(Conformance);
