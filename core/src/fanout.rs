//! Sharded stores: keys routed to one of N independent stores, so writers to different
//! shards proceed in parallel (each shard has its own database and write lock).
//!
//! A fanout directory holds `sciqlop-fanout.toml` (format, kind, shard count) and one
//! store directory per shard: `000`, `001`, … Keys are routed by [`shard_of`]: xxh3-64
//! of the key's UTF-8 bytes modulo the shard count, stable across processes, platforms
//! and releases. The shard count is fixed at creation; reopening with another count is
//! [`Error::ShardCountMismatch`] rather than silent misrouting.
//!
//! ```
//! use sciqlop_cache::{FanoutCache, SetOptions};
//! let dir = tempfile::tempdir()?;
//! let cache = FanoutCache::builder().shards(4).max_size(1 << 30).open(dir.path())?;
//! cache.set("key", b"value")?;
//! assert_eq!(cache.get("key")?.as_deref(), Some(&b"value"[..]));
//! // A transaction runs on the shard of its key.
//! cache.transact("counter", |tx| {
//!     let n = tx.incr("counter", 1, 0)?;
//!     tx.incr("counter", n, 0)
//! })?;
//! assert_eq!(cache.get_counter("counter")?, Some(2));
//! # Ok::<(), sciqlop_cache::Error>(())
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use xxhash_rust::xxh3::xxh3_64;

use crate::options::{Builder, CheckReport, SetOptions, Stats};
use crate::policy::{CacheKind, IndexKind, Policy};
use crate::store::{Lock, Store, Transaction};
use crate::{Error, Result};

/// The shard of `key` among `count` shards: xxh3-64 of the key's UTF-8 bytes modulo
/// `count`. Part of the on-disk format: it never changes.
///
/// ```
/// assert_eq!(sciqlop_cache::fanout::shard_of("key", 8), sciqlop_cache::fanout::shard_of("key", 8));
/// assert!(sciqlop_cache::fanout::shard_of("anything", 8) < 8);
/// ```
pub fn shard_of(key: &str, count: u32) -> u32 {
    (xxh3_64(key.as_bytes()) % u64::from(count.max(1))) as u32
}

/// Name of the file that marks a fanout directory.
pub const MARKER: &str = "sciqlop-fanout.toml";
const FORMAT: &str = "sciqlop-cache-fanout/1";
/// Shard count of a new fanout directory when none is given.
pub const DEFAULT_SHARDS: u32 = 8;
/// Most shards a fanout may have.
pub const MAX_SHARDS: u32 = 1024;

/// N stores of kind `P` behind one key space. See the [module docs](self).
pub struct Fanout<P: Policy> {
    dir: PathBuf,
    shards: Vec<Store<P>>,
}

/// Sharded [`Cache`](crate::Cache).
pub type FanoutCache = Fanout<CacheKind>;
/// Sharded [`Index`](crate::Index).
pub type FanoutIndex = Fanout<IndexKind>;

/// Builder of a [`Fanout`]: the [`Builder`] settings of the shards plus the shard count.
/// `max_size` bounds the whole fanout (each shard gets an equal part).
#[derive(Debug, Clone)]
pub struct FanoutBuilder<P> {
    inner: Builder<P>,
    shards: Option<u32>,
}

impl<P: Policy> FanoutBuilder<P> {
    /// Number of shards of a new directory (default 8). An existing directory keeps its
    /// count; asking for another is [`Error::ShardCountMismatch`].
    #[must_use]
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = Some(n);
        self
    }

    /// Applies any shard setting of [`Builder`] (file threshold, clock, limits…).
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(Builder<P>) -> Builder<P>) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Bound on the bytes of values of the whole fanout (see [`Builder::max_size`]).
    #[must_use]
    pub fn max_size(self, bytes: u64) -> Self {
        self.configure(|b| b.max_size(bytes))
    }

    /// See [`Builder::file_threshold`].
    #[must_use]
    pub fn file_threshold(self, bytes: usize) -> Self {
        self.configure(|b| b.file_threshold(bytes))
    }

    /// See [`Builder::clock`].
    #[must_use]
    pub fn clock(self, clock: std::sync::Arc<dyn crate::Clock>) -> Self {
        self.configure(|b| b.clock(clock))
    }

    /// See [`Builder::maintenance_interval`].
    #[must_use]
    pub fn maintenance_interval(self, every: Duration) -> Self {
        self.configure(|b| b.maintenance_interval(every))
    }

    /// Opens (creating if needed) the fanout in directory `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Fanout<P>> {
        let dir = path.as_ref().to_owned();
        if let Some(n) = self.shards
            && !(1..=MAX_SHARDS).contains(&n)
        {
            return Err(Error::InvalidArgument(format!(
                "shard count must be between 1 and {MAX_SHARDS}, not {n}"
            )));
        }
        let count = read_or_create_marker::<P>(&dir, self.shards)?;
        let mut config = self.inner.config;
        config.max_size = config.max_size.div_ceil(u64::from(count));
        let shards = (0..count)
            .map(|i| {
                let mut s = Store::open_with(&shard_dir(&dir, i), config.clone())?;
                s.set_shard(i, count);
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fanout { dir, shards })
    }
}

