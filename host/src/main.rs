//! `sciqlop-cache-host`: run sciqlop-cache plugins from the shell.
//!
//! ```text
//! sciqlop-cache-host [--json] run --root DIR [--config host.toml] --plugin NAME=path.wasm [--repeat N] -- ARGS...
//! sciqlop-cache-host [--json] keys --root DIR --plugin NAME [--store STORE]
//! ```
//!
//! Same conventions as `sqcache`: exit code 0 ok, 1 the operation failed, 2 bad usage;
//! errors are one line, `error: …`, on stderr (and `{"error": …, "exit_code": …}` on
//! stdout under `--json`). See host/README.md.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use sciqlop_cache_host::{ConfigFile, HostConfig, HostError, PluginHost};
use sciqlop_cache_tooling::usage;
use serde_json::json;

/// Run sciqlop-cache WebAssembly plugins with per-plugin scoped caches.
///
/// A plugin is a WebAssembly component built for wasm32-wasip2; its NAME (given by
/// --plugin, not by the component) decides its namespace, ROOT/plugins/NAME/. Exit
/// codes: 0 ok, 1 the operation failed, 2 bad usage. See host/README.md.
#[derive(Parser)]
#[command(name = "sciqlop-cache-host", version, max_term_width = 100)]
struct Cli {
    /// Print machine-readable JSON on stdout (errors too).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plugin and print what it returns.
    Run {
        /// Directory holding the plugins' namespaces (default: `root` of the config file;
        /// not needed for a plugin whose config section gives a `location`).
        #[arg(long)]
        root: Option<PathBuf>,
        /// TOML file with grants, quotas and plugin paths (see host/README.md for the
        /// format).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin: NAME=PATH, or NAME alone when the config file gives its path.
        /// The NAME decides the plugin's namespace.
        #[arg(long)]
        plugin: String,
        /// Run the plugin this many times, at least once (one compile, N
        /// instantiations); stops at the first failure.
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = parse_repeat)]
        repeat: u32,
        /// Arguments passed to the plugin.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List a plugin's keys and a short form of their values.
    ///
    /// Read natively from its cache on disk (nothing runs, nothing is evicted). One line
    /// per key: STORE/KEY, a tab, the value when it is UTF-8 of at most 60 bytes (else
    /// `<N bytes>`); a key or value holding a control character (newline, tab…) is
    /// printed quoted, with escapes.
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

/// A number of runs: at least one (zero would run nothing and say nothing).
fn parse_repeat(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("the plugin must run at least once (0 would run nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!(
            "{e} (expected a number of runs from 1 to {})",
            u32::MAX
        )),
    }
}

/// A host error, as a usage error when it is about a name given on the command line.
fn host_err(e: HostError) -> anyhow::Error {
    match e {
        HostError::InvalidName(_) => usage(e.to_string()),
        // The reason, without the guest backtrace that follows it.
        HostError::Trap { plugin, message } => anyhow!(
            "plugin {plugin} trapped: {}",
            message.lines().next().unwrap_or("")
        ),
        e => e.into(),
    }
}

fn main() -> ExitCode {
    sciqlop_cache_tooling::main::<Cli>(sciqlop_cache_tooling::json_requested(), |cli| {
        run(cli).map(|()| ExitCode::SUCCESS)
    })
}

