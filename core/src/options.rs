//! Per-write options and store configuration.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Result;
use crate::clock::{Clock, SystemClock};
use crate::policy::Policy;
use crate::store::Store;

/// Options of one write: expiry and tag (Cache only).
///
/// ```
/// use sciqlop_cache::SetOptions;
/// use std::time::Duration;
/// let opts = SetOptions::new().expire(Duration::from_secs(3600)).tag("session");
/// assert_eq!(opts.tag_name(), Some("session"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    pub(crate) expire: Option<Expiry>,
    pub(crate) tag: Option<String>,
}

/// When an entry expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This long after the write.
    After(Duration),
    /// At this wall-clock time (a time in the past expires the entry at once).
    At(SystemTime),
}

impl Expiry {
    /// Absolute expiry in Unix microseconds, for a write at `now` (Unix microseconds).
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) fn at_micros(self, now: i64) -> crate::Result<i64> {
        let too_far =
            || crate::Error::InvalidArgument(format!("expiry {self:?} is too far in the future"));
        match self {
            Expiry::After(d) => now.checked_add(crate::clock::micros(d)).ok_or_else(too_far),
            Expiry::At(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_micros()).map_err(|_| too_far()),
                // Before 1970: long expired.
                Err(_) => Ok(i64::MIN),
            },
        }
    }
}

impl SetOptions {
    /// No expiry, no tag.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry expires `after` this long from the write (sub-second precision is kept;
    /// a zero duration makes the entry expire at once).
    #[must_use]
    pub fn expire(mut self, after: Duration) -> Self {
        self.expire = Some(Expiry::After(after));
        self
    }

    /// The entry expires at wall-clock time `at` (e.g. to carry over an expiry read from
    /// elsewhere); a time already past expires it at once.
    #[must_use]
    pub fn expire_at(mut self, at: SystemTime) -> Self {
        self.expire = Some(Expiry::At(at));
        self
    }

    /// Tags the entry, for bulk removal with `evict_tag`.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The options that keep an entry's expiry (as a wall-clock time) and tag when it is
    /// written again, e.g. a counter rewritten by a compare-and-swap or a transaction.
    pub fn keeping(info: &EntryInfo) -> Self {
        SetOptions {
            expire: info.expire.map(Expiry::At),
            tag: info.tag.clone(),
        }
    }

    /// The expiry set, if any.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expire
    }

    /// The tag set, if any.
    pub fn tag_name(&self) -> Option<&str> {
        self.tag.as_deref()
    }
}

/// Default size from which values are stored in their own file instead of inline.
///
/// 8 KiB, as the original sciqlop-cache. The threshold trades reads for writes. A value
/// file costs a create, a rename and later an unlink: on the benchmark machine a 16 KiB
/// set took 177 µs in a file against 31 µs inline (raw SQLite), and a 12 KiB set 1.1 ms
/// against 110 µs while its file system was slow after a large deletion. Reading the
/// same 12 KiB values back was 1.35 times slower inline (SQLite walks a chain of overflow
/// pages). Raise it with [`Builder::file_threshold`] for write-heavy stores of values of
/// a few tens of KiB.
pub const DEFAULT_FILE_THRESHOLD: usize = 8 * 1024;
/// Default longest key, in bytes.
pub const DEFAULT_MAX_KEY_LEN: usize = 4096;
/// Default largest value, in bytes.
pub const DEFAULT_MAX_VALUE_SIZE: u64 = 1 << 32;
/// Default longest wait for a lock held by another connection (ten minutes, as the
/// original sciqlop-cache), see [`Builder::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest value SQLite can hold inline; the file threshold is capped below it.
pub const MAX_INLINE: usize = 512 * 1024 * 1024;

/// Store configuration, built with [`Builder`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) max_size: u64,
    pub(crate) file_threshold: usize,
    pub(crate) max_key_len: usize,
    pub(crate) max_value_size: u64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) maintenance_interval: Duration,
    pub(crate) sync_files: bool,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) verify_values: bool,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) busy_timeout: Duration,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) evict_to: f64,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) vfs: Option<String>,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) read_only: bool,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) on_wait: Option<WaitNotice>,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) group_commit: bool,
    #[cfg_attr(feature = "guest", allow(dead_code))]
    pub(crate) fair_writers: bool,
}

/// The callback of [`Builder::on_wait`].
#[derive(Clone)]
#[cfg_attr(feature = "guest", allow(dead_code))]
pub(crate) struct WaitNotice(pub(crate) Arc<WaitFn>);

/// What [`Builder::on_wait`] calls: the database and the timeout.
type WaitFn = dyn Fn(&std::path::Path, Duration) + Send + Sync;

