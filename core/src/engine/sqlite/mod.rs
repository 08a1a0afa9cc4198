//! The SQLite + files engine.
//!
//! One concern per module:
//!
//! | module | concern |
//! | --- | --- |
//! | `mod.rs` | the engine type, its shared state, opening a store, the `Engine` impl |
//! | `connection` | opening connections, pragmas, busy wait, WAL hook and checkpoints |
//! | `errors` | SQLite errors as typed errors |
//! | `schema` | tables, triggers, statements; creating and upgrading a database |
//! | `pool` | the reader connections: how a read finds its connection |
//! | `writer` | the writer connection: write routing, the transaction state machine |
//! | `read` | the read path (values, metadata, keys, totals) |
//! | `write` | the write path (set, add, delete, incr, CAS, optimistic commits, locks) |
//! | `upkeep` | recency, expiry purge, eviction, freeing space on a full disk |
//! | `maintenance` | the background thread that runs the upkeep and watches the WAL |
//! | `check` | the integrity check and its repairs |
//! | `files` | the file tier (value files, temporary files, the reserve) |
//! | `turnstile` | the writers' queue across processes (a shared robust mutex) |
//! | `pin` | the read pin (reads skip their lock system calls while writes pause) |
//! | `readonly` | stores this process cannot write: why, and reading one at rest |
//! | `salvage` | copying what is readable out of a damaged database |
//!
//! Concurrency design:
//! - one writer connection behind a re-entrant mutex (writes in a process are serialised
//!   anyway by SQLite; the mutex turns waiting into a cheap in-process handoff and lets a
//!   thread's operations inside `transact` join its transaction);
//! - a small pool of reader connections: in WAL mode readers never wait for the writer
//!   nor for each other;
//! - reads do not write: LRU recency is buffered in memory and flushed in batches by the
//!   maintenance thread, which also purges expired entries, evicts down to the size
//!   bound and checkpoints the WAL once writes pause;
//! - while the process reads and writes have paused, the read pin spares every read its
//!   two lock system calls.

mod check;
mod connection;
mod errors;
mod files;
mod group;
mod maintenance;
mod pin;
mod pool;
mod read;
mod readonly;
pub mod salvage;
mod schema;
mod turnstile;
mod upkeep;
mod write;
mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex, RwLock};
use rusqlite::{Connection, OpenFlags};

use crate::engine::{
    Capabilities, Engine, EngineTx, Namespace, ReadCheck, Reopen, Version, WriteOp,
};
use crate::options::{CheckReport, Config, EntryInfo, SetOptions, Stats};
use crate::platform::PLATFORM;
use crate::policy::Kind;
use crate::{Error, Result};

use errors::SqlErr;
use files::FileTier;
use maintenance::{Maintenance, Signal};
use pin::ReadPin;
use readonly::ReadOnlyState;
use writer::Writer;

/// Number of reader connections kept per store.
const READERS: usize = 8;
/// Rows deleted per write transaction by background purges and evictions, so that
/// foreground writers never wait long.
const BATCH: i64 = 256;
/// Recency updates buffered before the maintenance thread is woken to flush them.
const RECENCY_FLUSH_AT: usize = 4096;

/// The SQLite + files engine: one store directory (`sciqlop-cache.db` and `data/`).
///
/// Open it through [`Builder::open`](crate::Builder::open) (which gives a
/// [`Store`](crate::Store) over it) or [`SqliteEngine::open`] to use it as a bare
/// [`Engine`].
pub struct SqliteEngine {
    shared: Arc<Shared>,
    maintenance: Option<Maintenance>,
    /// The process that opened the store: a child made by `fork` must not close the
    /// connections or join the thread it inherited (see `Drop`).
    pid: u32,
}

impl std::fmt::Debug for SqliteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEngine")
            .field("path", &self.shared.dir)
            .field("kind", &self.shared.kind.name)
            .finish_non_exhaustive()
    }
}

/// A pooled reader connection and the generation of `Shared::read_only` it was opened
/// in.
type PooledReader = (Connection, u64);

