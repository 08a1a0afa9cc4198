//! What a plugin crate needs: the core crate's cache API — the same `Store` API native
//! users have, on the guest engine (core's `guest` feature: `sciqlop_cache::engine::guest`,
//! the host's `sciqlop:cache` import) — plus the glue exporting the `plugin` world's `run`.
//!
//! A plugin implements [`Plugin`] and exports it with [`export_plugin!`]:
//!
//! ```ignore
//! use cache_guest::{Cache, Plugin};
//! struct Hello;
//! impl Plugin for Hello {
//!     fn run(args: Vec<String>) -> Result<String, String> {
//!         let cache = Cache::open("greetings").map_err(|e| e.to_string())?;
//!         let n = cache.incr("count", 1, 0).map_err(|e| e.to_string())?;
//!         Ok(format!("hello #{n}"))
//!     }
//! }
//! cache_guest::export_plugin!(Hello);
//! ```

pub use sciqlop_cache::engine::guest::{Cache, Index};
pub use sciqlop_cache::{Error, Result, SetOptions, Stats};

/// The `plugin` world's bindings. The cache import is core's own (no second copy of the
/// import types): only the `run` export is generated here.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "cache_guest::bindings",
        with: {
            "sciqlop:cache/types@0.1.0": sciqlop_cache::wit_bindings::sciqlop::cache::types,
            "sciqlop:cache/cache@0.1.0": sciqlop_cache::wit_bindings::sciqlop::cache::cache,
        },
    });
}

/// What a plugin does when the host calls it.
pub trait Plugin {
    /// Runs once with the host's arguments; `Ok` is printed by the host.
    fn run(args: Vec<String>) -> std::result::Result<String, String>;
}

#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

impl<P: Plugin> bindings::Guest for Adapter<P> {
    fn run(args: Vec<String>) -> std::result::Result<String, String> {
        P::run(args)
    }
}

/// Exports a [`Plugin`] implementation as the component's `run`.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        type __CacheGuestAdapter = $crate::Adapter<$t>;
        $crate::bindings::export!(__CacheGuestAdapter with_types_in $crate::bindings);
    };
}

/// A one-line description of a cache error for a plugin's output.
pub fn describe(e: &Error) -> String {
    e.to_string()
}

/// The WIT `error` variant name an error came from (`access-denied`, `quota-exceeded`,
/// …), for tests that check which typed error a plugin received.
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::AccessDenied { .. } => "access-denied",
        Error::InvalidKey(_) | Error::KeyTooLong { .. } => "invalid-key",
        Error::ValueTooLarge { .. } => "too-large",
        Error::QuotaExceeded(_) => "quota-exceeded",
        Error::NotACounter { .. } => "not-a-counter",
        Error::CounterOverflow { .. } => "overflow",
        Error::Conflict => "conflict",
        Error::TransactionAborted => "transaction-closed",
        Error::InvalidArgument(_) => "invalid-argument",
        Error::NotFound(_) => "not-found",
        Error::Unsupported(_) => "unsupported",
        _ => "io",
    }
}