fn shard_dir(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("{i:03}"))
}

/// Reads the shard count of a fanout directory, if it is one.
pub fn shard_count_on_disk(dir: &Path) -> Result<Option<u32>> {
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) => parse_marker(&marker, &text).map(|(_, n)| Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", marker.display()), e)),
    }
}

fn parse_marker(marker: &Path, text: &str) -> Result<(String, u32)> {
    let bad = |reason: String| Error::NotACache {
        path: marker.to_owned(),
        reason,
    };
    let mut format = None;
    let mut kind = None;
    let mut shards = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "format" => format = Some(v.to_owned()),
            "kind" => kind = Some(v.to_owned()),
            "shards" => shards = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    if format.as_deref() != Some(FORMAT) {
        return Err(bad(format!("unsupported fanout format {format:?}")));
    }
    match (kind, shards) {
        (Some(k), Some(n)) if (1..=MAX_SHARDS).contains(&n) => Ok((k, n)),
        _ => Err(bad("fanout marker lacks a valid kind or shard count".into())),
    }
}

/// The shard count of the shard stores in `dir` (highest shard number + 1), if any.
fn shards_on_disk(dir: &Path) -> Result<Option<u32>> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut highest = None;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() >= 3
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = name.parse::<u32>()
            && i < MAX_SHARDS
            && shard_dir(dir, i) == e.path()
            && e.path().join(crate::engine::DB_FILE).exists()
        {
            highest = highest.max(Some(i));
        }
    }
    Ok(highest.map(|i| i + 1))
}

/// Whether `dir` holds a fanout (its marker, or shard stores whose marker is gone).
pub(crate) fn looks_like_fanout(dir: &Path) -> bool {
    dir.join(MARKER).exists() || shard_dir(dir, 0).join(crate::engine::DB_FILE).exists()
}

fn read_or_create_marker<P: Policy>(dir: &Path, requested: Option<u32>) -> Result<u32> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(dir.to_owned())),
        Ok(_) => {}
        Err(_) => fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating fanout directory {}", dir.display()), e))?,
    }
    let marker = dir.join(MARKER);
    loop {
        match fs::read_to_string(&marker) {
            Ok(text) => {
                let (kind, n) = parse_marker(&marker, &text)?;
                if kind != P::NAME {
                    return Err(Error::WrongKind {
                        path: dir.to_owned(),
                        expected: P::NAME,
                        found: kind,
                    });
                }
                if let Some(r) = requested
                    && r != n
                {
                    return Err(Error::ShardCountMismatch {
                        path: dir.to_owned(),
                        on_disk: n,
                        requested: r,
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.join(crate::engine::DB_FILE).exists() {
                    return Err(Error::WrongKind {
                        path: dir.to_owned(),
                        expected: "fanout",
                        found: "single-store".into(),
                    });
                }
                // Shard stores without their marker (it was deleted): the count is
                // theirs, never the one asked for, or every key would route elsewhere.
                let found = shards_on_disk(dir)?;
                if let (Some(n), Some(r)) = (found, requested)
                    && n != r
                {
                    return Err(Error::ShardCountMismatch {
                        path: dir.to_owned(),
                        on_disk: n,
                        requested: r,
                    });
                }
                if let Some(n) = found {
                    tracing::warn!(dir = %dir.display(), shards = n, "fanout marker missing: recreated from the shard directories");
                }
                let n = found.or(requested).unwrap_or(DEFAULT_SHARDS);
                let text = format!(
                    "format = \"{FORMAT}\"\nkind = \"{}\"\nshards = {n}\n",
                    P::NAME
                );
                // Write a complete temporary file, then link it into place: the marker
                // appears whole or not at all, and of two racing creators one wins.
                let tmp = dir.join(format!(
                    ".{MARKER}.{:016x}",
                    xxh3_64(
                        format!("{:?}{}", std::time::SystemTime::now(), std::process::id())
                            .as_bytes()
                    )
                ));
                let written = fs::File::create_new(&tmp)
                    .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
                let linked = written.and_then(|()| fs::hard_link(&tmp, &marker));
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(format!("creating {}", marker.display()), e)),
                }
                // Loop: read back what is there (ours or the winner's).
            }
            Err(e) => return Err(Error::io(format!("reading {}", marker.display()), e)),
        }
    }
}

