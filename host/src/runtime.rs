//! A ready-made plugin host: one engine, compiled and pre-instantiated plugins, and a
//! fresh sandboxed store per invocation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap, WasmBacktrace,
};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::HostError;
use crate::bindings::PluginPre;
use crate::config::PluginPolicy;
use crate::ctx::{CacheCtx, CacheCtxView, CacheView};
use crate::scope::PluginScope;

/// Most resources (WASI streams, pollables, … and the cache's store, transaction and
/// CAS handles, which `max_handles` bounds further) one invocation may hold at once;
/// creating one more traps the invocation ("resource table has no free entries").
/// wasmtime's own default is 1 000 000, about 100 MB of host memory per invocation.
pub const MAX_RESOURCES: usize = 10_000;

/// Settings of a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory holding every plugin's namespace (`ROOT/plugins/<plugin>/`).
    pub root: PathBuf,
    /// Use wasmtime's pooling allocator (faster instantiation; reserves virtual memory).
    pub pooling: bool,
    /// Plugin instances that may run at the same time (pooling allocator slots).
    pub max_concurrent: u32,
    /// Upper bound of any plugin's `max_memory` (pooling allocator slot size).
    pub max_memory_cap: usize,
    /// Granularity of the CPU bound: the epoch ticker's period.
    pub epoch_tick: Duration,
    /// Let plugins write to the host's stdout and stderr (else their output is dropped).
    pub inherit_stdio: bool,
}

impl HostConfig {
    /// Defaults with the given root directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostConfig {
            root: root.into(),
            pooling: true,
            max_concurrent: 16,
            max_memory_cap: 1 << 30,
            epoch_tick: Duration::from_millis(10),
            inherit_stdio: true,
        }
    }
}

/// The data of each invocation's store: WASI, the cache context and the limits.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    cache: CacheCtx,
    limiter: Limiter,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CacheView for PluginState {
    fn cache(&mut self) -> CacheCtxView<'_> {
        CacheCtxView {
            ctx: &mut self.cache,
            table: &mut self.table,
        }
    }
}

/// `StoreLimits` that remembers whether it refused a memory growth.
struct Limiter {
    inner: StoreLimits,
    memory_refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_refused = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

enum Entry {
    /// Exports `run: func(args) -> result<string, string>` (the `plugin` world).
    Plugin(PluginPre<PluginState>),
    /// A `wasi:cli` command (`fn main`).
    Command(CommandPre<PluginState>),
}

struct Loaded {
    entry: Entry,
    scope: Arc<PluginScope>,
}

/// Increments the engine's epoch every tick until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panicked ticker has nothing left to clean up.
            let _ = t.join();
        }
    }
}

/// Runs plugins, each in its own scope, with quotas and a CPU and memory bound per
/// invocation.
///
/// Components are compiled once at [`load`](Self::load) and pre-instantiated
/// (`InstancePre`); each [`run`](Self::run) creates a fresh store, so nothing of one
/// invocation (memory, handles, open transactions) survives into the next, and a trap
/// only ends its own invocation.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    config: HostConfig,
    plugins: HashMap<String, Loaded>,
    /// Compiled components by their bytes.
    compiled: HashMap<Vec<u8>, Component>,
    _ticker: Ticker,
}