impl std::fmt::Debug for WaitNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitNotice")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_size: 0,
            file_threshold: DEFAULT_FILE_THRESHOLD,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            clock: Arc::new(SystemClock),
            maintenance_interval: Duration::from_secs(1),
            sync_files: false,
            verify_values: true,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            evict_to: 0.9,
            vfs: None,
            read_only: false,
            on_wait: None,
            group_commit: true,
            fair_writers: true,
        }
    }
}

impl Config {
    /// The bound on bytes of values (0: none), see [`Builder::max_size`].
    pub fn max_size(&self) -> u64 {
        self.max_size
    }
    /// The longest key, see [`Builder::max_key_len`].
    pub fn max_key_len(&self) -> usize {
        self.max_key_len
    }
    /// The largest value, see [`Builder::max_value_size`].
    pub fn max_value_size(&self) -> u64 {
        self.max_value_size
    }
    /// Whether the store is opened read-only, see [`Builder::read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// The longest wait for a busy store, see [`Builder::busy_timeout`].
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }
}

/// Builder of a [`Store`] (`Cache::builder()` / `Index::builder()`).
///
/// ```
/// use sciqlop_cache::Cache;
/// let dir = tempfile::tempdir()?;
/// let cache = Cache::builder().max_size(1 << 30).file_threshold(64 * 1024).open(dir.path())?;
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder<P> {
    pub(crate) config: Config,
    _kind: PhantomData<P>,
}

impl<P: Policy> Default for Builder<P> {
    fn default() -> Self {
        Builder {
            config: Config::default(),
            _kind: PhantomData,
        }
    }
}

