//! Per-plugin policy (grants and quotas) and the TOML configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::HostError;

/// Quotas and sandbox bounds of one plugin.
///
/// Storage quotas (`max_bytes`, `max_value_size`, `max_key_len`, `max_handles`) hold for
/// the plugin's whole namespace; sandbox bounds (`max_memory`, `timeout`) hold for each
/// invocation. Exceeding a storage quota is a typed error returned to the plugin;
/// exceeding a sandbox bound ends the invocation with [`HostError::Timeout`] or
/// [`HostError::MemoryLimit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the plugin's stores may hold together; beyond it the least recently used
    /// entries are evicted. A single entry larger than this is `quota-exceeded`.
    pub max_bytes: u64,
    /// Largest value accepted (`too-large` beyond).
    pub max_value_size: u64,
    /// Longest key (and tag) accepted in bytes (`invalid-key` beyond).
    pub max_key_len: usize,
    /// Entries the plugin's stores may hold together. Keys do not count in
    /// `max_bytes`, so this bounds what many keys with small values take on disk:
    /// a write that would add an entry beyond it is `quota-exceeded` (writes to
    /// existing keys still succeed).
    pub max_entries: u64,
    /// Store and transaction handles a plugin may hold open at once (`quota-exceeded`).
    pub max_handles: u32,
    /// Distinct store names the plugin's cache may hold (each is a namespace kept on
    /// disk); opening one more new name is `quota-exceeded`. The store `default` does
    /// not count.
    pub max_stores: u32,
    /// Linear memory an invocation may grow to, in bytes.
    pub max_memory: usize,
    /// Wall-clock bound of one invocation (epoch interruption).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            max_value_size: 1 << 20,
            max_key_len: 512,
            max_entries: 1_000_000,
            max_handles: 64,
            max_stores: 256,
            max_memory: 64 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Which store names a plugin may open, its [`Limits`], and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPolicy {
    /// Store names the plugin may open; `"*"` grants every valid name (still inside the
    /// plugin's own namespace). Other names are `access-denied`.
    pub stores: Vec<String>,
    /// Quotas and sandbox bounds.
    pub limits: Limits,
    /// Where the plugin's cache lives: `None` is its directory under the host's root
    /// (`ROOT/plugins/<plugin>/`); a location such as
    /// `redis://HOST:PORT/DB?namespace=NAME` or `redis+cluster://HOST:PORT,HOST:PORT`
    /// puts it on a Redis server or cluster, so that several host processes (on several
    /// machines) serve the same plugin's data. See [`PluginScope`](crate::PluginScope).
    pub location: Option<String>,
}

impl Default for PluginPolicy {
    /// Every store name within the plugin's own namespace, default [`Limits`].
    fn default() -> Self {
        PluginPolicy {
            stores: vec!["*".to_owned()],
            limits: Limits::default(),
            location: None,
        }
    }
}

impl PluginPolicy {
    /// Whether the plugin may open the store `name`.
    pub fn grants(&self, name: &str) -> bool {
        self.stores.iter().any(|s| s == "*" || s == name)
    }
}

/// Optional limit overrides as written in the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    /// See [`Limits::max_bytes`].
    pub max_bytes: Option<u64>,
    /// See [`Limits::max_value_size`].
    pub max_value_size: Option<u64>,
    /// See [`Limits::max_key_len`].
    pub max_key_len: Option<usize>,
    /// See [`Limits::max_entries`].
    pub max_entries: Option<u64>,
    /// See [`Limits::max_handles`].
    pub max_handles: Option<u32>,
    /// See [`Limits::max_stores`].
    pub max_stores: Option<u32>,
    /// See [`Limits::max_memory`].
    pub max_memory: Option<usize>,
    /// See [`Limits::timeout`], in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl LimitsPatch {
    /// `base` with the fields set here replaced.
    pub fn apply(&self, base: &Limits) -> Limits {
        Limits {
            max_bytes: self.max_bytes.unwrap_or(base.max_bytes),
            max_value_size: self.max_value_size.unwrap_or(base.max_value_size),
            max_key_len: self.max_key_len.unwrap_or(base.max_key_len),
            max_entries: self.max_entries.unwrap_or(base.max_entries),
            max_handles: self.max_handles.unwrap_or(base.max_handles),
            max_stores: self.max_stores.unwrap_or(base.max_stores),
            max_memory: self.max_memory.unwrap_or(base.max_memory),
            timeout: self.timeout_ms.map_or(base.timeout, Duration::from_millis),
        }
    }
}