/// State shared with the maintenance thread.
pub(crate) struct Shared {
    db_path: PathBuf,
    dir: PathBuf,
    config: Config,
    kind: Kind,
    lru: bool,
    expiry: bool,
    stats: bool,
    files: FileTier,
    writer: ReentrantMutex<RefCell<Writer>>,
    /// The writers' queue across processes, where there is one (see `turnstile`).
    turnstile: Option<turnstile::Turnstile>,
    /// Token of the thread inside a transaction, 0 when none.
    tx_owner: AtomicU64,
    /// Group commit: the leader and the writes queued for its round.
    combiner: group::Combiner,
    /// Pooled reader connections, each with the generation of `read_only` it was opened
    /// in (always 0 for a writable store).
    readers: Box<[Mutex<Option<PooledReader>>]>,
    /// Set when the store is open read-only: why, and how its connections open.
    read_only: Option<ReadOnlyState>,
    /// Namespace ids by name, as far as this handle has seen them.
    namespaces: RwLock<HashMap<String, u64>>,
    /// Buffered LRU recency: (namespace, key) → time of its last read.
    recency: Mutex<HashMap<(u64, String), i64>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Wakes the maintenance thread (shared with the writer's WAL hook).
    signal: Arc<Signal>,
    /// A maintenance thread runs (else the writer restarts an oversized WAL itself).
    threaded: AtomicBool,
    /// A write failed because the disk is full: the maintenance thread frees space.
    disk_full: AtomicBool,
    /// Commits made through this instance (the maintenance thread checkpoints once
    /// they stop for a moment).
    commits: AtomicU64,
    /// Held while writes have paused and reads happen: they then skip their lock
    /// system calls.
    pin: Arc<ReadPin>,
    /// A pooled read ran since the maintenance thread last looked.
    reading: AtomicBool,
    /// Bytes of values as last read from the totals plus what this process wrote since;
    /// an over-estimate used to decide when to evict without reading the totals.
    approx_size: AtomicI64,
    /// The bound on bytes of values (0: none); `config.max_size` at open, changed by
    /// `set_max_size`.
    max_size: AtomicU64,
}

/// A token per thread (0 is never one).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TOKEN.with(|t| *t)
}

/// A fresh version stamp: random, never 0 (0 stands for "written before versions
/// existed"). 47 bits: SQLite stores it in 6 bytes (a 63-bit stamp took 8, and the 2
/// bytes per row showed in reads: +1 % instructions per get). A compare-and-swap can only
/// succeed wrongly if a write that raced it drew the very stamp it expected: 1 in 2^47.
#[inline]
fn new_version() -> i64 {
    ((fastrand::u64(..) >> 17) | 1) as i64
}

