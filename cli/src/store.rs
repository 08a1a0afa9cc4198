//! Opening any sciqlop-cache directory, with its kind detected from what is on disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sciqlop_cache::{Cache, CheckReport, FanoutCache, FanoutIndex, Index, SetOptions};

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
    if db.is_file() {
        return kind_of_database(dir, &db);
    }
    let reason = if crate::migrate::is_diskcache_dir(dir) {
        "it is a Python diskcache directory: convert it with `sqcache migrate`".to_owned()
    } else {
        format!("no {DB_FILE} or {FANOUT_MARKER} in it")
    };
    Err(StoreError::NotAStore {
        path: dir.to_owned(),
        reason,
    })
}

fn kind_of_database(dir: &Path, db: &Path) -> Result<StoreKind, StoreError> {
    use rusqlite::{OpenFlags, OptionalExtension};
    let not_a_store = |reason: String| StoreError::NotAStore {
        path: dir.to_owned(),
        reason,
    };
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| rusqlite::Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY))
    .map_err(|e| not_a_store(format!("cannot open {DB_FILE}: {e}")))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(|e| not_a_store(e.to_string()))?;
    let kind: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'kind'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| not_a_store(format!("{DB_FILE} has no sciqlop-cache metadata ({e})")))?;
    match kind.as_deref() {
        Some("cache") => Ok(StoreKind::Cache),
        Some("index") => Ok(StoreKind::Index),
        other => Err(not_a_store(format!(
            "{DB_FILE} names an unknown kind {other:?}"
        ))),
    }
}

/// An open store of any kind, with the operations the tool needs.
#[derive(Debug)]
pub enum AnyStore {
    /// A single cache.
    Cache(Cache),
    /// A single index.
    Index(Index),
    /// A sharded cache.
    FanoutCache(FanoutCache),
    /// A sharded index.
    FanoutIndex(FanoutIndex),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Cache($s) => $e,
            AnyStore::Index($s) => $e,
            AnyStore::FanoutCache($s) => $e,
            AnyStore::FanoutIndex($s) => $e,
        }
    };
}

impl AnyStore {
    /// Opens the existing store in `dir`, of kind `kind` or, when `None`, of the kind
    /// found on disk. Never creates a store.
    pub fn open_existing(dir: &Path, kind: Option<StoreKind>) -> Result<Self, StoreError> {
        let found = detect(dir)?;
        Self::open_as(dir, kind.unwrap_or(found), None)
    }

    /// Opens the store in `dir` as `kind`, creating it when the directory holds none
    /// (`shards` is the shard count of a new fanout; `None` keeps an existing count or
    /// uses the default of 8).
    pub fn open_as(dir: &Path, kind: StoreKind, shards: Option<u32>) -> Result<Self, StoreError> {
        Ok(match kind {
            StoreKind::Cache => AnyStore::Cache(Cache::open(dir)?),
            StoreKind::Index => AnyStore::Index(Index::open(dir)?),
            StoreKind::FanoutCache => {
                let mut b = FanoutCache::builder();
                if let Some(n) = shards {
                    b = b.shards(n);
                }
                AnyStore::FanoutCache(b.open(dir)?)
            }
            StoreKind::FanoutIndex => {
                let mut b = FanoutIndex::builder();
                if let Some(n) = shards {
                    b = b.shards(n);
                }
                AnyStore::FanoutIndex(b.open(dir)?)
            }
        })
    }

    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        match self {
            AnyStore::Cache(_) => StoreKind::Cache,
            AnyStore::Index(_) => StoreKind::Index,
            AnyStore::FanoutCache(_) => StoreKind::FanoutCache,
            AnyStore::FanoutIndex(_) => StoreKind::FanoutIndex,
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        each!(self, s => s.path())
    }

    /// Number of shards (1 for a single store).
    pub fn shard_count(&self) -> u32 {
        match self {
            AnyStore::FanoutCache(f) => f.shard_count(),
            AnyStore::FanoutIndex(f) => f.shard_count(),
            _ => 1,
        }
    }

    fn unsupported(&self, what: &'static str) -> StoreError {
        StoreError::Unsupported {
            path: self.path().to_owned(),
            kind: match self.kind() {
                StoreKind::Index => "an index",
                StoreKind::FanoutIndex => "a fanout-index",
                StoreKind::Cache => "a cache",
                StoreKind::FanoutCache => "a fanout-cache",
            },
            what,
        }
    }