/// One `[plugins.NAME]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// The component file (relative to the configuration file); `--plugin` overrides it.
    pub path: Option<PathBuf>,
    /// Granted store names (default: `["*"]`).
    pub stores: Option<Vec<String>>,
    /// Where the plugin's cache lives (default: under the host's root); see
    /// [`PluginPolicy::location`].
    pub location: Option<String>,
    /// See [`Limits::max_bytes`].
    pub max_bytes: Option<u64>,
    /// See [`Limits::max_value_size`].
    pub max_value_size: Option<u64>,
    /// See [`Limits::max_key_len`].
    pub max_key_len: Option<usize>,
    /// See [`Limits::max_entries`].
    pub max_entries: Option<u64>,
    /// See [`Limits::max_handles`].
    pub max_handles: Option<u32>,
    /// See [`Limits::max_stores`].
    pub max_stores: Option<u32>,
    /// See [`Limits::max_memory`].
    pub max_memory: Option<usize>,
    /// See [`Limits::timeout`], in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The host configuration file.
///
/// ```toml
/// root = "/var/lib/sciqlop-plugins"   # optional, --root overrides
///
/// [defaults]                          # every field optional
/// max_bytes = 67108864
/// max_value_size = 1048576
/// max_key_len = 512
/// max_entries = 1000000
/// max_handles = 64
/// max_stores = 256
/// max_memory = 67108864
/// timeout_ms = 10000
///
/// [plugins.memoize]
/// path = "memoize.wasm"
/// stores = ["memo"]
/// max_bytes = 1048576
///
/// [plugins.sessions]                  # its data on a Redis server, shared by every
/// path = "sessions.wasm"              # host process configured so
/// location = "redis://127.0.0.1:6379/0?namespace=sessions"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Directory holding every plugin's namespace.
    pub root: Option<PathBuf>,
    /// Limits of every plugin unless its section overrides them.
    #[serde(default)]
    pub defaults: LimitsPatch,
    /// Per-plugin grants, quotas and component paths.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSection>,
    /// Directory of the file, to resolve relative paths.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl ConfigFile {
    /// Parses TOML text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, HostError> {
        let mut cfg: ConfigFile = toml::from_str(text).map_err(|e| {
            // One line: where, then what (toml's own text draws the line with a caret).
            let at = e.span().map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            });
            let message = e.message().trim_end().replace('\n', "; ");
            HostError::Config(format!("{}{message}", at.unwrap_or_default()))
        })?;
        cfg.base_dir = base_dir.to_path_buf();
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path).map_err(|e| HostError::Io {
            context: format!("reading configuration {}", path.display()),
            source: e,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            HostError::Config(m) => HostError::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// The policy of plugin `name`: its section over `[defaults]` over [`Limits::default`].
    pub fn policy(&self, name: &str) -> PluginPolicy {
        let base = self.defaults.apply(&Limits::default());
        match self.plugins.get(name) {
            None => PluginPolicy {
                stores: vec!["*".to_owned()],
                limits: base,
                location: None,
            },
            Some(s) => {
                let patch = LimitsPatch {
                    max_bytes: s.max_bytes,
                    max_value_size: s.max_value_size,
                    max_key_len: s.max_key_len,
                    max_entries: s.max_entries,
                    max_handles: s.max_handles,
                    max_stores: s.max_stores,
                    max_memory: s.max_memory,
                    timeout_ms: s.timeout_ms,
                };
                PluginPolicy {
                    stores: s.stores.clone().unwrap_or_else(|| vec!["*".to_owned()]),
                    limits: patch.apply(&base),
                    location: s.location.clone(),
                }
            }
        }
    }

    /// The component path of plugin `name` from its section, resolved.
    pub fn plugin_path(&self, name: &str) -> Option<PathBuf> {
        let p = self.plugins.get(name)?.path.as_ref()?;
        Some(if p.is_absolute() {
            p.clone()
        } else {
            self.base_dir.join(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_override_defaults() {
        let cfg = ConfigFile::parse(
            "[defaults]\nmax_bytes = 1000\ntimeout_ms = 50\n[plugins.a]\nstores = [\"x\"]\nmax_bytes = 10\npath = \"a.wasm\"\nlocation = \"redis://h:1/0\"\n",
            Path::new("/cfg"),
        )
        .expect("valid config");
        let a = cfg.policy("a");
        assert_eq!(a.limits.max_bytes, 10);
        assert_eq!(a.limits.timeout, Duration::from_millis(50));
        assert!(a.grants("x") && !a.grants("y"));
        let b = cfg.policy("b");
        assert_eq!(b.limits.max_bytes, 1000);
        assert!(b.grants("anything"));
        assert_eq!(cfg.plugin_path("a"), Some(PathBuf::from("/cfg/a.wasm")));
        assert_eq!(a.location.as_deref(), Some("redis://h:1/0"));
        assert_eq!(b.location, None);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(ConfigFile::parse("[defaults]\nmax_byte = 3\n", Path::new(".")).is_err());
    }
}