impl Shared {
    fn err(&self) -> SqlErr<'_> {
        SqlErr::new(&self.db_path, self.config.busy_timeout)
    }

    /// The `on_wait` callback, for a connection's busy handler.
    fn notice(&self) -> Option<(crate::options::WaitNotice, PathBuf)> {
        self.config
            .on_wait
            .clone()
            .map(|n| (n, self.db_path.clone()))
    }

    fn sql_err(&self, e: rusqlite::Error) -> Error {
        self.err().map(e)
    }

    fn now(&self) -> i64 {
        self.config.clock.now_micros()
    }

    fn max_size(&self) -> u64 {
        self.max_size.load(Ordering::Relaxed)
    }

    fn expiry_of(&self, opts: &SetOptions, now: i64) -> Result<Option<i64>> {
        if !self.expiry {
            return Ok(None);
        }
        opts.expire.map(|e| e.at_micros(now)).transpose()
    }

    fn tag_of<'a>(&self, opts: &'a SetOptions) -> Option<&'a str> {
        opts.tag.as_deref().filter(|_| self.kind.tags)
    }

    fn live(&self, expire: Option<i64>, now: i64) -> bool {
        !self.expiry || expire.is_none_or(|e| e > now)
    }

    /// A stored expiry as a wall-clock time.
    fn expiry_time(&self, expire: Option<i64>) -> Option<std::time::SystemTime> {
        expire
            .filter(|_| self.expiry)
            .map(|e| std::time::UNIX_EPOCH + Duration::from_micros(e.max(0) as u64))
    }

    /// Whether this thread has a transaction open.
    fn in_tx_here(&self) -> bool {
        self.tx_owner.load(Ordering::Acquire) == thread_token()
    }

    /// Commits made through this instance so far.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl SqliteEngine {
    /// Opens (creating it with `kind` if needed) the store in directory `dir`; `None`
    /// opens an existing store of whatever kind it is.
    ///
    /// Nothing is created or changed on disk before the directory is known to hold
    /// one of our stores (or nothing at all): a directory of another program is
    /// refused untouched.
    ///
    /// # Errors
    ///
    /// - [`Error::NotADirectory`]: `dir` exists and is not a directory.
    /// - [`Error::WrongKind`]: the store is of another kind than `kind`, or `dir` holds
    ///   a fanout.
    /// - [`Error::NotACache`]: `dir` holds another program's database or files (a store
    ///   is made only in a new or empty directory), its `data/` is not a directory, or
    ///   no store is there and `kind` is `None` or the config is read-only.
    /// - [`Error::ReadOnly`]: the store would have to be created, switched to WAL mode
    ///   or upgraded from an older format where this process cannot write.
    /// - [`Error::Busy`]: another process held the database locked (creating or
    ///   upgrading it, switching it to WAL mode) for longer than the busy timeout.
    /// - [`Error::Io`]: `dir` or its value directories cannot be created or looked into.
    /// - [`Error::Corrupt`], [`Error::Engine`]: SQLite cannot read the database.
    pub fn open(dir: &Path, config: Config, kind: Option<Kind>) -> Result<Self> {
        let mut config = config;
        if !PLATFORM.files {
            // Every value is a blob in the database.
            config.file_threshold = usize::MAX;
        }
        let db_path = dir.join(schema::DB_FILE);
        let err = SqlErr::new(&db_path, config.busy_timeout);
        if PLATFORM.files {
            match std::fs::metadata(dir) {
                Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(dir.to_owned())),
                Ok(_) if crate::fanout::looks_like_fanout(dir) => {
                    return Err(Error::WrongKind {
                        path: dir.to_owned(),
                        expected: kind.map_or("store", |k| k.name),
                        found: "fanout".into(),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(Error::io(
                        format!(
                            "cannot look into {} (a directory on the way is not searchable by this user)",
                            dir.display()
                        ),
                        e,
                    ));
                }
                Err(_) if kind.is_none() || config.read_only => {
                    return Err(Error::NotACache {
                        path: dir.to_owned(),
                        reason: "no store is there".into(),
                    });
                }
                Err(_) => create_dir(dir)?,
            }
            if db_path.exists() {
                // Looked at without touching it (no lock, no WAL or shared-memory file
                // made): a foreign database is refused as it is.
                pre_inspect(&db_path, &err)?;
            } else if let Some(reason) = crate::engine::foreign::foreign_store(dir) {
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason,
                });
            } else if let Some(found) = crate::engine::foreign::unrelated_entry(dir) {
                // A store is made in a new or empty directory only: not among someone
                // else's files.
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason: format!(
                        "it is not empty ({found}) and holds no store: open a new or empty directory"
                    ),
                });
            } else if kind.is_none() || config.read_only {
                return Err(Error::NotACache {
                    path: dir.to_owned(),
                    reason: "no store is there".into(),
                });
            }
        }
        let signal = Arc::new(Signal::default());
        let pin = Arc::new(ReadPin::default());
        // Only an existing store can be read-only (a read-only open of a missing one
        // was refused above); without files, only on request.
        let existing = if PLATFORM.files {
            db_path.exists()
        } else {
            config.read_only
        };
        let mut read_only = existing
            .then(|| ReadOnlyState::detect(dir, &db_path, &config))
            .flatten();
        let mut conn = match read_only.as_mut() {
            Some(ro) => ro.open_first(&db_path, &config)?,
            None => connection::open(
                &db_path,
                &config,
                connection::Access::Write {
                    create: kind.is_some(),
                },
            )?,
        };
        let hook = read_only.is_none().then(|| (signal.clone(), pin.clone()));
        connection::configure(
            &mut conn,
            config.busy_timeout,
            config.on_wait.clone().map(|n| (n, db_path.clone())),
            hook,
        )
        .map_err(|e| err.map(e))?;
        let kind = open_schema(&conn, &config, kind, &err, read_only.as_ref())?;
        let files = FileTier::new(
            dir,
            config.sync_files,
            config.verify_values,
            read_only.is_some(),
        )
        .map_err(|e| match e {
            Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                Error::ReadOnly {
                    path: dir.to_owned(),
                    reason: source.to_string(),
                }
            }
            e => e,
        })?;
        let readers = (0..READERS).map(|_| Mutex::new(None)).collect();
        let turnstile =
            (read_only.is_none() && PLATFORM.threads && PLATFORM.files && config.fair_writers)
                .then(|| turnstile::Turnstile::open(dir))
                .flatten();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            db_path,
            kind,
            lru: kind.lru,
            expiry: kind.expiry,
            stats: kind.stats,
            files,
            writer: ReentrantMutex::new(RefCell::new(Writer::new(conn))),
            turnstile,
            tx_owner: AtomicU64::new(0),
            combiner: group::Combiner::default(),
            readers,
            read_only,
            namespaces: RwLock::new(HashMap::from([(String::new(), 0)])),
            recency: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            approx_size: AtomicI64::new(0),
            max_size: AtomicU64::new(config.max_size),
            signal,
            threaded: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            pin,
            reading: AtomicBool::new(false),
            config,
        });
        let initial = shared.read(|c| shared.totals(c, None))?.1;
        shared.approx_size.store(initial as i64, Ordering::Relaxed);
        let writable = shared.read_only.is_none();
        // Every kind has the thread (for checkpoints at least) where threads exist; a
        // read-only store has nothing for it to do.
        let threaded =
            writable && PLATFORM.threads && !shared.config.maintenance_interval.is_zero();
        if writable {
            // Files queued by a crashed process or another program's deletes: removed
            // now unless another process holds the write lock (opening never waits for
            // it); the maintenance thread then removes them.
            if !threaded || shared.write_lock_free()? {
                shared.drain_discarded()?;
            }
            if let Err(e) = shared.files.ensure_reserve() {
                // A full disk: made later by the maintenance thread.
                tracing::debug!(error = %e, "the reserve cannot be made yet");
            }
        }
        let maintenance = if threaded {
            shared.threaded.store(true, Ordering::Relaxed);
            Some(Maintenance::start(shared.clone())?)
        } else {
            None
        };
        let engine = SqliteEngine {
            shared,
            maintenance,
            pid: crate::platform::pid(),
        };
        let max = engine.shared.max_size();
        if initial > max && max > 0 && writable {
            engine.after_write(0);
        }
        Ok(engine)
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            Error::ReadOnly {
                path: dir.to_owned(),
                reason: e.to_string(),
            }
        }
        _ => Error::io(format!("creating cache directory {}", dir.display()), e),
    })
}

