//! `pysciqlop_cache._native`: the thin PyO3 layer between the Python package
//! `pysciqlop_cache` and the Rust engine (`sciqlop-cache`).
//!
//! Only what needs the engine lives here: one `NativeStore` class over the four store
//! kinds, taking stored keys (`str`) and stored values (`bytes`, or an `int` stored as
//! a counter) and returning the same. Every engine call runs with the GIL released.
//! Serializers, key encoding, diskcache-style signatures, memoize, locks and the
//! mapping interface are Python, in `pysciqlop_cache/__init__.py`.
//!
//! Key rules (shared with the Python layer, see its docs): a `str` key is stored as it
//! is, unless it starts with NUL, in which case it is stored as `"\0s" + key`; a `bytes`
//! key passed to this module is a key the Python layer already encoded (UTF-8 of a
//! string that starts with NUL) and is stored as that string. So an ordinary `str` key
//! never collides with an encoded one.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use pyo3::exceptions::{
    PyNotADirectoryError, PyOSError, PyOverflowError, PyPermissionError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use sciqlop_cache::{
    Cache, CheckReport, EntryInfo, Error, FanoutCache, FanoutIndex, Index, SetOptions, Transaction,
    counter,
};

mod migrate;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pickle protocol 5 of a `bytes` object of at least [`PICKLED_BYTES_MIN`] bytes (and
/// less than 4 GiB) is exactly `80 05 42 <u32 le length> <data> 94 2e`: PROTO 5,
/// BINBYTES, MEMOIZE, STOP, without framing (pickle writes such payloads outside
/// frames). The extension writes and reads that form itself for stores whose
/// serializer is pickle: no `pickle.dumps`/`loads` copy of a large value with the GIL
/// held. The stored bytes are the ones `pickle.dumps(value, 5)` gives.
const PICKLED_BYTES_MIN: usize = 64 * 1024;
const PICKLED_BYTES_HEAD: [u8; 3] = [0x80, 0x05, 0x42];
const PICKLED_BYTES_TAIL: [u8; 2] = [0x94, 0x2e];

/// The data of a value stored as a large pickled `bytes` object, if it is one.
fn pickled_bytes(v: &[u8]) -> Option<&[u8]> {
    let n = v.len().checked_sub(9)?;
    if n < PICKLED_BYTES_MIN
        || !v.starts_with(&PICKLED_BYTES_HEAD)
        || !v.ends_with(&PICKLED_BYTES_TAIL)
    {
        return None;
    }
    let len = u32::from_le_bytes([v[3], v[4], v[5], v[6]]) as usize;
    (len == n).then(|| &v[7..7 + n])
}

/// `pickle.dumps(data, 5)` for a large `bytes` object (see [`pickled_bytes`]).
fn pickle_bytes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 9);
    out.extend_from_slice(&PICKLED_BYTES_HEAD);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&PICKLED_BYTES_TAIL);
    out
}

pyo3::create_exception!(
    pysciqlop_cache,
    Timeout,
    PyRuntimeError,
    "The database stayed locked by another writer for longer than the store's `timeout`."
);
pyo3::create_exception!(
    pysciqlop_cache,
    NotACounter,
    PyTypeError,
    "incr/decr on a value that is not a counter (an int stored by this package, or by \
     the Rust API's incr)."
);

/// The engine's error as the Python exception a caller expects.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Busy { .. } | Error::LockTimeout { .. } => Timeout::new_err(msg),
        Error::NotACounter { .. } => NotACounter::new_err(msg),
        Error::CounterOverflow { .. } => PyOverflowError::new_err(msg),
        Error::KeyTooLong { .. }
        | Error::ValueTooLarge { .. }
        | Error::InvalidArgument(_)
        | Error::InvalidKey(_)
        | Error::WrongShard { .. }
        | Error::NotACache { .. }
        | Error::WrongKind { .. }
        | Error::ShardCountMismatch { .. }
        | Error::Corrupt { .. } => PyValueError::new_err(msg),
        Error::NotADirectory(_) => PyNotADirectoryError::new_err(msg),
        Error::ReadOnly { .. } => PyPermissionError::new_err(msg),
        Error::Io { .. } | Error::ValueFileMissing { .. } | Error::ValueFileTruncated { .. } => {
            PyOSError::new_err(msg)
        }
        _ => PyRuntimeError::new_err(msg),
    }
}

/// One open store of any kind.
enum Inner {
    Cache(Cache),
    Index(Index),
    FanoutCache(FanoutCache),
    FanoutIndex(FanoutIndex),
}

/// Runs `$e` with `$s` bound to the store, whatever its kind.
macro_rules! any {
    ($inner:expr, $s:ident => $e:expr) => {
        match $inner {
            Inner::Cache($s) => $e,
            Inner::Index($s) => $e,
            Inner::FanoutCache($s) => $e,
            Inner::FanoutIndex($s) => $e,
        }
    };
}