impl<P: Policy> std::fmt::Debug for Fanout<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("kind", &P::NAME)
            .field("path", &self.dir)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl<P: Policy> Fanout<P> {
    /// Opens (creating with 8 shards if needed) the fanout in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().open(path)
    }

    /// A builder to configure the fanout before opening it.
    pub fn builder() -> FanoutBuilder<P> {
        FanoutBuilder {
            inner: Builder::default(),
            shards: None,
        }
    }

    /// The directory of the fanout.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The shard store that holds `key`.
    pub fn shard_for(&self, key: &str) -> &Store<P> {
        &self.shards[shard_of(key, self.shard_count()) as usize]
    }

    /// The shard store for a write of `key`. A thread inside a transaction on one shard
    /// may write only to that shard: a write to another would wait for that shard's
    /// writer while holding this one, and two threads doing so crosswise would wait
    /// for each other forever. It fails at once with [`Error::WrongShard`] instead.
    fn shard_for_write(&self, key: &str) -> Result<&Store<P>> {
        let i = shard_of(key, self.shard_count());
        match self.tx_shard() {
            Some(t) if t != i => Err(Error::WrongShard {
                key: key.to_owned(),
                key_shard: i,
                tx_shard: t,
            }),
            _ => Ok(&self.shards[i as usize]),
        }
    }

    /// The shard on which this thread has a transaction open, if any.
    fn tx_shard(&self) -> Option<u32> {
        self.shards
            .iter()
            .position(Store::in_transaction)
            .map(|i| i as u32)
    }

    /// Refuses an operation on every shard from inside a shard transaction (see
    /// [`shard_for_write`](Self::shard_for_write)).
    fn no_transaction(&self, what: &str) -> Result<()> {
        match self.tx_shard() {
            Some(t) => Err(Error::InvalidArgument(format!(
                "{what} spans every shard and cannot run inside a transaction of shard {t}"
            ))),
            None => Ok(()),
        }
    }

    /// All shard stores, in order.
    pub fn shards(&self) -> &[Store<P>] {
        &self.shards
    }

    fn sum(&self, f: impl Fn(&Store<P>) -> Result<u64>) -> Result<u64> {
        self.shards.iter().try_fold(0, |acc, s| Ok(acc + f(s)?))
    }

    /// See [`Store::get`].
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.shard_for(key).get(key)
    }

    /// See [`Store::get_with`].
    pub fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.shard_for(key).get_with(key, f)
    }

    /// See [`Store::set`].
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.shard_for_write(key)?.set(key, value)
    }

    /// See [`Store::add`].
    pub fn add(&self, key: &str, value: impl AsRef<[u8]>) -> Result<bool> {
        self.shard_for_write(key)?.add(key, value)
    }

    /// See [`Store::delete`].
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.shard_for_write(key)?.delete(key)
    }

    /// See [`Store::pop`].
    pub fn pop(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.shard_for_write(key)?.pop(key)
    }

    /// See [`Store::contains`].
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.shard_for(key).contains(key)
    }

    /// See [`Store::entry_info`].
    pub fn entry_info(&self, key: &str) -> Result<Option<crate::EntryInfo>> {
        self.shard_for(key).entry_info(key)
    }

    /// See [`Store::incr`].
    pub fn incr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.shard_for_write(key)?.incr(key, delta, default)
    }

    /// See [`Store::decr`].
    pub fn decr(&self, key: &str, delta: i64, default: i64) -> Result<i64> {
        self.shard_for_write(key)?.decr(key, delta, default)
    }

    /// See [`Store::get_counter`].
    pub fn get_counter(&self, key: &str) -> Result<Option<i64>> {
        self.shard_for(key).get_counter(key)
    }

    /// See [`Store::set_value`].
    pub fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.shard_for_write(key)?.set_value(key, value)
    }

    /// See [`Store::get_value`].
    pub fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.shard_for(key).get_value(key)
    }

    /// Runs `f` in a transaction on the shard of `key`. Every key used inside must route
    /// to that shard; another key fails with [`Error::WrongShard`] (and, returned from
    /// `f`, rolls the transaction back). Use keys with a common routing, e.g. one key per
    /// transaction, or check with [`shard_of`].
    pub fn transact<T, E: From<Error>>(
        &self,
        key: &str,
        f: impl FnOnce(&Store<P>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.shard_for_write(key)?.transact(f)
    }

    /// Begins a transaction on the shard of `key`; see [`Store::begin`] and
    /// [`transact`](Self::transact) for what it may touch.
    pub fn begin(&self, key: &str) -> Result<Transaction<'_>> {
        self.shard_for_write(key)?.begin()
    }

    /// See [`Store::get_entry`].
    pub fn get_entry(&self, key: &str) -> Result<Option<(Vec<u8>, crate::EntryInfo)>> {
        self.shard_for(key).get_entry(key)
    }

    /// See [`Store::pop_entry`].
    pub fn pop_entry(&self, key: &str) -> Result<Option<(Vec<u8>, crate::EntryInfo)>> {
        self.shard_for_write(key)?.pop_entry(key)
    }

    /// Metadata of the fanout (kept in its first shard); see [`Store::metadata`].
    pub fn metadata(&self, name: &str) -> Result<Option<String>> {
        self.shards[0].metadata(name)
    }

    /// Sets metadata of the fanout; see [`Store::set_metadata`].
    pub fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.shards[0].set_metadata(name, value)
    }

    /// Opens the same fanout again (see [`Store::reopen`], e.g. after `fork`).
    pub fn reopen(&self) -> Result<Self> {
        Ok(Fanout {
            dir: self.dir.clone(),
            shards: self
                .shards
                .iter()
                .map(Store::reopen)
                .collect::<Result<_>>()?,
        })
    }

    /// Cross-process lock `name` (held in the shard of `name`); see [`Store::lock`].
    pub fn lock(&self, name: &str, expire: Duration) -> Result<Lock<'_, P>> {
        self.shard_for_write(name)?.lock(name, expire)
    }

    /// See [`Store::try_lock`].
    pub fn try_lock(&self, name: &str, expire: Duration) -> Result<Option<Lock<'_, P>>> {
        self.shard_for_write(name)?.try_lock(name, expire)
    }

    /// See [`Store::lock_timeout`].
    pub fn lock_timeout(
        &self,
        name: &str,
        expire: Duration,
        timeout: Duration,
    ) -> Result<Lock<'_, P>> {
        self.shard_for_write(name)?
            .lock_timeout(name, expire, timeout)
    }

    /// Live entries over all shards.
    pub fn len(&self) -> Result<u64> {
        self.sum(Store::len)
    }

    /// Whether no shard holds a live entry.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry of every shard; returns how many.
    pub fn clear(&self) -> Result<u64> {
        self.no_transaction("clear")?;
        self.sum(Store::clear)
    }

    /// Bytes of values over all shards.
    pub fn size(&self) -> Result<u64> {
        self.sum(Store::size)
    }

    /// Bytes on disk over all shards.
    pub fn volume(&self) -> Result<u64> {
        self.sum(Store::volume)
    }

    /// Checks every shard: counts add up, flags are and-ed.
    pub fn check(&self, fix: bool) -> Result<CheckReport> {
        let mut total = CheckReport::all_ok();
        for s in &self.shards {
            total.merge(&s.check(fix)?);
        }
        Ok(total)
    }

    /// Runs every shard's upkeep now; see [`Store::maintain`].
    pub fn maintain(&self) -> Result<()> {
        self.shards.iter().try_for_each(Store::maintain)
    }

    /// One page of live keys over all shards, in global byte order; see
    /// [`Store::keys_page`].
    pub fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for s in &self.shards {
            all.extend(s.keys_page(prefix, after, limit)?);
        }
        all.sort_unstable();
        all.truncate(limit);
        Ok(all)
    }

    /// Iterates over all live keys, in byte order.
    pub fn keys(&self) -> FanoutKeys<'_, P> {
        self.keys_with_prefix("")
    }

    /// Iterates over the live keys starting with `prefix`, in byte order.
    pub fn keys_with_prefix(&self, prefix: &str) -> FanoutKeys<'_, P> {
        FanoutKeys {
            iters: self
                .shards
                .iter()
                .map(|s| s.keys_with_prefix(prefix))
                .collect(),
            heads: vec![None; self.shards.len()],
            started: false,
            pending_err: None,
        }
    }
}

