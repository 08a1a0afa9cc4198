//! Opening any sciqlop-cache directory, with its kind detected from what is on disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use sciqlop_cache::engine::Namespace;
use sciqlop_cache::{
    Cache, CheckReport, Config, Engine, FanoutCache, FanoutIndex, Index, SetOptions,
};

/// An open store of any kind: the core's run-time engine choice. What the tool needs
/// beyond the core API (the kind as the command line names it, one shard at a time,
/// refusals that name the directory) is in [`StoreExt`].
pub use sciqlop_cache::AnyStore;

/// Name of a single store's database file.
pub const DB_FILE: &str = "sciqlop-cache.db";
/// Name of the marker file of a fanout directory.
pub const FANOUT_MARKER: &str = sciqlop_cache::fanout::MARKER;

/// The four kinds of sciqlop-cache directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// A single [`Cache`]: expiry, tags, LRU eviction.
    Cache,
    /// A single [`Index`]: plain key-value store.
    Index,
    /// A sharded [`FanoutCache`].
    FanoutCache,
    /// A sharded [`FanoutIndex`].
    FanoutIndex,
}

impl StoreKind {
    /// The kind's name as written on the command line (`cache`, `index`,
    /// `fanout-cache`, `fanout-index`).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Cache => "cache",
            StoreKind::Index => "index",
            StoreKind::FanoutCache => "fanout-cache",
            StoreKind::FanoutIndex => "fanout-index",
        }
    }

    /// Whether entries can have an expiry and a tag.
    pub fn has_expiry_and_tags(self) -> bool {
        matches!(self, StoreKind::Cache | StoreKind::FanoutCache)
    }

    /// Whether the kind is sharded.
    pub fn is_fanout(self) -> bool {
        matches!(self, StoreKind::FanoutCache | StoreKind::FanoutIndex)
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cache" => Ok(StoreKind::Cache),
            "index" => Ok(StoreKind::Index),
            "fanout-cache" => Ok(StoreKind::FanoutCache),
            "fanout-index" => Ok(StoreKind::FanoutIndex),
            _ => Err(format!(
                "unknown store kind {s:?} (expected cache, index, fanout-cache or fanout-index)"
            )),
        }
    }
}

/// Why a directory could not be opened as a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory does not exist.
    #[error("directory {0} does not exist")]
    Missing(PathBuf),
    /// The path is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The directory holds no sciqlop-cache store.
    #[error("{path} is not a sciqlop-cache store ({reason})")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The operation needs expiry or tags, which an index has not.
    #[error("{path} is {kind} store, which has no {what}")]
    Unsupported {
        /// The directory.
        path: PathBuf,
        /// Its kind.
        kind: &'static str,
        /// The missing feature.
        what: &'static str,
    },
    /// The store reported an error.
    #[error(transparent)]
    Cache(#[from] sciqlop_cache::Error),
}

/// Finds which kind of store `dir` holds, without creating anything.
///
/// A fanout directory is recognised by its marker file (whose `kind` line says cache or
/// index), a single store by its database (whose `meta` table says cache or index). A
/// Python diskcache directory gets a message pointing at `sqcache migrate`.
pub fn detect(dir: &Path) -> Result<StoreKind, StoreError> {
    let meta = std::fs::metadata(dir).map_err(|_| StoreError::Missing(dir.to_owned()))?;
    if !meta.is_dir() {
        return Err(StoreError::NotADirectory(dir.to_owned()));
    }
    let marker = dir.join(FANOUT_MARKER);
    if marker.is_file() {
        let text = std::fs::read_to_string(&marker).map_err(|e| StoreError::NotAStore {
            path: dir.to_owned(),
            reason: format!("cannot read {FANOUT_MARKER}: {e}"),
        })?;
        let kind = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "kind").then(|| v.trim().trim_matches('"').to_owned())
        });
        return match kind.as_deref() {
            Some("cache") => Ok(StoreKind::FanoutCache),
            Some("index") => Ok(StoreKind::FanoutIndex),
            other => Err(StoreError::NotAStore {
                path: dir.to_owned(),
                reason: format!("{FANOUT_MARKER} names an unknown kind {other:?}"),
            }),
        };
    }
    let db = dir.join(DB_FILE);
    let original = || {
        format!(
            "it was made by the original sciqlop-cache (pysciqlop-cache or its C++ library): \
             convert it with `sqcache migrate {} NEW_DIR`",
            dir.display()
        )
    };
    if crate::migrate::is_original_dir(dir) {
        return Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason: original(),
        });
    }
    if db.is_file() {
        return kind_of_database(dir, &db);
    }
    let reason = if crate::migrate::is_diskcache_dir(dir) {
        format!(
            "it is a Python diskcache directory: convert it with `sqcache migrate {} NEW_DIR`",
            dir.display()
        )
    } else {
        format!("no {DB_FILE} or {FANOUT_MARKER} in it")
    };
    Err(StoreError::NotAStore {
        path: dir.to_owned(),
        reason,
    })
}