/// Runs `$c` on a cache (single or fanout) or `$i` on an index.
macro_rules! by_kind {
    ($inner:expr, $s:ident => cache: $c:expr, index: $i:expr) => {
        match $inner {
            Inner::Cache($s) => $c,
            Inner::FanoutCache($s) => $c,
            Inner::Index($s) => {
                let _ = &$s;
                $i
            }
            Inner::FanoutIndex($s) => {
                let _ = &$s;
                $i
            }
        }
    };
}

impl Inner {
    fn reopen(&self) -> sciqlop_cache::Result<Inner> {
        Ok(match self {
            Inner::Cache(s) => Inner::Cache(s.reopen()?),
            Inner::Index(s) => Inner::Index(s.reopen()?),
            Inner::FanoutCache(s) => Inner::FanoutCache(s.reopen()?),
            Inner::FanoutIndex(s) => Inner::FanoutIndex(s.reopen()?),
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Inner::Cache(_) => "Cache",
            Inner::Index(_) => "Index",
            Inner::FanoutCache(_) => "FanoutCache",
            Inner::FanoutIndex(_) => "FanoutIndex",
        }
    }
}

type OptTx<'a> = Option<Transaction<'a>>;

self_cell::self_cell!(
    /// An open transaction and the store it belongs to.
    struct TxCell {
        owner: Arc<Inner>,
        #[not_covariant]
        dependent: OptTx,
    }
);

thread_local! {
    /// The transactions this thread has open, innermost last, with their serial
    /// numbers. A transaction belongs to the thread that began it (SQLite's write
    /// lock is held by it), so it lives in that thread's storage and never crosses
    /// threads: the GIL can be released while beginning and ending it.
    static TRANSACTIONS: RefCell<Vec<(u64, TxCell)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_TX: AtomicU64 = AtomicU64::new(1);

/// Engine calls running with the GIL released, in all threads. Counted up while the
/// caller holds the GIL and down before it takes the GIL back, so a thread that holds
/// the GIL (the one about to fork) sees every call still inside the engine.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Whether no engine call was in flight when the process last forked.
static QUIESCED: AtomicBool = AtomicBool::new(true);

/// Set from `before_fork` until the fork is done: no engine call may start then.
/// (CPython runs other fork handlers after ours, Python code that may hand the GIL to
/// another thread, which would otherwise start a call right before the fork.)
static FORKING: AtomicBool = AtomicBool::new(false);

/// Runs the engine call `f` with the GIL released, counted in [`IN_FLIGHT`]; waits
/// (without the GIL) while a fork is being prepared.
fn unlocked<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    loop {
        if !FORKING.load(Ordering::SeqCst) {
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            // Seen by `before_fork` (which sets FORKING, then waits for IN_FLIGHT), or
            // this thread sees FORKING and steps back.
            if !FORKING.load(Ordering::SeqCst) {
                break;
            }
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
        py.detach(|| {
            while FORKING.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(50));
            }
        });
    }
    py.detach(|| {
        let out = f();
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        out
    })
}

/// A stored value passed in from Python: bytes borrowed from a `bytes` object, or the
/// counter encoding of an `int`.
enum ValueIn<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    /// A large `bytes` value to store pickled (framed when the engine call runs,
    /// without the GIL: see [`pickle_bytes`]).
    Pickle(&'a [u8]),
}

impl ValueIn<'_> {
    fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            ValueIn::Borrowed(b) => Cow::Borrowed(b),
            ValueIn::Owned(v) => Cow::Borrowed(v),
            ValueIn::Pickle(b) => Cow::Owned(pickle_bytes(b)),
        }
    }
}

fn value_in<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<ValueIn<'a>> {
    value_in_as(value, false)
}

/// [`value_in`]; with `pickle`, a `bytes` value of at least [`PICKLED_BYTES_MIN`] bytes
/// is stored as its pickle (the Python layer asks for it when its serializer is pickle).
fn value_in_as<'a>(value: &'a Bound<'_, PyAny>, pickle: bool) -> PyResult<ValueIn<'a>> {
    if let Ok(b) = value.cast_exact::<PyBytes>() {
        let data = b.as_bytes();
        if pickle && data.len() >= PICKLED_BYTES_MIN && u32::try_from(data.len()).is_ok() {
            return Ok(ValueIn::Pickle(data));
        }
        return Ok(ValueIn::Borrowed(data));
    }

    if value.is_exact_instance_of::<PyInt>() {
        let n: i64 = value.extract().map_err(|_| {
            PyOverflowError::new_err("an int value stored as a counter must fit in 64 bits")
        })?;
        return Ok(ValueIn::Owned(counter::encode(n)));
    }
    Err(PyTypeError::new_err(format!(
        "stored values are bytes (or an int counter), not {}",
        value.get_type().name()?
    )))
}

