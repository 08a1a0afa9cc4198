//! Wasmtime host for sciqlop-cache plugins.
//!
//! Plugins are WebAssembly components that import the `sciqlop:cache` WIT interface
//! (`wit/cache.wit`): named stores with expiry, tags, counters, batches and transactions.
//! Each plugin, identified by the name the host gives it, gets its own namespace on
//! disk (see [`PluginScope`] for the layout), its own grants and quotas
//! ([`PluginPolicy`]), and runs with a CPU and a memory bound per invocation.
//!
//! The same host also serves the standard `wasi:keyvalue` interface, versions
//! `0.2.0-draft` and `0.2.0-draft2`, on the same scopes (see [`keyvalue`]), so components
//! written for other hosts run unchanged.
//!
//! Two ways to use it:
//!
//! - [`PluginHost`]: a ready-made host. Load components, run them.
//! - Your own wasmtime embedding, in the style of `wasmtime-wasi`: keep a [`CacheCtx`]
//!   in your store data, implement [`CacheView`], call [`add_to_linker`].
//!
//! ```no_run
//! use sciqlop_cache_host::{HostConfig, PluginHost, PluginPolicy};
//! # fn main() -> Result<(), sciqlop_cache_host::HostError> {
//! let mut host = PluginHost::new(HostConfig::new("/tmp/plugins"))?;
//! host.load_file("memoize", "memoize.wasm".as_ref(), PluginPolicy::default())?;
//! let out = host.run("memoize", &["primes".into(), "1000000".into()])?;
//! println!("{out}");
//! # Ok(()) }
//! ```

mod config;
mod ctx;
pub mod keyvalue;
mod runtime;
mod scope;

/// Bindings generated from `wit/cache.wit` (the `plugin` world).
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: trappable },
        with: {
            "sciqlop:cache/cache.store": crate::scope::StoreHandle,
            "sciqlop:cache/cache.transaction": crate::scope::TxHandle,
        },
    });
}

pub use config::{ConfigFile, Limits, LimitsPatch, PluginPolicy, PluginSection};
pub use ctx::{CacheCtx, CacheCtxView, CacheView, add_to_linker};
pub use keyvalue::add_keyvalue_to_linker;
pub use runtime::{HostConfig, MAX_RESOURCES, PluginHost, PluginState};
pub use scope::{
    CasHandle, DEFAULT_STORE, LAYOUT_META, MAX_BATCH, MAX_NAME_LEN, MAX_PAGE, PluginCache,
    PluginScope, StoreHandle, TxHandle, plugin_dir, valid_name,
};

use std::time::Duration;

/// Errors of the host (not of a plugin's cache calls, which get the WIT `error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A plugin or store name is not 1 to 64 of `[A-Za-z0-9_.-]` (or starts with '.').
    #[error("invalid name {0:?}: expected 1 to 64 of [A-Za-z0-9_.-], not starting with '.'")]
    InvalidName(String),
    /// An I/O error of the host.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin's cache could not be opened.
    #[error("opening the cache of plugin {plugin}: {source}")]
    Cache {
        /// The plugin.
        plugin: String,
        /// The core's error.
        #[source]
        source: sciqlop_cache::Error,
    },
    /// The engine or linker could not be set up.
    #[error("wasmtime setup: {0}")]
    Engine(String),
    /// A component could not be compiled or linked.
    #[error("loading plugin {plugin}: {message}")]
    Compile {
        /// The plugin.
        plugin: String,
        /// Wasmtime's message.
        message: String,
    },
    /// No plugin of that name is loaded.
    #[error("no plugin named {0:?} is loaded")]
    UnknownPlugin(String),
    /// The invocation ran past its time bound and was stopped.
    #[error("plugin {plugin} stopped: ran longer than {limit:?}")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// Its configured bound.
        limit: Duration,
    },
    /// The invocation tried to grow its memory past its bound and was stopped.
    #[error("plugin {plugin} stopped: memory limit of {limit} bytes reached")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Its configured bound.
        limit: usize,
    },
    /// The plugin trapped (panic, unreachable, bad handle, ...).
    #[error("plugin {plugin} trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// Wasmtime's description on the first line, then the guest backtrace when
        /// available.
        message: String,
    },
    /// A command plugin exited with a non-zero status.
    #[error("plugin {plugin} exited with status {code}")]
    Exit {
        /// The plugin.
        plugin: String,
        /// The exit status.
        code: i32,
    },
    /// The plugin's `run` returned an error.
    #[error("plugin {plugin} failed: {message}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
}
