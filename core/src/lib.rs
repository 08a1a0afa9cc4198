//! # sciqlop-cache
//!
//! A fast, persistent key-value cache on SQLite with hybrid storage: small values inline
//! as SQLite blobs, large values in their own files. Expiry, tags, LRU eviction by size,
//! atomic counters, transactions, cross-process locks, memoization and typed values;
//! thread-safe and multi-process safe.
//!
//! ## Quickstart
//!
//! ```
//! use sciqlop_cache::{Cache, Index, SetOptions};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let cache = Cache::builder().max_size(1 << 30).open(dir.path().join("cache"))?;
//! cache.set("sensor/temp", b"21.5")?;
//! cache.set_with(
//!     "session/abc",
//!     b"token",
//!     &SetOptions::new().expire(Duration::from_secs(3600)).tag("session"),
//! )?;
//! let v: Option<Vec<u8>> = cache.get("sensor/temp")?;
//! assert_eq!(v.as_deref(), Some(&b"21.5"[..]));
//!
//! // Counters, readable with get as ASCII decimal.
//! assert_eq!(cache.incr("page_views", 1, 0)?, 1);
//! assert_eq!(cache.get("page_views")?.as_deref(), Some(&b"1"[..]));
//!
//! // All or nothing.
//! cache.transact(|tx| {
//!     tx.set("a", b"1")?;
//!     tx.set("b", b"2")?;
//!     Ok::<_, sciqlop_cache::Error>(())
//! })?;
//!
//! // Typed values through serde.
//! cache.set_value("point", &(1.5f64, 2.5f64))?;
//! assert_eq!(cache.get_value::<(f64, f64)>("point")?, Some((1.5, 2.5)));
//!
//! // A bare key-value store without expiry/eviction/tags/stats.
//! let index = Index::open(dir.path().join("index"))?;
//! index.set("dataset/v2", b"metadata")?;
//! # Ok::<(), sciqlop_cache::Error>(())
//! ```
//!
//! ## Storage and guarantees
//!
//! - One directory per store: `sciqlop-cache.db` (SQLite, WAL mode) and `data/` for value
//!   files (`data/<2 hex>/<30 hex>.val`, paths stored relative, so a moved directory
//!   keeps working).
//! - Values of at least [`DEFAULT_FILE_THRESHOLD`] bytes (configurable) live in files,
//!   written to a temporary file and renamed into place inside the write transaction: a
//!   reader never sees a partial value and a crash leaves at worst an orphan file, which
//!   [`Store::check`]`(true)` removes.
//! - Reads never write: LRU recency is buffered and flushed in batches by a background
//!   thread, which also purges expired entries, evicts and checkpoints the WAL.
//! - Count and size totals are maintained exactly by triggers, in the same transaction
//!   as every change.
//! - Limits: keys up to 4096 bytes of UTF-8 by default ([`Builder::max_key_len`]),
//!   values up to 4 GiB by default ([`Builder::max_value_size`]).
//! - Counters are ASCII decimal `i64` (see [`counter`]).
//! - A value file that disappeared behind the store's back makes reads of that key fail
//!   with [`Error::ValueFileMissing`] (never silently a miss); `check(true)` removes the
//!   row.

//!
//! ## Layering
//!
//! ```text
//!  bindings    python/ (PyO3)   capi/ (C ABI, C++ header)   cli/   host/ (plugins)   web/
//!                 \                  |                     |         |              /
//!  API         store::Store<P, E>  Cache / Index / AnyStore / Fanout<P, E>   (store/, fanout/)
//!                 |   written once over the contract; P = what the kind allows
//!  contract    engine::Engine  (+ EngineTx, Namespace, Version, Capabilities, registry)
//!                 |                       |                          |
//!  engines     engine::sqlite      fanout::FanoutEngine<E>     engine::guest  (others:
//!              (SQLite + files)    (routes keys to shards)     (WIT import)    by registry)
//! ```
//!
//! Each layer imports only the one below it: `store/` and `fanout/` know engines only
//! through [`Engine`]; the SQLite engine knows nothing of stores; a fanout is an engine
//! over engines. A third-party engine implements [`Engine`] (checked by the
//! `sciqlop-cache-conformance` crate) and gets the whole API with
//! [`Store::from_engine`], or is opened by location through [`engine::registry`].

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::missing_errors_doc)]
// A build with no engine compiled in (for a third-party engine) leaves the helpers the
// built-in engines share (time conversions, platform facts) unused.
#![cfg_attr(not(any(feature = "sqlite", feature = "guest")), allow(dead_code))]

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

mod clock;
pub mod counter;
pub mod engine;
mod error;
pub mod fanout;
pub mod fork;
mod hash;
mod options;
mod platform;
mod policy;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Capabilities, Engine, EngineTx, Namespace, Version};
pub use error::{Error, Result};
pub use fanout::{Fanout, FanoutBuilder, FanoutEngine};
#[cfg(feature = "sqlite")]
pub use fanout::{FanoutCache, FanoutIndex};
pub use options::{
    Builder, CheckReport, Config, DEFAULT_BUSY_TIMEOUT, DEFAULT_FILE_THRESHOLD,
    DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_SIZE, EntryInfo, Expiry, SetOptions, Stats,
};
pub use policy::{AnyKind, CacheApi, CacheKind, IndexKind, Kind, Policy};
pub use store::{AnyStore, DefaultEngine, Keys, Lock, Optimistic, Store, Transaction};
#[cfg(feature = "sqlite")]
pub use store::{Cache, Index};

#[cfg(feature = "sqlite")]
pub use engine::sqlite::SqliteEngine;
#[cfg(feature = "sqlite")]
pub use engine::sqlite::salvage::{LostRange, SalvageReport, salvage};

#[cfg(feature = "guest")]
pub use engine::guest::LOCK_PREFIX;
#[cfg(feature = "guest")]
#[doc(hidden)]
pub use engine::guest::bindings as wit_bindings;