    /// Live entries.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(each!(self, s => s.len())?)
    }

    /// Whether the store holds no live entry.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Bytes of stored values.
    pub fn size(&self) -> Result<u64, StoreError> {
        Ok(each!(self, s => s.size())?)
    }

    /// Bytes on disk.
    pub fn volume(&self) -> Result<u64, StoreError> {
        Ok(each!(self, s => s.volume())?)
    }

    /// Verifies (and with `fix`, repairs) the store.
    pub fn check(&self, fix: bool) -> Result<CheckReport, StoreError> {
        Ok(each!(self, s => s.check(fix))?)
    }

    /// Checks one shard (`0` for a single store); for progress reporting.
    pub fn check_shard(&self, shard: u32, fix: bool) -> Result<CheckReport, StoreError> {
        Ok(match self {
            AnyStore::Cache(s) => s.check(fix)?,
            AnyStore::Index(s) => s.check(fix)?,
            AnyStore::FanoutCache(f) => f.shards()[shard as usize].check(fix)?,
            AnyStore::FanoutIndex(f) => f.shards()[shard as usize].check(fix)?,
        })
    }

    /// One page of live keys with `prefix`, after the cursor `after`, in byte order.
    pub fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(each!(self, s => s.keys_page(prefix, after, limit))?)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(each!(self, s => s.get(key))?)
    }

    /// Whether `key` holds a live entry.
    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        Ok(each!(self, s => s.contains(key))?)
    }

    /// Stores `value` with `opts`; an expiry or tag on an index is an error.
    pub fn set(&self, key: &str, value: &[u8], opts: &SetOptions) -> Result<(), StoreError> {
        match self {
            AnyStore::Cache(s) => s.set_with(key, value, opts)?,
            AnyStore::FanoutCache(s) => s.set_with(key, value, opts)?,
            AnyStore::Index(_) | AnyStore::FanoutIndex(_) => {
                self.check_plain(opts)?;
                each!(self, s => s.set(key, value))?;
            }
        }
        Ok(())
    }

    fn check_plain(&self, opts: &SetOptions) -> Result<(), StoreError> {
        if opts.expiry().is_some() {
            return Err(self.unsupported("expiry"));
        }
        if opts.tag_name().is_some() {
            return Err(self.unsupported("tags"));
        }
        Ok(())
    }

    /// Stores several entries, each shard's part in one transaction (all or nothing per
    /// shard). Entries must be valid for the kind (no expiry or tag on an index).
    pub fn set_many(&self, entries: &[(String, Vec<u8>, SetOptions)]) -> Result<(), StoreError> {
        fn group(
            entries: &[(String, Vec<u8>, SetOptions)],
            count: u32,
        ) -> Vec<Vec<&(String, Vec<u8>, SetOptions)>> {
            let mut groups = vec![Vec::new(); count as usize];
            for e in entries {
                groups[sciqlop_cache::fanout::shard_of(&e.0, count) as usize].push(e);
            }
            groups
        }
        for (_, _, opts) in entries {
            if !self.kind().has_expiry_and_tags() {
                self.check_plain(opts)?;
            }
        }
        match self {
            AnyStore::Cache(s) => s.transact(|tx| {
                entries
                    .iter()
                    .try_for_each(|(k, v, o)| tx.set_with(k, v, o))
            })?,
            AnyStore::Index(s) => {
                s.transact(|tx| entries.iter().try_for_each(|(k, v, _)| tx.set(k, v)))?
            }
            AnyStore::FanoutCache(f) => {
                for (i, g) in group(entries, f.shard_count()).into_iter().enumerate() {
                    if !g.is_empty() {
                        f.shards()[i].transact(|tx| {
                            g.iter().try_for_each(|(k, v, o)| tx.set_with(k, v, o))
                        })?;
                    }
                }
            }
            AnyStore::FanoutIndex(f) => {
                for (i, g) in group(entries, f.shard_count()).into_iter().enumerate() {
                    if !g.is_empty() {
                        f.shards()[i]
                            .transact(|tx| g.iter().try_for_each(|(k, v, _)| tx.set(k, v)))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes `key`; whether a live entry was removed.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(each!(self, s => s.delete(key))?)
    }

    /// Adds `delta` to the counter at `key` (created as `default + delta`).
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64, StoreError> {
        Ok(each!(self, s => s.incr(key, delta, default))?)
    }

    /// Gives a live entry a new expiry (`None`: never); whether the key was live.
    pub fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool, StoreError> {
        match self {
            AnyStore::Cache(s) => Ok(s.touch(key, expire)?),
            AnyStore::FanoutCache(s) => Ok(s.touch(key, expire)?),
            _ => Err(self.unsupported("expiry")),
        }
    }

    /// Removes the entries tagged `tag`; how many.
    pub fn evict_tag(&self, tag: &str) -> Result<u64, StoreError> {
        match self {
            AnyStore::Cache(s) => Ok(s.evict_tag(tag)?),
            AnyStore::FanoutCache(s) => Ok(s.evict_tag(tag)?),
            _ => Err(self.unsupported("tags")),
        }
    }

    /// Removes the expired entries now; how many.
    pub fn expire(&self) -> Result<u64, StoreError> {
        match self {
            AnyStore::Cache(s) => Ok(s.expire()?),
            AnyStore::FanoutCache(s) => Ok(s.expire()?),
            _ => Err(self.unsupported("expiry")),
        }
    }

    /// Removes every entry; how many.
    pub fn clear(&self) -> Result<u64, StoreError> {
        Ok(each!(self, s => s.clear())?)
    }

    /// Removes every entry of one shard (`0` for a single store); for progress reporting.
    pub fn clear_shard(&self, shard: u32) -> Result<u64, StoreError> {
        Ok(match self {
            AnyStore::Cache(s) => s.clear()?,
            AnyStore::Index(s) => s.clear()?,
            AnyStore::FanoutCache(f) => f.shards()[shard as usize].clear()?,
            AnyStore::FanoutIndex(f) => f.shards()[shard as usize].clear()?,
        })
    }
}