/// Refuses a database that is not one of ours without touching it: opened immutable
/// (read-only, no locks, no WAL or shared-memory file). Only conclusive evidence
/// refuses: a schema read in full that is not ours. What this view sees may lag behind
/// a WAL not yet copied back, or catch a database another process is creating right now
/// (a header half written): anything SQLite itself cannot read here is left to the real
/// open, which takes the locks.
fn pre_inspect(db_path: &Path, err: &SqlErr<'_>) -> Result<()> {
    let Some(p) = db_path.to_str() else {
        return Ok(());
    };
    let uri = format!("file:{}?immutable=1", uri_escape(p));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(&uri, flags) else {
        return Ok(());
    };
    let readable = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok();
    match schema::inspect(&conn, err) {
        Err(e @ Error::NotACache { .. }) if readable => Err(e),
        _ => Ok(()),
    }
}

/// `p` escaped for a `file:` URI (`?`, `#`, `%`).
pub(crate) fn uri_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            '?' | '#' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Switches the database to WAL mode, then checks, creates or upgrades its schema:
/// the write lock is taken only to create or upgrade. Returns the store's kind.
fn open_schema(
    conn: &Connection,
    config: &Config,
    want: Option<Kind>,
    err: &SqlErr<'_>,
    read_only: Option<&ReadOnlyState>,
) -> Result<Kind> {
    if PLATFORM.wal && read_only.is_none() {
        ensure_wal(conn, config, err)?;
    }
    let check_kind = |found: Kind| -> Result<Kind> {
        match want {
            Some(k) if k != found => Err(Error::WrongKind {
                path: err.path().parent().unwrap_or(err.path()).to_owned(),
                expected: k.name,
                found: found.name.to_owned(),
            }),
            _ => Ok(found),
        }
    };
    let kind = match (schema::inspect(conn, err)?, read_only) {
        (schema::Found::Current(k), _) => check_kind(k)?,
        (schema::Found::Upgrade(_), Some(ro)) => {
            return Err(Error::ReadOnly {
                path: err.path().to_owned(),
                reason: format!(
                    "the store is in an older format, upgraded when opened once with write access ({})",
                    ro.reason()
                ),
            });
        }
        (schema::Found::Empty, Some(_)) => {
            return Err(Error::NotACache {
                path: err.path().to_owned(),
                reason: "the database is empty".into(),
            });
        }
        _ => {
            // Create or upgrade, under the write lock; another process may have done it
            // meanwhile.
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| err.map(e))?;
            let result = (|| match schema::inspect(conn, err)? {
                schema::Found::Current(k) => check_kind(k),
                schema::Found::Upgrade(k) => {
                    let k = check_kind(k)?;
                    schema::upgrade_from_3(conn, err)?;
                    Ok(k)
                }
                schema::Found::Empty => {
                    let k = want.ok_or_else(|| Error::NotACache {
                        path: err.path().to_owned(),
                        reason: "the database is empty".into(),
                    })?;
                    schema::create(conn, k, err)?;
                    Ok(k)
                }
            })();
            match result {
                Ok(k) => {
                    conn.execute_batch("COMMIT").map_err(|e| err.map(e))?;
                    k
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
    };
    if kind.lru && config.max_size > 0 && read_only.is_none() {
        ensure_lru_index(conn, err)?;
    }
    Ok(kind)
}

/// Switches a database to WAL mode unless it is in it already (a read of the header).
fn ensure_wal(conn: &Connection, config: &Config, err: &SqlErr<'_>) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| err.map(e))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    // Switching a fresh database to WAL takes an exclusive lock without calling the
    // busy handler: when another process switched it first and holds its shared lock,
    // retry on the busy handler's schedule.
    let mut attempt = 0;
    let mut wait = connection::BusyWait::new(config.busy_timeout);
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(e) if errors::is_busy(&e) && wait.retry(attempt) => attempt += 1,
            other => break other.map_err(|e| err.map(e))?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::ReadOnly {
            path: err.path().to_owned(),
            reason: format!("cannot switch the database to WAL mode (mode is {mode})"),
        });
    }
    Ok(())
}

