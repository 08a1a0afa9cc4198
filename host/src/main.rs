//! `sciqlop-cache-host`: run sciqlop-cache plugins from the shell.
//!
//! ```text
//! sciqlop-cache-host run --root DIR [--config host.toml] --plugin NAME=path.wasm -- ARGS...
//! sciqlop-cache-host keys --root DIR --plugin NAME [--store STORE]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sciqlop_cache_host::{ConfigFile, HostConfig, PluginHost};

#[derive(Parser)]
#[command(
    version,
    about = "Run sciqlop-cache WebAssembly plugins with per-plugin scoped caches"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plugin once and print its output.
    Run {
        /// Directory holding the plugins' namespaces (default: `root` of the config file).
        #[arg(long)]
        root: Option<PathBuf>,
        /// TOML file with grants and quotas (see the crate docs for the format).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin: NAME=PATH, or NAME alone when the config file gives its path.
        /// The NAME decides the plugin's namespace.
        #[arg(long)]
        plugin: String,
        /// Run the plugin this many times (one compile, N instantiations).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Arguments passed to the plugin.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List a plugin's keys as STORE/KEY and a short form of the value (read natively
    /// from its cache on disk).
    Keys {
        /// Directory holding the plugins' namespaces.
        #[arg(long)]
        root: PathBuf,
        /// The plugin's name.
        #[arg(long)]
        plugin: String,
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run {
            root,
            config,
            plugin,
            repeat,
            args,
        } => {
            let cfg = match &config {
                Some(p) => ConfigFile::load(p)?,
                None => ConfigFile::default(),
            };
            let root = root
                .or_else(|| cfg.root.as_ref().map(|r| cfg.base_dir.join(r)))
                .context("--root is required (or `root` in the config file)")?;
            let (name, path) = match plugin.split_once('=') {
                Some((n, p)) => (n.to_owned(), PathBuf::from(p)),
                None => {
                    let p = cfg.plugin_path(&plugin).with_context(|| {
                        format!("no path for plugin {plugin}: use --plugin {plugin}=PATH")
                    })?;
                    (plugin.clone(), p)
                }
            };
            let mut host = PluginHost::new(HostConfig::new(root))?;
            host.load_file(&name, &path, cfg.policy(&name))?;
            for _ in 0..repeat.max(1) {
                let out = host.run(&name, &args)?;
                if !out.is_empty() {
                    println!("{out}");
                }
            }
            Ok(())
        }
        Command::Keys {
            root,
            plugin,
            store,
        } => {
            let dir = sciqlop_cache_host::plugin_dir(&root, &plugin)?;
            if !dir.is_dir() {
                bail!("plugin {plugin} has no data under {}", root.display());
            }
            // Opened without a size bound: looking must never evict.
            let cache = sciqlop_cache::Cache::open(&dir)?;
            let converted = cache.metadata(sciqlop_cache_host::LAYOUT_META)?.is_some();
            if !converted {
                // Written by an earlier host and not converted yet (the next `run`
                // does): its keys already read `store/key`.
                let prefix = store.map(|s| format!("{s}/")).unwrap_or_default();
                return print_keys(&cache, &prefix, "");
            }
            // One namespace per store, the default one being the store `default`.
            for ns in cache.namespaces()? {
                let name = if ns.is_empty() {
                    sciqlop_cache_host::DEFAULT_STORE
                } else {
                    ns.as_str()
                };
                if store.as_ref().is_none_or(|s| s == name) {
                    print_keys(&cache.namespace(&ns)?, "", &format!("{name}/"))?;
                }
            }
            Ok(())
        }
    }
}

/// Prints `shown_prefix` + key and a short form of the value, for every key of `cache`
/// starting with `prefix`.
fn print_keys(cache: &sciqlop_cache::Cache, prefix: &str, shown_prefix: &str) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = cache.keys_page(prefix, after.as_deref(), 1000)?;
        for k in &page {
            let v = cache.get(k)?.unwrap_or_default();
            let shown = String::from_utf8(v.clone())
                .ok()
                .filter(|s| s.len() <= 60)
                .unwrap_or_else(|| format!("<{} bytes>", v.len()));
            println!("{shown_prefix}{k}\t{shown}");
        }
        if page.len() < 1000 {
            return Ok(());
        }
        after = page.last().cloned();
    }
}