/// The key as stored (see the module docs).
fn stored_key<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    if let Ok(s) = key.cast_exact::<PyString>() {
        let k = s.to_cow()?;
        return Ok(if k.starts_with('\0') {
            Cow::Owned(format!("\0s{k}"))
        } else {
            k
        });
    }
    if let Ok(b) = key.cast_exact::<PyBytes>() {
        return match std::str::from_utf8(b.as_bytes()) {
            Ok(s) if s.starts_with('\0') => Ok(Cow::Borrowed(s)),
            _ => Err(PyValueError::new_err(
                "an encoded key must be UTF-8 starting with NUL",
            )),
        };
    }
    Err(PyTypeError::new_err(format!(
        "keys reach the engine as str, not {}",
        key.get_type().name()?
    )))
}

/// A stored value as Python sees it: a canonical ASCII-decimal i64 is an `int`, anything
/// else `bytes` for the serializer.
///
/// With `pickle`, a large pickled `bytes` value is returned decoded, as a 1-tuple
/// `(data,)` (see [`pickled_bytes`]).
fn value_out(py: Python<'_>, v: &[u8], pickle: bool) -> Py<PyAny> {
    if pickle && let Some(data) = pickled_bytes(v) {
        return PyTuple::new(py, [PyBytes::new(py, data)])
            .map_or_else(|_| py.None(), |t| t.into_any().unbind());
    }
    // A counter is at most 20 bytes and starts with '-' or a digit: check that first.
    if v.len() <= 20
        && matches!(v.first(), Some(b'-' | b'0'..=b'9'))
        && let Some(n) = counter::decode(v)
    {
        return n
            .into_pyobject(py)
            .map_or_else(|_| py.None(), |o| o.into_any().unbind());
    }
    PyBytes::new(py, v).into_any().unbind()
}

fn expire_secs(e: Option<SystemTime>) -> Option<f64> {
    e.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    })
}

fn duration(secs: f64) -> PyResult<Duration> {
    if secs.is_nan() {
        return Err(PyValueError::new_err(
            "expire must be a number of seconds, not NaN",
        ));
    }
    if secs <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| PyValueError::new_err(format!("expire of {secs} seconds is out of range")))
}

fn options(expire: Option<f64>, tag: Option<String>) -> PyResult<SetOptions> {
    let mut o = SetOptions::new();
    if let Some(e) = expire {
        o = o.expire(duration(e)?);
    }
    if let Some(t) = tag {
        o = o.tag(t);
    }
    Ok(o)
}

fn no_options_for_index(kind: &str, o: &SetOptions) -> PyResult<()> {
    if o.expiry().is_some() || o.tag_name().is_some() {
        return Err(PyTypeError::new_err(format!(
            "an {kind} has no expiry or tags"
        )));
    }
    Ok(())
}

fn entry_tuple(py: Python<'_>, v: &[u8], info: &EntryInfo, pickle: bool) -> PyResult<Py<PyAny>> {
    let t = PyTuple::new(
        py,
        [
            value_out(py, v, pickle),
            expire_secs(info.expire)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            info.tag.clone().into_pyobject(py)?.into_any().unbind(),
        ],
    )?;
    Ok(t.into_any().unbind())
}

fn report_dict<'py>(py: Python<'py>, r: &CheckReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ok", r.ok)?;
    d.set_item("orphaned_files", r.orphaned_files)?;
    d.set_item("dangling_rows", r.dangling_rows)?;
    d.set_item("size_mismatches", r.size_mismatches)?;
    d.set_item("counters_consistent", r.counters_consistent)?;
    d.set_item("sqlite_integrity_ok", r.sqlite_integrity_ok)?;
    d.set_item("fixed", r.fixed)?;
    d.set_item("foreign_tables", r.foreign_tables.clone())?;
    d.set_item("damaged_files", r.damaged_files)?;
    d.set_item("sqlite_errors", r.sqlite_errors.clone())?;
    d.set_item("removed_keys", r.removed_keys.clone())?;
    Ok(d)
}

/// Calls `f(shard, entries)` for each shard that `entries` route to.
fn per_shard<'a>(
    count: u32,
    entries: &[(&'a str, &'a [u8])],
    mut f: impl FnMut(usize, Vec<(&'a str, &'a [u8])>) -> sciqlop_cache::Result<()>,
) -> sciqlop_cache::Result<()> {
    let mut groups: Vec<Vec<(&str, &[u8])>> = vec![Vec::new(); count as usize];
    for &(k, v) in entries {
        groups[sciqlop_cache::fanout::shard_of(k, count) as usize].push((k, v));
    }
    for (i, g) in groups.into_iter().enumerate() {
        if !g.is_empty() {
            f(i, g)?;
        }
    }
    Ok(())
}