impl PluginHost {
    /// Creates the engine (epoch interruption, optionally the pooling allocator) and the
    /// linker (WASI p2 + `sciqlop:cache` + `wasi:keyvalue` 0.2.0-draft and -draft2).
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        wasm.memory_init_cow(true);
        // Plugins are called synchronously: no per-store state for concurrent calls.
        wasm.concurrency_support(false);
        if config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = config.max_concurrent.max(1);
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(32))
                .total_memories(n.saturating_mul(4))
                .total_tables(n.saturating_mul(32))
                .total_stacks(n)
                .max_core_instances_per_component(32)
                .max_memories_per_component(4)
                .max_tables_per_component(32)
                .max_memory_size(config.max_memory_cap)
                // Reset the first pages of a slot by memset instead of madvise, so the
                // next instance does not page-fault them in again.
                .linear_memory_keep_resident(1 << 20)
                .table_keep_resident(64 << 10);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        crate::add_to_linker(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        // Both deployed wasi:keyvalue versions, on the same scope: components from other
        // hosts link unchanged, with any combination of these imports.
        crate::add_keyvalue_to_linker(&mut linker)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("sciqlop-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| HostError::Io {
                    context: "starting the epoch thread".into(),
                    source: e,
                })?
        };
        Ok(PluginHost {
            engine,
            linker,
            config,
            plugins: HashMap::new(),
            compiled: HashMap::new(),
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component file and registers it as plugin `name` with `policy`.
    pub fn load_file(
        &mut self,
        name: &str,
        path: &Path,
        policy: PluginPolicy,
    ) -> Result<(), HostError> {
        let bytes = std::fs::read(path).map_err(|e| HostError::Io {
            context: format!("reading component {}", path.display()),
            source: e,
        })?;
        if let Some(message) = not_a_component(path, &bytes) {
            return Err(HostError::Compile {
                plugin: name.to_owned(),
                message,
            });
        }
        self.load(name, &bytes, policy)
    }

    /// Compiles a component (binary or text) and registers it as plugin `name`: the name
    /// the host gives decides the plugin's namespace, whatever the component says.
    /// Loading a name again replaces the component and its policy (the data stays).
    pub fn load(
        &mut self,
        name: &str,
        component: &[u8],
        policy: PluginPolicy,
    ) -> Result<(), HostError> {
        if !crate::valid_name(name) {
            return Err(HostError::InvalidName(name.to_owned()));
        }
        if policy.limits.max_bytes == 0 {
            return Err(HostError::Config(format!(
                "plugin {name}: max_bytes must be positive"
            )));
        }
        if policy.limits.max_memory > self.config.max_memory_cap {
            return Err(HostError::Config(format!(
                "plugin {name}: max_memory {} exceeds the host's cap {}",
                policy.limits.max_memory, self.config.max_memory_cap
            )));
        }
        let compile = |e: wasmtime::Error| HostError::Compile {
            plugin: name.to_owned(),
            message: format!("{e:#}"),
        };
        // One component loaded under several names (several plugin identities) is
        // compiled once.
        let component = match self.compiled.get(component) {
            Some(c) => c.clone(),
            None => {
                let c = Component::new(&self.engine, component).map_err(compile)?;
                self.compiled.insert(component.to_vec(), c.clone());
                c
            }
        };
        let pre = self.linker.instantiate_pre(&component).map_err(compile)?;
        let entry = match PluginPre::new(pre.clone()) {
            Ok(p) => Entry::Plugin(p),
            Err(plugin_err) => match CommandPre::new(pre) {
                Ok(c) => Entry::Command(c),
                Err(_) => {
                    return Err(HostError::Compile {
                        plugin: name.to_owned(),
                        message: format!(
                            "exports neither the plugin world's `run` nor wasi:cli/run: {plugin_err:#}"
                        ),
                    });
                }
            },
        };
        // Reuse the open namespace when reloading a plugin with the same policy.
        let scope = match self.plugins.get(name) {
            Some(old) if old.scope.policy() == &policy => old.scope.clone(),
            _ => PluginScope::open(&self.config.root, name, policy)?,
        };
        self.plugins
            .insert(name.to_owned(), Loaded { entry, scope });
        Ok(())
    }

    /// Names of the loaded plugins.
    pub fn plugins(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    /// The namespace of a loaded plugin (its cache, its policy).
    pub fn scope(&self, name: &str) -> Option<&Arc<PluginScope>> {
        self.plugins.get(name).map(|l| &l.scope)
    }

    fn new_store(&self, loaded: &Loaded, args: &[String]) -> Store<PluginState> {
        let limits = &loaded.scope.policy().limits;
        let mut wasi = WasiCtxBuilder::new();
        if self.config.inherit_stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(loaded.scope.name().to_owned());
        argv.extend(args.iter().cloned());
        wasi.args(&argv);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = PluginState {
            wasi: wasi.build(),
            table,
            cache: CacheCtx::new(loaded.scope.clone()),
            limiter: Limiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(limits.max_memory)
                    .trap_on_grow_failure(true)
                    .build(),
                memory_refused: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let tick = self.config.epoch_tick.as_nanos().max(1);
        let ticks = limits.timeout.as_nanos().div_ceil(tick);
        // +1: the first tick may come at once.
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1));
        store.epoch_deadline_trap();
        store
    }

    fn classify(
        &self,
        plugin: &str,
        store: &Store<PluginState>,
        err: wasmtime::Error,
    ) -> HostError {
        let limits = self
            .plugins
            .get(plugin)
            .map(|l| l.scope.policy().limits.clone())
            .unwrap_or_default();
        if store.data().limiter.memory_refused {
            return HostError::MemoryLimit {
                plugin: plugin.to_owned(),
                limit: limits.max_memory,
            };
        }
        if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
            return HostError::Timeout {
                plugin: plugin.to_owned(),
                limit: limits.timeout,
            };
        }
        if let Some(exit) = err.downcast_ref::<I32Exit>() {
            return HostError::Exit {
                plugin: plugin.to_owned(),
                code: exit.0,
            };
        }
        // The trap's reason first, then the guest backtrace; not `{err:?}`, which adds
        // the host's Rust backtrace when RUST_BACKTRACE is set.
        let backtrace = err.downcast_ref::<WasmBacktrace>().map(ToString::to_string);
        let reason: Vec<String> = err
            .chain()
            .map(ToString::to_string)
            .filter(|c| Some(c) != backtrace.as_ref())
            .collect();
        let mut message = reason.join(": ");
        if let Some(bt) = backtrace {
            message = format!("{message}\n{bt}");
        }
        HostError::Trap {
            plugin: plugin.to_owned(),
            message,
        }
    }

    /// Runs plugin `name` once with `args`.
    ///
    /// For a `plugin`-world component, returns the string its `run` returned; its `err`
    /// is [`HostError::Plugin`]. For a command, stdout goes to the host's (if
    /// `inherit_stdio`) and the result is empty; a non-zero exit is [`HostError::Exit`].
    /// A trap, the time bound or the memory bound ends only this invocation.
    pub fn run(&self, name: &str, args: &[String]) -> Result<String, HostError> {
        let loaded = self
            .plugins
            .get(name)
            .ok_or_else(|| HostError::UnknownPlugin(name.to_owned()))?;
        let mut store = self.new_store(loaded, args);
        let result = match &loaded.entry {
            Entry::Plugin(pre) => pre
                .instantiate(&mut store)
                .and_then(|p| p.call_run(&mut store, args))
                .map(|r| {
                    r.map_err(|m| HostError::Plugin {
                        plugin: name.to_owned(),
                        message: m,
                    })
                }),
            Entry::Command(pre) => pre
                .instantiate(&mut store)
                .and_then(|c| c.wasi_cli_run().call_run(&mut store))
                .map(|r| {
                    r.map(|()| String::new()).map_err(|()| HostError::Exit {
                        plugin: name.to_owned(),
                        code: 1,
                    })
                }),
        };
        match result {
            Ok(r) => r,
            Err(e) => match self.classify(name, &store, e) {
                HostError::Exit { code: 0, .. } => Ok(String::new()),
                other => Err(other),
            },
        }
    }

    /// Creates a store and instantiates plugin `name` without calling it (for
    /// measuring instantiation).
    #[doc(hidden)]
    pub fn instantiate_only(&self, name: &str) -> Result<(), HostError> {
        let loaded = self
            .plugins
            .get(name)
            .ok_or_else(|| HostError::UnknownPlugin(name.to_owned()))?;
        let mut store = self.new_store(loaded, &[]);
        let r = match &loaded.entry {
            Entry::Plugin(pre) => pre.instantiate(&mut store).map(drop),
            Entry::Command(pre) => pre.instantiate(&mut store).map(drop),
        };
        r.map_err(|e| self.classify(name, &store, e))
    }
}

