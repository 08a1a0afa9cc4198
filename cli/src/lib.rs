//! # sqcache
//!
//! The library behind the `sqcache` command-line tool:
//!
//! - [`store`]: opens any sciqlop-cache directory (`Cache`, `Index`, `FanoutCache`,
//!   `FanoutIndex`) with its kind detected from what is on disk.
//! - [`migrate`]: copies a Python `diskcache` directory (5.x, `Cache`, `FanoutCache` or
//!   `Index`) into a sciqlop-cache store, reading diskcache's SQLite database directly
//!   (no Python needed). See [`migrate::migrate`] for what is carried over and what is
//!   skipped.
//! - [`human`]: human-readable sizes.
//!
//! ```no_run
//! use sqcache::migrate::{migrate, MigrateOptions};
//! let report = migrate("old-diskcache-dir".as_ref(), "new-cache-dir".as_ref(), &MigrateOptions::default())?;
//! println!("{} migrated, {} skipped in {:?}", report.migrated, report.skipped.len(), report.elapsed);
//! # Ok::<(), sqcache::migrate::MigrateError>(())
//! ```

pub mod human;
pub mod migrate;
pub use sciqlop_cache_migrate::pyrepr;
pub mod store;