fn kind_of_database(dir: &Path, _db: &Path) -> Result<StoreKind, StoreError> {
    use sciqlop_cache::engine::sqlite::SqliteEngine;
    // Looked at read-only: nothing is written and no lock waited for (a store in an
    // older format is upgraded by the real open).
    let look = |read_only: bool| {
        let b = apply(Cache::builder())
            .read_only(read_only)
            .maintenance_interval(Duration::ZERO);
        SqliteEngine::open(dir, b.config().clone(), None)
    };
    let engine = match look(true) {
        Err(sciqlop_cache::Error::ReadOnly { .. }) if !settings().read_only => look(false),
        r => r,
    };
    match engine {
        Ok(e) => match e.kind().name {
            "cache" => Ok(StoreKind::Cache),
            "index" => Ok(StoreKind::Index),
            other => Err(StoreError::NotAStore {
                path: dir.to_owned(),
                reason: format!("{DB_FILE} names an unknown kind {other:?}"),
            }),
        },
        Err(sciqlop_cache::Error::NotACache { reason, .. }) => Err(StoreError::NotAStore {
            path: dir.to_owned(),
            reason,
        }),
        Err(e) => Err(e.into()),
    }
}

/// What [`Settings::on_wait`] calls: the database waited on and the timeout.
pub type WaitFn = dyn Fn(&Path, Duration) + Send + Sync;

/// How the tool opens stores: set once from the command line (see [`set_settings`]).
#[derive(Clone, Default)]
pub struct Settings {
    /// Longest wait for another process's lock (`--timeout`); the library's default
    /// (ten minutes) when `None`.
    pub timeout: Option<Duration>,
    /// Open stores read-only (`--read-only`).
    pub read_only: bool,
    /// Called once when an operation has waited a moment for another process.
    pub on_wait: Option<Arc<WaitFn>>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("timeout", &self.timeout)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();

/// Sets how every later open behaves: call it before opening anything (the first call,
/// or the first open, fixes the settings).
pub fn set_settings(s: Settings) {
    let _ = SETTINGS.set(s);
}

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

/// `b` with the tool's [`Settings`].
fn apply<P: sciqlop_cache::Policy>(b: sciqlop_cache::Builder<P>) -> sciqlop_cache::Builder<P> {
    let s = settings();
    let mut b = b.read_only(s.read_only);
    if let Some(t) = s.timeout {
        b = b.busy_timeout(t);
    }
    if let Some(f) = s.on_wait.clone() {
        b = b.on_wait(move |p, t| f(p, t));
    }
    b
}

/// Opens the existing store in `dir`, of kind `kind` or, when `None`, of the kind found
/// on disk. Never creates a store.
pub fn open_existing(dir: &Path, kind: Option<StoreKind>) -> Result<AnyStore, StoreError> {
    let found = detect(dir)?;
    open_as(dir, kind.unwrap_or(found), None)
}

/// Opens the store in `dir` as `kind`, creating it when the directory holds none
/// (`shards` is the shard count of a new fanout; `None` keeps an existing count or uses
/// the default of 8).
pub fn open_as(dir: &Path, kind: StoreKind, shards: Option<u32>) -> Result<AnyStore, StoreError> {
    let engine: Arc<dyn Engine> = match kind {
        StoreKind::Cache => apply(Cache::builder()).open(dir)?.engine().clone(),
        StoreKind::Index => apply(Index::builder()).open(dir)?.engine().clone(),
        StoreKind::FanoutCache => {
            let mut b = FanoutCache::builder().configure(apply);
            if let Some(n) = shards {
                b = b.shards(n);
            }
            b.open(dir)?.engine().clone()
        }
        StoreKind::FanoutIndex => {
            let mut b = FanoutIndex::builder().configure(apply);
            if let Some(n) = shards {
                b = b.shards(n);
            }
            b.open(dir)?.engine().clone()
        }
    };
    Ok(AnyStore::from_engine(engine, &Config::default())?)
}

/// The URL when `path` names a store of a server engine (`redis://…`,
/// `redis+cluster://…`) rather than a directory.
pub fn location_of(path: &Path) -> Option<&str> {
    let s = path.to_str()?;
    sciqlop_cache::engine::registry::scheme_of(s)
        .filter(|scheme| *scheme != "file")
        .map(|_| s)
}

/// Opens the store at the URL `location` (see [`location_of`]); `create` makes it as
/// `kind` (default: a cache) when it does not exist yet.
pub fn open_location(
    location: &str,
    kind: Option<StoreKind>,
    create: bool,
) -> Result<AnyStore, StoreError> {
    sciqlop_cache_redis::register();
    let want = match kind {
        Some(StoreKind::FanoutCache | StoreKind::FanoutIndex) => {
            return Err(StoreError::Unsupported {
                path: PathBuf::from(sciqlop_cache_redis::location::redact(location)),
                kind: "a server",
                what: "fanout (a Redis store spreads over a cluster by itself)",
            });
        }
        Some(StoreKind::Index) => Some(sciqlop_cache::Kind::INDEX),
        Some(StoreKind::Cache) => Some(sciqlop_cache::Kind::CACHE),
        None if create => Some(sciqlop_cache::Kind::CACHE),
        None => None,
    };
    let builder = apply(sciqlop_cache::AnyStore::builder());
    let engine = sciqlop_cache::engine::registry::open_location(location, builder.config(), want)?;
    Ok(AnyStore::from_engine(engine, builder.config())?)
}

/// What the tool does with a store beyond the core API.
pub trait StoreExt {
    /// The store's kind, as the command line names it.
    fn store_kind(&self) -> StoreKind;
    /// Number of shards (1 for a single store).
    fn shard_count(&self) -> u32;
    /// Checks one shard (`0` for a single store); for progress reporting.
    fn check_shard(&self, shard: u32, fix: bool) -> Result<CheckReport, StoreError>;
    /// Removes every entry of one shard (`0` for a single store); for progress reporting.
    fn clear_shard(&self, shard: u32) -> Result<u64, StoreError>;
    /// Stores `value` with `opts`; an expiry or tag on an index is an error naming the
    /// directory.
    fn set_checked(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<(), StoreError>;
    /// Stores several entries, each shard's part in one transaction (all or nothing per
    /// shard); an expiry or tag on an index is an error naming the directory.
    fn set_many_checked(&self, entries: &[(String, Vec<u8>, SetOptions)])
    -> Result<(), StoreError>;
    /// Gives a live entry a new expiry (`None`: never); whether the key was live.
    fn touch_checked(&self, key: &str, expire: Option<Duration>) -> Result<bool, StoreError>;
    /// Removes the entries tagged `tag`; how many.
    fn evict_tag_checked(&self, tag: &str) -> Result<u64, StoreError>;
    /// Removes the expired entries now; how many.
    fn expire_checked(&self) -> Result<u64, StoreError>;
}

impl StoreExt for AnyStore {
    fn store_kind(&self) -> StoreKind {
        match (self.kind().tags, self.engine().parts().is_empty()) {
            (true, true) => StoreKind::Cache,
            (false, true) => StoreKind::Index,
            (true, false) => StoreKind::FanoutCache,
            (false, false) => StoreKind::FanoutIndex,
        }
    }