impl Fanout<CacheKind> {
    /// See [`Store::set_with`].
    pub fn set_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<()> {
        self.shard_for_write(key)?.set_with(key, value, opts)
    }

    /// See [`Store::add_with`].
    pub fn add_with(&self, key: &str, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<bool> {
        self.shard_for_write(key)?.add_with(key, value, opts)
    }

    /// See [`Store::set_value_with`].
    pub fn set_value_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        opts: &SetOptions,
    ) -> Result<()> {
        self.shard_for_write(key)?.set_value_with(key, value, opts)
    }

    /// See [`Store::touch`].
    pub fn touch(&self, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.shard_for_write(key)?.touch(key, expire)
    }

    /// Purges expired entries of every shard; returns how many.
    pub fn expire(&self) -> Result<u64> {
        self.no_transaction("expire")?;
        self.sum(Store::expire)
    }

    /// Removes entries tagged `tag` from every shard; returns how many.
    pub fn evict_tag(&self, tag: &str) -> Result<u64> {
        self.no_transaction("evict_tag")?;
        self.sum(|s| s.evict_tag(tag))
    }

    /// The bound on bytes of values of the whole fanout (0: unbounded).
    pub fn max_size(&self) -> u64 {
        self.shards.iter().map(Store::max_size).sum()
    }