/// An open store: `Cache`, `Index`, `FanoutCache` or `FanoutIndex`. Keys are stored
/// keys (see the module docs), values `bytes` or `int` counters. Thread-safe; every
/// method releases the GIL while the engine works.
#[pyclass(frozen, module = "pysciqlop_cache._native")]
struct NativeStore {
    /// `None` once closed. Swapped without locks (see `reopen_after_fork`).
    inner: ArcSwapOption<Inner>,
    kind: &'static str,
    path: PathBuf,
    /// Transactions of this store open in any thread.
    /// Shared with the store's namespace views (one database, one set of locks).
    open_tx: Arc<AtomicUsize>,
    /// The store's serializer is pickle: large pickled `bytes` values are decoded here.
    pickle: AtomicBool,
    /// Set in a forked child when the inherited handle could not be replaced.
    poisoned: OnceLock<String>,
}

impl NativeStore {
    fn handle(&self) -> PyResult<Arc<Inner>> {
        self.inner.load_full().ok_or_else(|| {
            if let Some(why) = self.poisoned.get() {
                return PyRuntimeError::new_err(why.clone());
            }
            PyRuntimeError::new_err(format!(
                "operation on a closed store ({} at {})",
                self.kind,
                self.path.display()
            ))
        })
    }
}

#[pymethods]
impl NativeStore {
    /// Opens (creating if needed) a store of `kind` (`"cache"`, `"index"`,
    /// `"fanout-cache"`, `"fanout-index"`) in `path`. `max_size` bounds a cache's value
    /// bytes (0: unbounded), `shards` is a new fanout's shard count, `timeout` the
    /// longest wait in seconds for a lock another writer holds.
    #[new]
    #[pyo3(signature = (kind, path, max_size=0, shards=None, timeout=600.0, file_threshold=None))]
    fn new(
        py: Python<'_>,
        kind: &str,
        path: PathBuf,
        max_size: u64,
        shards: Option<u32>,
        timeout: f64,
        file_threshold: Option<usize>,
    ) -> PyResult<Self> {
        let threshold = file_threshold.unwrap_or(sciqlop_cache::DEFAULT_FILE_THRESHOLD);
        let busy = duration(timeout)?;
        let p = path.clone();
        let inner = match kind {
            "cache" => unlocked(py, || {
                Cache::builder()
                    .max_size(max_size)
                    .file_threshold(threshold)
                    .busy_timeout(busy)
                    .open(&p)
                    .map(Inner::Cache)
            }),
            "index" => unlocked(py, || {
                Index::builder()
                    .busy_timeout(busy)
                    .open(&p)
                    .map(Inner::Index)
            }),
            "fanout-cache" => unlocked(py, || {
                let mut b = FanoutCache::builder()
                    .max_size(max_size)
                    .configure(|b| b.busy_timeout(busy).file_threshold(threshold));
                if let Some(n) = shards {
                    b = b.shards(n);
                }
                b.open(&p).map(Inner::FanoutCache)
            }),
            "fanout-index" => unlocked(py, || {
                let mut b = FanoutIndex::builder()
                    .configure(|b| b.busy_timeout(busy).file_threshold(threshold));
                if let Some(n) = shards {
                    b = b.shards(n);
                }
                b.open(&p).map(Inner::FanoutIndex)
            }),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown store kind {other:?}"
                )));
            }
        }
        .map_err(to_py)?;
        let kind = inner.kind();
        Ok(NativeStore {
            inner: ArcSwapOption::from_pointee(inner),
            kind,
            path,
            open_tx: Arc::new(AtomicUsize::new(0)),
            pickle: AtomicBool::new(false),
            poisoned: OnceLock::new(),
        })
    }

    /// Whether the store's serializer is pickle (protocol 5): then large pickled
    /// `bytes` values come back decoded as `(data,)` (see `set(..., pickle=True)`).
    #[setter]
    fn set_pickle_bytes(&self, on: bool) {
        self.pickle.store(on, Ordering::Relaxed);
    }

    /// The store's kind: `"Cache"`, `"Index"`, `"FanoutCache"` or `"FanoutIndex"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The directory of the store.
    fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.load().is_none()
    }

    /// Closes the store: later calls raise `RuntimeError`. Calls running in other
    /// threads finish first (they hold the handle). Returns whether it was open.
    fn close(&self, py: Python<'_>) -> bool {
        let old = self.inner.swap(None);
        let was_open = old.is_some();
        unlocked(py, move || drop(old));
        was_open
    }

    /// In the child of `fork()`: replaces the inherited handle (whose connections
    /// belong to the parent) with a fresh one on the same directory. When a transaction
    /// of the store was open, or an engine call still ran in another thread, as the
    /// process forked, the child inherited SQLite's record of locks that no connection
    /// of the child will ever release: the store is then unusable here and every call
    /// raises `RuntimeError` saying so, instead of waiting forever.
    fn reopen_after_fork(&self, py: Python<'_>) -> PyResult<()> {
        // Not reset: shared with the store's other views, which must see it too (a
        // store poisoned here stays so).
        let open_tx = self.open_tx.load(Ordering::SeqCst);
        let Some(old) = self.inner.load_full() else {
            return Ok(());
        };
        if open_tx > 0 || !QUIESCED.load(Ordering::SeqCst) {
            let why = if open_tx > 0 {
                "a transaction of it was open"
            } else {
                "another thread was inside a call of the cache"
            };
            let _ = self.poisoned.set(format!(
                "{} at {} cannot be used in this process: {why} when the process forked, \
                 and the child inherited its database locks (fork outside transactions)",
                self.kind,
                self.path.display()
            ));
            self.inner.store(None);
            // The inherited handle's connections belong to the parent: leave them.
            std::mem::forget(old);
            return Ok(());
        }
        let new = unlocked(py, || old.reopen()).map_err(to_py)?;
        self.inner.store(Some(Arc::new(new)));
        Ok(())
    }

    /// A new handle on the namespace `name` of the same store (created if needed): its
    /// own keys, count, size, tags and `clear`, sharing the store's connections, size
    /// bound, metadata and statistics (`""`: the default namespace). A single store's
    /// only: a fanout's namespaces are not offered here yet.
    fn namespace(&self, py: Python<'_>, name: &str) -> PyResult<NativeStore> {
        let inner = self.handle()?;
        let view = unlocked(py, || match &*inner {
            Inner::Cache(s) => s.namespace(name).map(|s| Some(Inner::Cache(s))),
            Inner::Index(s) => s.namespace(name).map(|s| Some(Inner::Index(s))),
            Inner::FanoutCache(_) | Inner::FanoutIndex(_) => Ok(None),
        })
        .map_err(to_py)?
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "namespaces of a {} are not available from Python (open a Cache or an Index)",
                self.kind
            ))
        })?;
        Ok(NativeStore {
            inner: ArcSwapOption::from_pointee(view),
            kind: self.kind,
            path: self.path.clone(),
            open_tx: self.open_tx.clone(),
            pickle: AtomicBool::new(self.pickle.load(Ordering::Relaxed)),
            poisoned: OnceLock::new(),
        })
    }

    /// The number of shards (1 for a single store).
    fn shard_count(&self) -> PyResult<u32> {
        Ok(match &*self.handle()? {
            Inner::FanoutCache(s) => s.shard_count(),
            Inner::FanoutIndex(s) => s.shard_count(),
            _ => 1,
        })
    }

    /// The value of `key` (`bytes`, or `int` for a counter), or `None`.
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        let v = unlocked(py, || any!(&*inner, s => s.get(&k))).map_err(to_py)?;
        Ok(v.map(|v| value_out(py, &v, self.pickle.load(Ordering::Relaxed))))
    }

    /// The stored bytes of `key` as they are (a counter as its ASCII decimal), or
    /// `None`.
    fn get_raw(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyBytes>>> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        let v = unlocked(py, || any!(&*inner, s => s.get(&k))).map_err(to_py)?;
        Ok(v.map(|v| PyBytes::new(py, &v).unbind()))
    }

    /// `(value, expire_time, tag)` of `key`, or `None`; `expire_time` in Unix seconds.
    fn get_entry(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        let v = unlocked(py, || any!(&*inner, s => s.get_entry(&k))).map_err(to_py)?;
        v.map(|(v, info)| entry_tuple(py, &v, &info, self.pickle.load(Ordering::Relaxed)))
            .transpose()
    }

    /// Values of several keys, in order (`None` for each miss).
    fn get_many(&self, py: Python<'_>, keys: Vec<Bound<'_, PyAny>>) -> PyResult<Py<PyList>> {
        let ks = keys.iter().map(stored_key).collect::<PyResult<Vec<_>>>()?;
        let inner = self.handle()?;
        let vs = unlocked(py, || match &*inner {
            Inner::Cache(s) => s.get_many(&ks),
            Inner::Index(s) => s.get_many(&ks),
            Inner::FanoutCache(s) => ks.iter().map(|k| s.get(k)).collect(),
            Inner::FanoutIndex(s) => ks.iter().map(|k| s.get(k)).collect(),
        })
        .map_err(to_py)?;
        let out = vs
            .iter()
            .map(|v| {
                v.as_deref()
                    .map(|v| value_out(py, v, self.pickle.load(Ordering::Relaxed)))
            })
            .collect::<Vec<_>>();
        Ok(PyList::new(py, out)?.unbind())
    }

    /// Stores `value` under `key` with an optional expiry (seconds) and tag. With
    /// `pickle`, a large `bytes` value is stored as `pickle.dumps(value, 5)` would
    /// store it, framed here without the GIL.
    #[pyo3(signature = (key, value, expire=None, tag=None, pickle=false))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expire: Option<f64>,
        tag: Option<String>,
        pickle: bool,
    ) -> PyResult<()> {
        let k = stored_key(key)?;
        let v = value_in_as(value, pickle)?;
        let inner = self.handle()?;
        if expire.is_none() && tag.is_none() {
            return unlocked(py, || any!(&*inner, s => s.set(&k, &*v.bytes()))).map_err(to_py);
        }
        let o = options(expire, tag)?;
        by_kind!(&*inner, s =>
            cache: unlocked(py, || s.set_with(&k, &*v.bytes(), &o)).map_err(to_py),
            index: no_options_for_index(self.kind, &o))
    }

    /// Stores several `(key, value)` pairs in one transaction, all with the same
    /// optional expiry and tag.
    #[pyo3(signature = (items, expire=None, tag=None))]
    fn set_many(
        &self,
        py: Python<'_>,
        items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
        expire: Option<f64>,
        tag: Option<String>,
    ) -> PyResult<()> {
        let entries = items
            .iter()
            .map(|(k, v)| Ok((stored_key(k)?, value_in(v)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let bufs: Vec<Cow<'_, [u8]>> = entries.iter().map(|(_, v)| v.bytes()).collect();
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .zip(&bufs)
            .map(|((k, _), v)| (&**k, &**v))
            .collect();
        let o = options(expire, tag)?;
        let inner = self.handle()?;
        match &*inner {
            Inner::Cache(s) => unlocked(py, || s.set_many_with(refs, &o)),
            Inner::FanoutCache(s) => unlocked(py, || {
                // One transaction per shard of the batch: a fanout has no cross-shard
                // transaction.
                per_shard(s.shard_count(), &refs, |i, mine| {
                    s.shards()[i].set_many_with(mine, &o)
                })
            }),
            Inner::Index(s) => {
                no_options_for_index(self.kind, &o)?;
                unlocked(py, || s.set_many(refs))
            }
            Inner::FanoutIndex(s) => {
                no_options_for_index(self.kind, &o)?;
                unlocked(py, || {
                    per_shard(s.shard_count(), &refs, |i, mine| {
                        s.shards()[i].set_many(mine)
                    })
                })
            }
        }
        .map_err(to_py)
    }

    /// Stores `value` only if `key` is absent (an expired entry counts as absent);
    /// returns whether it stored.
    #[pyo3(signature = (key, value, expire=None, tag=None))]
    fn add(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expire: Option<f64>,
        tag: Option<String>,
    ) -> PyResult<bool> {
        let k = stored_key(key)?;
        let v = value_in(value)?;
        let o = options(expire, tag)?;
        let inner = self.handle()?;
        by_kind!(&*inner, s =>
        cache: unlocked(py, || s.add_with(&k, &*v.bytes(), &o)).map_err(to_py),
        index: {
            no_options_for_index(self.kind, &o)?;
            unlocked(py, || s.add(&k, &*v.bytes())).map_err(to_py)
        })
    }

    /// Removes `key`; returns whether a live entry was removed.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.delete(&k))).map_err(to_py)
    }

    /// Removes `key` and returns its value, or `None`.
    fn pop(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        let v = unlocked(py, || any!(&*inner, s => s.pop(&k))).map_err(to_py)?;
        Ok(v.map(|v| value_out(py, &v, self.pickle.load(Ordering::Relaxed))))
    }

    /// Removes `key` and returns `(value, expire_time, tag)`, or `None`.
    fn pop_entry(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        let v = unlocked(py, || any!(&*inner, s => s.pop_entry(&k))).map_err(to_py)?;
        v.map(|(v, info)| entry_tuple(py, &v, &info, self.pickle.load(Ordering::Relaxed)))
            .transpose()
    }

    /// Whether `key` holds a live entry.
    fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.contains(&k))).map_err(to_py)
    }

    /// Gives a live entry a new expiry in seconds (`None`: never); returns whether the
    /// key was live.
    #[pyo3(signature = (key, expire=None))]
    fn touch(&self, py: Python<'_>, key: &Bound<'_, PyAny>, expire: Option<f64>) -> PyResult<bool> {
        let k = stored_key(key)?;
        let d = expire.map(duration).transpose()?;
        let inner = self.handle()?;
        by_kind!(&*inner, s =>
            cache: unlocked(py, || s.touch(&k, d)).map_err(to_py),
            index: Err(PyTypeError::new_err(format!("an {} has no expiry", self.kind))))
    }

    /// Adds `delta` to the counter at `key` (created as `default + delta`); returns the
    /// new value. `NotACounter` when the value is not a counter.
    #[pyo3(signature = (key, delta=1, default=0))]
    fn incr(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        default: i64,
    ) -> PyResult<i64> {
        let k = stored_key(key)?;
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.incr(&k, delta, default))).map_err(to_py)
    }

    /// Number of live entries.
    fn len(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.len())).map_err(to_py)
    }

    /// Bytes of stored values.
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.size())).map_err(to_py)
    }

    /// Bytes on disk (database, WAL, value files).
    fn volume(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.volume())).map_err(to_py)
    }

    /// Removes every entry; returns how many.
    fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.clear())).map_err(to_py)
    }

    /// Removes expired entries now; returns how many.
    fn expire(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: unlocked(py, || s.expire()).map_err(to_py), index: Ok(0))
    }

    /// Evicts least-recently-used entries down to 90 % of `max_size` if above it;
    /// returns how many.
    fn evict(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: unlocked(py, || s.evict()).map_err(to_py), index: Ok(0))
    }

    /// Removes every entry tagged `tag`; returns how many.
    fn evict_tag(&self, py: Python<'_>, tag: &str) -> PyResult<u64> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: unlocked(py, || s.evict_tag(tag)).map_err(to_py), index: Ok(0))
    }

    /// The bound on value bytes (0: unbounded).
    fn max_size(&self) -> PyResult<u64> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: Ok(s.max_size()), index: Ok(0))
    }

    /// Changes the bound on value bytes for this handle.
    fn set_max_size(&self, py: Python<'_>, bytes: u64) -> PyResult<()> {
        let inner = self.handle()?;
        by_kind!(&*inner, s =>
            cache: unlocked(py, || s.set_max_size(bytes)).map_err(to_py),
            index: Err(PyTypeError::new_err(format!("an {} has no size bound", self.kind))))
    }

    /// `(hits, misses)` of reads through this handle.
    fn stats(&self) -> PyResult<(u64, u64)> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: { let st = s.stats(); Ok((st.hits, st.misses)) }, index: Ok((0, 0)))
    }

    /// Resets hits and misses.
    fn reset_stats(&self) -> PyResult<()> {
        let inner = self.handle()?;
        by_kind!(&*inner, s => cache: { s.reset_stats(); Ok(()) }, index: Ok(()))
    }

    /// Verifies (and with `fix`, repairs) the store; returns the report as a dict.
    #[pyo3(signature = (fix=false))]
    fn check<'py>(&self, py: Python<'py>, fix: bool) -> PyResult<Bound<'py, PyDict>> {
        let inner = self.handle()?;
        let r = unlocked(py, || any!(&*inner, s => s.check(fix))).map_err(to_py)?;
        report_dict(py, &r)
    }

    /// Up to `limit` stored keys after `after` (a cursor), in byte order.
    #[pyo3(signature = (after=None, limit=1000))]
    fn keys_page(
        &self,
        py: Python<'_>,
        after: Option<String>,
        limit: usize,
    ) -> PyResult<Vec<String>> {
        let inner = self.handle()?;
        unlocked(
            py,
            || any!(&*inner, s => s.keys_page("", after.as_deref(), limit.max(1))),
        )
        .map_err(to_py)
    }

    /// Every stored key, in byte order.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let inner = self.handle()?;
        unlocked(py, || {
            let mut out: Vec<String> = Vec::new();
            loop {
                let page =
                    any!(&*inner, s => s.keys_page("", out.last().map(String::as_str), 4096))?;
                let done = page.len() < 4096;
                out.extend(page);
                if done {
                    return Ok(out);
                }
            }
        })
        .map_err(to_py)
    }

    /// A metadata value of the store (not an entry), or `None`.
    fn get_meta(&self, py: Python<'_>, name: &str) -> PyResult<Option<String>> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.metadata(name))).map_err(to_py)
    }

    /// Sets (or with `None`, removes) a metadata value.
    #[pyo3(signature = (name, value=None))]
    fn set_meta(&self, py: Python<'_>, name: &str, value: Option<&str>) -> PyResult<()> {
        let inner = self.handle()?;
        unlocked(py, || any!(&*inner, s => s.set_metadata(name, value))).map_err(to_py)
    }

    /// Begins a transaction on this thread (on a fanout: on the shard of `key`, which
    /// is required there); returns its serial for `end`. Transactions begun while one
    /// is open are savepoints inside it.
    #[pyo3(signature = (key=None))]
    fn begin(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
        let k = key.map(stored_key).transpose()?;
        let inner = self.handle()?;
        let serial = NEXT_TX.fetch_add(1, Ordering::Relaxed);
        let kind = self.kind;
        unlocked(py, move || {
            let cell = TxCell::try_new(inner, |s| -> PyResult<OptTx<'_>> {
                let tx = match (&**s, k.as_deref()) {
                    (Inner::Cache(s), _) => s.begin(),
                    (Inner::Index(s), _) => s.begin(),
                    (Inner::FanoutCache(s), Some(k)) => s.begin(k),
                    (Inner::FanoutIndex(s), Some(k)) => s.begin(k),
                    _ => {
                        return Err(PyTypeError::new_err(format!(
                            "a transaction of a {kind} needs a key (it runs on that key's shard)"
                        )));
                    }
                };
                tx.map(Some).map_err(to_py)
            })?;
            TRANSACTIONS.with(|t| t.borrow_mut().push((serial, cell)));
            self.open_tx.fetch_add(1, Ordering::SeqCst);
            Ok(serial)
        })
    }

    /// Ends the transaction `serial` begun by `begin` on this thread: commits it, or
    /// rolls it back. It must be the innermost one open.
    fn end(&self, py: Python<'_>, serial: u64, commit: bool) -> PyResult<()> {
        let tag = serial;
        unlocked(py, move || {
            let cell = TRANSACTIONS.with(|t| {
                let mut t = t.borrow_mut();
                match t.last() {
                    Some((top, _)) if *top == tag => {
                        self.open_tx.fetch_sub(1, Ordering::SeqCst);
                        Ok(t.pop().map(|(_, c)| c))
                    }
                    _ if t.iter().any(|(x, _)| *x == tag) => Err(PyRuntimeError::new_err(
                        "transactions must end innermost first",
                    )),
                    _ => Err(PyRuntimeError::new_err(
                        "this transaction is not open in this thread (ended already, or begun in another thread)",
                    )),
                }
            })?;
            match cell {
                Some(mut c) if commit => c
                    .with_dependent_mut(|_, tx| tx.take().map(Transaction::commit))
                    .transpose()
                    .map(|_| ())
                    .map_err(to_py),
                _ => Ok(()),
            }
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "NativeStore({}, {:?})",
            self.kind,
            self.path.display().to_string()
        )
    }
}