impl<P: Policy> Builder<P> {
    /// Bounds the bytes of stored values; least-recently-used entries are evicted in the
    /// background when it is exceeded (down to 90 % of the bound). `0` means unbounded.
    /// Ignored by `Index`.
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.config.max_size = bytes;
        self
    }

    /// Values of at least this many bytes are stored in their own file (default 8 KiB,
    /// [`DEFAULT_FILE_THRESHOLD`]).
    #[must_use]
    pub fn file_threshold(mut self, bytes: usize) -> Self {
        self.config.file_threshold = bytes.min(MAX_INLINE);
        self
    }

    /// Longest accepted key in bytes (default 4096).
    #[must_use]
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.config.max_key_len = bytes;
        self
    }

    /// Largest accepted value in bytes (default 4 GiB).
    #[must_use]
    pub fn max_value_size(mut self, bytes: u64) -> Self {
        self.config.max_value_size = bytes;
        self
    }

    /// Replaces the wall clock (for tests: see [`ManualClock`](crate::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }

    /// How often the background thread flushes recency updates, purges expired entries
    /// and evicts (default 1 s); it also checkpoints the WAL 50 ms after writes pause.
    /// `Duration::ZERO` disables the thread: call [`Store::maintain`] yourself, or rely
    /// on the inline fallback that runs when a write notices the size bound is exceeded.
    #[must_use]
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.config.maintenance_interval = every;
        self
    }

    /// Calls `fsync` on each value file before its row commits (default off). Off, the
    /// store is safe against process crashes; on, also against power loss, at the cost
    /// of a disk flush per file-backed write.
    #[must_use]
    pub fn sync_files(mut self, on: bool) -> Self {
        self.config.sync_files = on;
        self
    }

    /// Checks each file-backed value read against the xxh3-64 checksum recorded in its
    /// file name when it was written (default on): a file whose bytes were changed
    /// behind the store's back is [`Error::ValueFileCorrupt`], never returned. Costs one
    /// pass over the bytes read (see the README's figures); `check` verifies every file
    /// either way. Values inline in the database are not covered (SQLite's pages are).
    ///
    /// [`Error::ValueFileCorrupt`]: crate::Error::ValueFileCorrupt
    #[must_use]
    pub fn verify_values(mut self, on: bool) -> Self {
        self.config.verify_values = on;
        self
    }

    /// Longest time an operation waits for a lock that another thread or process holds
    /// (a write transaction, a checkpoint) before failing with [`Error::Busy`]
    /// (default [`DEFAULT_BUSY_TIMEOUT`], ten minutes). Waiting uses short sleeps, so a
    /// released lock is taken within about a millisecond.
    ///
    /// [`Error::Busy`]: crate::Error::Busy
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.config.busy_timeout = timeout;
        self
    }

    /// Opens an existing store for reading only (default off): every write fails with
    /// [`Error::ReadOnly`], nothing is written on open, and no background thread runs.
    /// A store this process cannot write (a read-only mount, another account's cache)
    /// opens this way without asking; a missing store is not created.
    ///
    /// ```
    /// use sciqlop_cache::{Cache, Error};
    /// let dir = tempfile::tempdir()?;
    /// Cache::open(dir.path())?.set("k", b"v")?;
    /// let ro = Cache::builder().read_only(true).open(dir.path())?;
    /// assert_eq!(ro.get("k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(matches!(ro.set("k", b"w"), Err(Error::ReadOnly { .. })));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// [`Error::ReadOnly`]: crate::Error::ReadOnly
    #[must_use]
    pub fn read_only(mut self, on: bool) -> Self {
        self.config.read_only = on;
        self
    }

    /// Group commit (default on): autocommit writes that several threads of this process
    /// make at the same time on one store are applied in one SQLite transaction, each in
    /// its own savepoint (a write that fails, such as an `add` that finds its key or an
    /// `incr` of a value that is not a counter, fails alone), and each caller returns
    /// only once the commit holding its write is done. A writer alone never waits for
    /// company: it commits as before. Off, every autocommit write is its own commit
    /// (for comparisons; there is no other reason to turn it off).
    #[must_use]
    pub fn group_commit(mut self, on: bool) -> Self {
        self.config.group_commit = on;
        self
    }

    /// Fair writers across processes (default on, Linux with glibc): processes writing
    /// to one store queue for the write lock in the kernel, in arrival order, through a
    /// shared mutex in the store's `.sciqlop-cache.writers` file, instead of each
    /// retrying SQLite's lock from its busy handler (where a writer can lose the race
    /// many times in a row). The wait is still bounded by [`busy_timeout`](Self::busy_timeout);
    /// a holder killed mid-write hands the lock on. Writers that do not use it (other
    /// programs, handles opened with it off) still meet SQLite's own lock. Off, writers
    /// only use SQLite's lock (for comparisons).
    #[must_use]
    pub fn fair_writers(mut self, on: bool) -> Self {
        self.config.fair_writers = on;
        self
    }

    /// Calls `notice(database, timeout)` once when an operation has waited a second for
    /// a lock that another process holds (its write transaction, a checkpoint): a
    /// command-line tool says it is waiting, and for how long it will. Reads never
    /// wait for writers; writes, `check` and the first open after a crash can.
    #[must_use]
    pub fn on_wait(
        mut self,
        notice: impl Fn(&std::path::Path, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.config.on_wait = Some(WaitNotice(Arc::new(notice)));
        self
    }

    /// Opens the database through the SQLite VFS registered as `name` instead of the
    /// default one (e.g. `"opfs-sahpool"` for persistent storage in a browser worker,
    /// once installed with sqlite-wasm-rs).
    #[must_use]
    pub fn vfs(mut self, name: impl Into<String>) -> Self {
        self.config.vfs = Some(name.into());
        self
    }

    /// Opens (creating if needed) the store in directory `path`, on the SQLite engine.
    ///
    /// # Errors
    ///
    /// Those of [`SqliteEngine::open`](crate::SqliteEngine::open) with this builder's
    /// kind (none for an [`AnyStore`](crate::AnyStore), which opens only an existing
    /// store):
    ///
    /// - [`Error::NotADirectory`](crate::Error::NotADirectory): `path` exists and is not
    ///   a directory.
    /// - [`Error::WrongKind`](crate::Error::WrongKind): the directory holds a store of
    ///   another kind, or a fanout.
    /// - [`Error::NotACache`](crate::Error::NotACache): the directory holds another
    ///   program's database or files, or (read-only, or an `AnyStore`) no store.
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store would have to be created
    ///   (or its format upgraded) where this process cannot write.
    /// - [`Error::Busy`](crate::Error::Busy): another process held the database locked
    ///   for longer than the busy timeout.
    /// - [`Error::Io`](crate::Error::Io): the directory cannot be created or looked into.
    /// - [`Error::Corrupt`](crate::Error::Corrupt),
    ///   [`Error::Engine`](crate::Error::Engine): SQLite cannot read the database.
    #[cfg(feature = "sqlite")]
    pub fn open(
        self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Store<P, crate::engine::sqlite::SqliteEngine>> {
        let engine =
            crate::engine::sqlite::SqliteEngine::open(path.as_ref(), self.config.clone(), P::KIND)?;
        Store::from_engine(std::sync::Arc::new(engine), &self.config)
    }

    /// Opens the store at `location`, choosing its engine at run time: a directory
    /// (holding a store or a fanout, detected from disk; a missing one becomes a new
    /// store) or a URL of a registered engine (see
    /// [`registry`](crate::engine::registry)).
    ///
    /// ```
    /// use sciqlop_cache::{AnyStore, Cache};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("c");
    /// Cache::open(&path)?.set("k", b"v")?;
    /// let any = AnyStore::builder().open_location(path.to_str().expect("utf-8"))?;
    /// assert_eq!(any.kind().name, "cache");
    /// assert_eq!(any.get("k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`registry::open_location`](crate::engine::registry::open_location): for
    /// a directory those of [`open`](Self::open) (a fanout's shards' too), for a URL
    /// those of its engine, and
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a URL scheme no
    /// engine registered. Also:
    ///
    /// - [`Error::WrongKind`](crate::Error::WrongKind): the engine holds a store of
    ///   another kind than this builder's.
    pub fn open_location(self, location: &str) -> Result<Store<P, dyn crate::Engine>> {
        let engine = crate::engine::registry::open_location(location, &self.config, P::KIND)?;
        Store::from_engine(engine, &self.config)
    }

    /// The settings built so far (to open an engine directly).
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// What is known of one live entry, without reading its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// Length of the value in bytes.
    pub size: u64,
    /// When it expires, if ever.
    pub expire: Option<SystemTime>,
    /// Its tag, if any.
    pub tag: Option<String>,
    /// Whether the value lives in its own file (else inline in the database).
    pub in_file: bool,
}

impl EntryInfo {
    /// The metadata of an entry (for engines outside this crate; the struct is
    /// non-exhaustive).
    pub fn new(size: u64, expire: Option<SystemTime>, tag: Option<String>, in_file: bool) -> Self {
        EntryInfo {
            size,
            expire,
            tag,
            in_file,
        }
    }

    /// Nothing known (for engines that cannot say).
    pub(crate) fn empty() -> Self {
        EntryInfo {
            size: 0,
            expire: None,
            tag: None,
            in_file: false,
        }
    }
}

/// Hit and miss counts of this instance since it was opened or last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
}