    /// Changes the bound of the whole fanout (each shard gets an equal part); see
    /// [`Store::set_max_size`].
    pub fn set_max_size(&self, bytes: u64) -> Result<()> {
        let part = bytes.div_ceil(u64::from(self.shard_count()));
        self.shards.iter().try_for_each(|s| s.set_max_size(part))
    }

    /// Evicts in every shard over its part of the bound; returns how many.
    pub fn evict(&self) -> Result<u64> {
        self.sum(Store::evict)
    }

    /// Hits and misses summed over the shards.
    pub fn stats(&self) -> Stats {
        self.shards.iter().fold(Stats::default(), |acc, s| {
            let st = s.stats();
            Stats {
                hits: acc.hits + st.hits,
                misses: acc.misses + st.misses,
            }
        })
    }

    /// Resets every shard's statistics.
    pub fn reset_stats(&self) {
        self.shards.iter().for_each(Store::reset_stats);
    }

    /// See [`Store::get_or_set_with`].
    pub fn get_or_set_with<E: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        self.shard_for_write(key)?
            .get_or_set_with(key, opts, compute)
    }

    /// See [`Store::get_or_set_value_with`].
    pub fn get_or_set_value_with<T: Serialize + DeserializeOwned, E: From<Error>>(
        &self,
        key: &str,
        opts: &SetOptions,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.shard_for_write(key)?
            .get_or_set_value_with(key, opts, compute)
    }
}

/// Keys of all shards merged in byte order. Items are `Result<String>`.
pub struct FanoutKeys<'a, P: Policy> {
    iters: Vec<crate::Keys<'a, P>>,
    /// The next key of each shard; `None` once that shard is exhausted.
    heads: Vec<Option<String>>,
    started: bool,
    pending_err: Option<Error>,
}

impl<P: Policy> FanoutKeys<'_, P> {
    fn refill(&mut self, i: usize) {
        self.heads[i] = match self.iters[i].next() {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                self.pending_err = Some(e);
                None
            }
            None => None,
        };
    }
}

impl<P: Policy> Iterator for FanoutKeys<'_, P> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.iters.len() {
                self.refill(i);
            }
        }
        if let Some(e) = self.pending_err.take() {
            return Some(Err(e));
        }
        let best = (0..self.heads.len())
            .filter(|&i| self.heads[i].is_some())
            .min_by(|&a, &b| self.heads[a].cmp(&self.heads[b]))?;
        let key = self.heads[best].take();
        self.refill(best);
        key.map(Ok)
    }
}