/// Writes `text` and a newline to stdout, flushed (a plugin that is a command writes to
/// the same stdout).
fn print_line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Run {
            root,
            config,
            plugin,
            repeat,
            args,
        } => {
            let cfg = match &config {
                Some(p) => ConfigFile::load(p).map_err(|e| match e {
                    HostError::Config(_) => anyhow!("{e} (see host/README.md for the format)"),
                    e => e.into(),
                })?,
                None => ConfigFile::default(),
            };
            let (name, path) = match plugin.split_once('=') {
                Some((n, p)) => (n.to_owned(), PathBuf::from(p)),
                None => {
                    let p = cfg.plugin_path(&plugin).ok_or_else(|| {
                        let why = if config.is_some() {
                            "the config file gives none"
                        } else {
                            "no --config given"
                        };
                        usage(format!(
                            "no path for plugin {plugin} ({why}): use --plugin {plugin}=PATH"
                        ))
                    })?;
                    (plugin.clone(), p)
                }
            };
            let policy = cfg.policy(&name);
            let root = root.or_else(|| cfg.root.as_ref().map(|r| cfg.base_dir.join(r)));
            let root = match (root, &policy.location) {
                (Some(r), _) => r,
                // The plugin's data is at its location: no directory is used.
                (None, Some(_)) => PathBuf::new(),
                (None, None) => {
                    return Err(usage(
                        "--root is required (or `root` in the config file, or a `location` for the plugin)",
                    ));
                }
            };
            let mut host_cfg = HostConfig::new(root);
            // Under --json, stdout is the JSON document only.
            host_cfg.inherit_stdio = !json;
            let mut host = PluginHost::new(host_cfg).map_err(host_err)?;
            host.load_file(&name, &path, policy).map_err(host_err)?;
            let mut runs = Vec::new();
            for _ in 0..repeat {
                let out = host.run(&name, &args).map_err(host_err)?;
                if json {
                    runs.push(out);
                } else if !out.is_empty() {
                    print_line(&out)?;
                }
            }
            if json {
                print_line(&pretty(&json!({"plugin": name, "runs": runs})))?;
            }
            Ok(())
        }
        Command::Keys {
            root,
            plugin,
            store,
        } => {
            let dir = sciqlop_cache_host::plugin_dir(&root, &plugin).map_err(host_err)?;
            if !dir.is_dir() {
                bail!("plugin {plugin} has no data under {}", root.display());
            }
            // Opened without a size bound: looking must never evict.
            let cache = sciqlop_cache::Cache::open(&dir)
                .with_context(|| format!("opening the cache of plugin {plugin}"))?;
            let mut out = KeyPrinter {
                json: json.then(Vec::new),
                stdout: std::io::stdout().lock(),
            };
            let converted = cache
                .metadata(sciqlop_cache_host::LAYOUT_META)
                .context("reading the cache's layout")?
                .is_some();
            if !converted {
                // Written by an earlier host and not converted yet (the next `run`
                // does): its keys already read `store/key`.
                let prefix = store.map(|s| format!("{s}/")).unwrap_or_default();
                out.keys(&cache, &prefix, None)?;
            } else {
                // One namespace per store, the default one being the store `default`.
                for ns in cache.namespaces().context("listing the stores")? {
                    let name = if ns.is_empty() {
                        sciqlop_cache_host::DEFAULT_STORE
                    } else {
                        ns.as_str()
                    };
                    if store.as_ref().is_none_or(|s| s == name) {
                        let c = cache
                            .namespace(&ns)
                            .with_context(|| format!("opening store {name}"))?;
                        out.keys(&c, "", Some(name))?;
                    }
                }
            }
            out.finish()?;
            Ok(())
        }
    }
}

/// Prints keys as lines of text, or collects them for one JSON array.
struct KeyPrinter {
    json: Option<Vec<serde_json::Value>>,
    stdout: std::io::StdoutLock<'static>,
}

impl KeyPrinter {
    /// Prints every key of `cache` starting with `prefix`, in store `store` (`None`: the
    /// keys read `store/key`, from a host's earlier layout).
    fn keys(
        &mut self,
        cache: &sciqlop_cache::Cache,
        prefix: &str,
        store: Option<&str>,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page = cache
                .keys_page(prefix, after.as_deref(), 1000)
                .context("listing keys")?;
            for k in &page {
                let v = cache
                    .get(k)
                    .with_context(|| format!("reading key {k:?}"))?
                    .unwrap_or_default();
                self.key(store, k, v)?;
            }
            if page.len() < 1000 {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }

    fn key(&mut self, store: Option<&str>, key: &str, value: Vec<u8>) -> Result<()> {
        let Some(all) = &mut self.json else {
            let full = match store {
                Some(s) => format!("{s}/{key}"),
                None => key.to_owned(),
            };
            let shown = match String::from_utf8(value) {
                Ok(s) if s.len() <= 60 => escaped(&s),
                Ok(s) => format!("<{} bytes>", s.len()),
                Err(e) => format!("<{} bytes>", e.as_bytes().len()),
            };
            writeln!(self.stdout, "{}\t{shown}", escaped(&full))?;
            return Ok(());
        };
        let (store, key) = match store {
            Some(s) => (s, key),
            None => key.split_once('/').unwrap_or(("", key)),
        };
        let mut o = json!({"store": store, "key": key, "size": value.len()});
        match String::from_utf8(value) {
            Ok(s) => o["value"] = json!(s),
            Err(e) => o["value_hex"] = json!(hex(e.as_bytes())),
        }
        all.push(o);
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let Some(all) = self.json.take() {
            writeln!(self.stdout, "{}", pretty(&json!(all)))?;
        }
        self.stdout.flush()?;
        Ok(())
    }
}

/// `s` as is, or quoted with Rust's escapes when it holds a control character (so that
/// one key is one line and the tab separates key from value).
fn escaped(s: &str) -> String {
    if s.chars().any(char::is_control) {
        format!("{s:?}")
    } else {
        s.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `v` indented by two spaces, like `sqcache --json`.
fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}
