//! # sciqlop-cache-web
//!
//! [`sciqlop-cache`](sciqlop_cache) in the browser (and node): the same `Cache`, compiled
//! for `wasm32-unknown-unknown` on SQLite from sqlite-wasm-rs, with a small JS-facing API
//! made with wasm-bindgen, so a web page can use it without writing Rust.
//!
//! ```js
//! import init, { WebCache } from "./pkg/sciqlop_cache_web.js";
//! await init();
//! // In memory (any context), or persistent in OPFS (dedicated worker only):
//! const cache = await WebCache.open("demo", { persistent: true, maxSize: 50e6 });
//! cache.set("greeting", "hello", { expireMs: 60_000, tag: "text" });
//! cache.getString("greeting");          // "hello"
//! cache.incr("visits");                 // 1, 2, ... across page reloads with OPFS
//! cache.evictTag("text");               // 1
//! cache.stats();                        // { hits, misses, count, size }
//! ```
//!
//! Storage: by default the database lives in sqlite-wasm-rs' in-memory VFS (gone with the
//! page). `persistent: true` installs the OPFS "sync access handle pool" VFS
//! (`opfs-sahpool`, from sqlite-wasm-vfs) and opens the database through it; OPFS sync
//! access handles exist only in dedicated workers, so persistent caches must be opened
//! there (see `web/examples/web/`).
//!
//! What differs from native builds is decided in one place, `sciqlop_cache`'s platform
//! module: no value files (every value is a blob), one connection, no background thread
//! (upkeep runs inline and on `maintain()`), time from `Date.now()`.
//!
//! Natively this crate contains only [`mod@bench`], the workload used to compare native and
//! wasm speed.

pub mod bench;

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
mod api;

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
pub use api::{WebCache, bench_set_get};