/// What [`Store::check`] found (and, with `fix`, repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Nothing wrong was found (after fixing, when `fix` was asked: the state is ok now).
    pub ok: bool,
    /// Value files without a row (left by a crash or an interrupted write).
    pub orphaned_files: u64,
    /// Rows whose value file is missing or has the wrong size.
    pub dangling_rows: u64,
    /// Inline rows whose recorded size differs from the value's length.
    pub size_mismatches: u64,
    /// The maintained count/size totals matched the rows.
    pub counters_consistent: bool,
    /// SQLite's own `quick_check` passed.
    pub sqlite_integrity_ok: bool,
    /// Repairs were made.
    pub fixed: bool,
    /// Tables in the database that are not this project's (another program, such as
    /// the original sciqlop-cache, whose database file has the same name, wrote to
    /// it). Reported, never removed: they make `ok` false.
    pub foreign_tables: Vec<String>,
    /// Of the `dangling_rows`, those whose file is there but damaged (truncated,
    /// extended or changed); the others' files are missing.
    pub damaged_files: u64,
    /// What SQLite's check reported about a damaged database (its first lines), and
    /// where reading the rows failed. Not empty means the database itself is damaged:
    /// nothing is repaired then; [`salvage`](crate::salvage) copies what is readable
    /// into a new store.
    pub sqlite_errors: Vec<String>,
    /// The keys removed by `fix` (rows whose value file was lost), as `key` or
    /// `namespace/key`.
    pub removed_keys: Vec<String>,
}

impl CheckReport {
    /// The report of nothing checked yet: ok, to [`merge`](Self::merge) parts into.
    pub fn all_ok() -> Self {
        CheckReport {
            ok: true,
            counters_consistent: true,
            sqlite_integrity_ok: true,
            ..CheckReport::default()
        }
    }

    /// Adds the report of another part (e.g. a shard): counts add up, flags are and-ed.
    pub fn merge(&mut self, other: &CheckReport) {
        self.ok &= other.ok;
        self.counters_consistent &= other.counters_consistent;
        self.sqlite_integrity_ok &= other.sqlite_integrity_ok;
        self.fixed |= other.fixed;
        self.orphaned_files += other.orphaned_files;
        self.dangling_rows += other.dangling_rows;
        self.size_mismatches += other.size_mismatches;
        self.damaged_files += other.damaged_files;
        self.sqlite_errors
            .extend(other.sqlite_errors.iter().cloned());
        self.removed_keys.extend(other.removed_keys.iter().cloned());
        self.foreign_tables
            .extend(other.foreign_tables.iter().cloned());
    }
}