/// Called just before `fork()`, with the GIL held (so no new engine call can start):
/// waits up to a second for the engine calls other threads are running to finish, so
/// that the child does not inherit SQLite locks in the middle of a call.
/// Then keeps the engines' background threads out of SQLite until the fork is done
/// (`sciqlop_cache::fork`): a child must not inherit one of SQLite's process-wide
/// mutexes held by a thread it does not have.
#[pyfunction]
fn before_fork() {
    FORKING.store(true, Ordering::SeqCst);
    let start = std::time::Instant::now();
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && start.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_micros(50));
    }
    QUIESCED.store(IN_FLIGHT.load(Ordering::SeqCst) == 0, Ordering::SeqCst);
    let guard = sciqlop_cache::fork::prepare_fork(Duration::from_secs(5));
    FORK_GUARD.with(|g| *g.borrow_mut() = Some(guard));
}

thread_local! {
    /// Held from `before_fork` to the end of the fork, in the forking thread (the
    /// child's only thread).
    static FORK_GUARD: RefCell<Option<sciqlop_cache::fork::ForkGuard>> = const { RefCell::new(None) };
}

/// Called in the parent after `fork()`: lets the background threads work again.
#[pyfunction]
fn after_fork_in_parent() {
    FORK_GUARD.with(|g| g.borrow_mut().take());
    FORKING.store(false, Ordering::SeqCst);
}

/// Called in the child of `fork()` before any store is used: forgets the transactions
/// the forking thread had open (their connections belong to the parent; finishing them
/// here would touch the parent's database locks) and the calls of threads that do not
/// exist here.
#[pyfunction]
fn forget_transactions_after_fork() {
    FORK_GUARD.with(|g| g.borrow_mut().take());
    FORKING.store(false, Ordering::SeqCst);
    TRANSACTIONS.with(|t| {
        for (_, cell) in t.borrow_mut().drain(..) {
            std::mem::forget(cell);
        }
    });
    IN_FLIGHT.store(0, Ordering::SeqCst);
}

/// `pysciqlop_cache._native`: see the crate docs.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeStore>()?;
    m.add_function(wrap_pyfunction!(forget_transactions_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_in_parent, m)?)?;
    m.add("Timeout", m.py().get_type::<Timeout>())?;
    m.add("NotACounter", m.py().get_type::<NotACounter>())?;
    migrate::register(m)?;
    Ok(())
}