/// Creates the index that finds eviction victims, if it is missing (a write only then).
fn ensure_lru_index(conn: &Connection, err: &SqlErr<'_>) -> Result<()> {
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'entries_lru'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| err.map(e))?;
    if exists == 0 {
        conn.execute_batch(schema::CREATE_LRU_INDEX)
            .map_err(|e| err.map(e))?;
    }
    Ok(())
}

impl Engine for SqliteEngine {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "sqlite",
            value_files: PLATFORM.files,
            savepoints: true,
            transactions: true,
            multi_process: PLATFORM.wal,
            check: true,
            atomic_batches: true,
            namespaces: true,
            versions: true,
            entry_info: true,
            metadata: true,
        }
    }

    fn kind(&self) -> Kind {
        self.shared.kind
    }

    fn path(&self) -> &Path {
        &self.shared.dir
    }

    fn namespace(&self, name: &str) -> Result<Namespace> {
        self.shared.namespace(name)
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        self.shared.list_namespaces()
    }

    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        Ok(self
            .fetch(ns, key, false, |b, _| f(b.as_slice()))?
            .is_some())
    }

    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        // One copy for inline values, none for file-backed ones.
        self.fetch(ns, key, false, |b, _| b.into_vec())
    }

    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        Ok(self
            .fetch(ns, key, true, |b, meta| (b.into_vec(), meta))?
            .map(|(v, m)| (v, m.map(|m| m.info).unwrap_or_else(EntryInfo::empty))))
    }

    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        Ok(self
            .fetch(ns, key, true, |b, meta| (b.into_vec(), meta))?
            .map(|(v, m)| (v, m.map_or(Version(0), |m| m.version))))
    }

    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| Engine::get(self, ns, k)).collect()
    }

    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        self.shared.contains(ns, key)
    }

    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>> {
        self.shared.info(ns, key)
    }

    fn len(&self, ns: &Namespace) -> Result<u64> {
        self.shared.len(ns)
    }

    fn size(&self, ns: &Namespace) -> Result<u64> {
        let s = &*self.shared;
        s.read(|c| s.totals(c, Some(ns))).map(|t| t.1)
    }

    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.shared.keys_page(ns, prefix, after, limit)
    }

    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.shared.count_prefix(ns, prefix)
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        self.put(ns, key, value, opts, false).map(|_| ())
    }

    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        self.put_many(ns, entries, opts)
    }

    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        self.put(ns, key, value, opts, true)
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        self.shared.delete(ns, key)
    }

    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.shared.pop_entry(ns, key)
    }

    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.shared.touch(ns, key, expire)
    }

    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        self.shared.incr(ns, key, delta, default)
    }

    fn clear(&self, ns: &Namespace) -> Result<u64> {
        self.shared.clear(ns)
    }

    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.shared.delete_prefix(ns, prefix)
    }

    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        self.shared.evict_tag(ns, tag)
    }

    fn expire(&self) -> Result<u64> {
        self.shared.purge_expired()
    }

    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        self.cas(ns, key, expected, new, opts)
    }

    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()> {
        self.optimistic(reads, writes)
    }

    fn begin(&self, _scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>> {
        Ok(Box::new(self.shared.begin()?))
    }

    fn in_transaction(&self) -> bool {
        self.shared.in_tx_here()
    }

    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        self.shared.try_lock(name, owner, expire)
    }

    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        self.shared.unlock(name, owner)
    }

    fn stats(&self) -> Stats {
        Stats {
            hits: self.shared.hits.load(Ordering::Relaxed),
            misses: self.shared.misses.load(Ordering::Relaxed),
        }
    }

    fn reset_stats(&self) {
        self.shared.hits.store(0, Ordering::Relaxed);
        self.shared.misses.store(0, Ordering::Relaxed);
    }

    fn total_size(&self) -> Result<u64> {
        let s = &*self.shared;
        s.read(|c| s.totals(c, None)).map(|t| t.1)
    }

    fn volume(&self) -> Result<u64> {
        self.shared.volume()
    }

    fn check(&self, fix: bool) -> Result<CheckReport> {
        check::check(&self.shared, fix)
    }

    fn maintain(&self) -> Result<()> {
        let s = &*self.shared;
        if s.read_only.is_some() {
            // Nothing to flush, and nothing may be purged or evicted.
            return Ok(());
        }
        s.flush_recency()?;
        s.purge_expired()?;
        s.evict()?;
        s.drain_discarded()?;
        Ok(())
    }

    fn metadata(&self, name: &str) -> Result<Option<String>> {
        self.shared.metadata(name)
    }

    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.shared.set_metadata(name, value)
    }

    fn max_size(&self) -> u64 {
        self.shared.max_size()
    }

    fn set_max_size(&self, bytes: u64) -> Result<()> {
        self.set_bound(bytes)
    }

    fn evict(&self) -> Result<u64> {
        self.shared.evict()
    }

    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(self.reopen()?))
    }
}

impl Reopen for SqliteEngine {
    fn reopen(&self) -> Result<Self> {
        SqliteEngine::open(
            &self.shared.dir,
            self.shared.config.clone(),
            Some(self.shared.kind),
        )
    }
}

impl Drop for SqliteEngine {
    fn drop(&mut self) {
        if crate::platform::pid() != self.pid {
            // A child of `fork`: the connections' locks and the maintenance thread
            // belong to the parent (closing would confuse SQLite's lock bookkeeping,
            // joining would wait for a thread that does not exist here). Leave them.
            std::mem::forget(self.maintenance.take());
            std::mem::forget(self.shared.clone());
            return;
        }
        if let Some(m) = self.maintenance.take() {
            m.stop();
        }
        if let Err(e) = self.shared.flush_recency() {
            tracing::warn!(error = %e, "flushing recency on close failed");
        }
    }
}