/// What to build instead, when the file at `path` holding `bytes` is clearly no
/// component: empty, a core module, or neither binary wasm nor wasm text. `None` lets
/// wasmtime judge (a component, wasm text, or damaged wasm).
fn not_a_component(path: &Path, bytes: &[u8]) -> Option<String> {
    const BUILD: &str = "build the plugin for wasm32-wasip2 (cargo build --target wasm32-wasip2)";
    const WRAP: &str = "or wrap it with `wasm-tools component new`";
    let file = path.display();
    if bytes.is_empty() {
        return Some(format!("{file} is empty: {BUILD}"));
    }
    if let Some(version) = bytes.strip_prefix(b"\0asm") {
        // Version 1, layer 0: a core module (a component is version 0xd, layer 1).
        return version.starts_with(&[1, 0, 0, 0]).then(|| {
            format!("{file} is a core WebAssembly module, not a component: {BUILD}, {WRAP}")
        });
    }
    let text = wat_start(bytes);
    if text.starts_with(b"(module") {
        return Some(format!(
            "{file} is a core WebAssembly module in text form, not a component: {BUILD}, {WRAP}"
        ));
    }
    if text.starts_with(b"(") {
        return None;
    }
    let head = &bytes[..bytes.len().min(8)];
    Some(format!(
        "{file} is not a WebAssembly component (it starts with \"{}\"): {BUILD}",
        head.escape_ascii()
    ))
}

/// `bytes` after leading whitespace and wasm text comments (`;; …` and `(; … ;)`).
fn wat_start(mut bytes: &[u8]) -> &[u8] {
    loop {
        bytes = bytes.trim_ascii_start();
        if let Some(rest) = bytes.strip_prefix(b";;") {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            bytes = &rest[end..];
        } else if let Some(rest) = bytes.strip_prefix(b"(;") {
            let end = rest
                .windows(2)
                .position(|w| w == b";)")
                .map_or(rest.len(), |i| i + 2);
            bytes = &rest[end..];
        } else {
            return bytes;
        }
    }
}