    fn shard_count(&self) -> u32 {
        (self.engine().parts().len() as u32).max(1)
    }

    fn check_shard(&self, shard: u32, fix: bool) -> Result<CheckReport, StoreError> {
        Ok(match self.engine().parts().get(shard as usize) {
            Some(part) => part.check(fix)?,
            None => self.check(fix)?,
        })
    }

    fn clear_shard(&self, shard: u32) -> Result<u64, StoreError> {
        Ok(match self.engine().parts().get(shard as usize) {
            Some(part) => part.clear(&Namespace::DEFAULT)?,
            None => self.clear()?,
        })
    }

    fn set_checked(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<(), StoreError> {
        refuse_options(self, opts)?;
        Ok(self.set_with(key, value, opts)?)
    }

    fn set_many_checked(
        &self,
        entries: &[(String, Vec<u8>, SetOptions)],
    ) -> Result<(), StoreError> {
        for (_, _, opts) in entries {
            refuse_options(self, opts)?;
        }
        let count = self.shard_count();
        let mut groups = vec![Vec::new(); count as usize];
        for e in entries {
            groups[sciqlop_cache::fanout::shard_of(&e.0, count) as usize].push(e);
        }
        for g in groups.iter().filter(|g| !g.is_empty()) {
            // A transaction runs on the shard of its first key (a fanout's are per shard).
            self.transact_on(&g[0].0, |tx| {
                g.iter().try_for_each(|(k, v, o)| tx.set_with(k, v, o))
            })?;
        }
        Ok(())
    }

    fn touch_checked(&self, key: &str, expire: Option<Duration>) -> Result<bool, StoreError> {
        needs(self, self.kind().expiry, "expiry")?;
        Ok(self.touch(key, expire)?)
    }

    fn evict_tag_checked(&self, tag: &str) -> Result<u64, StoreError> {
        needs(self, self.kind().tags, "tags")?;
        Ok(self.evict_tag(tag)?)
    }

    fn expire_checked(&self) -> Result<u64, StoreError> {
        needs(self, self.kind().expiry, "expiry")?;
        Ok(self.expire()?)
    }
}

/// [`StoreError::Unsupported`] unless `has` (the store's kind has `what`).
fn needs(s: &AnyStore, has: bool, what: &'static str) -> Result<(), StoreError> {
    if has {
        return Ok(());
    }
    Err(StoreError::Unsupported {
        path: s.path().to_owned(),
        kind: match s.store_kind() {
            StoreKind::Index => "an index",
            StoreKind::FanoutIndex => "a fanout-index",
            StoreKind::Cache => "a cache",
            StoreKind::FanoutCache => "a fanout-cache",
        },
        what,
    })
}

fn refuse_options(s: &AnyStore, opts: &SetOptions) -> Result<(), StoreError> {
    if opts.expiry().is_some() {
        needs(s, s.kind().expiry, "expiry")?;
    }
    if opts.tag_name().is_some() {
        needs(s, s.kind().tags, "tags")?;
    }
    Ok(())
}
