//! The readers of `sciqlop-cache-migrate` (diskcache, and the original sciqlop-cache),
//! for `pysciqlop_cache.migrate`
//! (which turns the typed entries into Python objects and writes them with the
//! destination's serializer). Reading happens with the GIL released.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use sciqlop_cache_migrate::diskcache::DiskcacheSource;
use sciqlop_cache_migrate::original::{OriginalSource, is_original_dir};
use sciqlop_cache_migrate::{Entry, EntryId, Item, Read, ReadOptions, Source, SourceError};

fn to_py(e: SourceError) -> PyErr {
    match e {
        SourceError::Missing(_) => PyFileNotFoundError::new_err(e.to_string()),
        SourceError::NotASource { .. } => PyValueError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

fn item<'py>(py: Python<'py>, i: &Item) -> PyResult<(&'static str, Bound<'py, PyAny>)> {
    let obj = match i {
        Item::Str(s) => s.into_pyobject(py)?.into_any(),
        Item::Bytes(b) | Item::Pickle(b) => PyBytes::new(py, b).into_any(),
        Item::Int(n) => n.into_pyobject(py)?.into_any(),
        Item::Float(f) => f.into_pyobject(py)?.into_any(),
    };
    Ok((i.kind(), obj))
}

struct State {
    source: Box<dyn Source + Send>,
    /// The entries of the last batch read, for `remove`.
    last: HashMap<EntryId, Box<Entry>>,
}

/// A diskcache directory (`Cache`, `FanoutCache` or `Index`) or one of the original
/// sciqlop-cache (`Cache`, `Index`, `FanoutCache`, `FanoutIndex`), detected, read
/// directly from its SQLite database: `list()` the entries in access order,
/// `read_batch(ids, now)` them, and with `writable=True`, `remove(ids)` those of the last
/// batch that are unchanged.
#[pyclass(frozen, module = "pysciqlop_cache._native")]
pub(crate) struct DiskcacheReader {
    state: Mutex<State>,
    fanout: bool,
    shards: usize,
    format: &'static str,
    /// An index (no expiry, tags) of the original.
    index: bool,
    serializer: Option<String>,
    max_size: Option<u64>,
}

impl DiskcacheReader {
    /// Runs `f` on the reader's state with the GIL released.
    fn with_state<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> Result<R, SourceError> + Send,
    ) -> PyResult<R> {
        crate::unlocked(py, || {
            let mut st = self.state.lock().map_err(|_| {
                PyRuntimeError::new_err("the diskcache reader failed in another thread")
            })?;
            f(&mut st).map_err(to_py)
        })
    }
}

#[pymethods]
impl DiskcacheReader {
    /// Opens the diskcache directory `path`; `writable` is needed for `remove`.
    #[new]
    #[pyo3(signature = (path, writable=false))]
    fn new(py: Python<'_>, path: PathBuf, writable: bool) -> PyResult<Self> {
        type Opened = (Box<dyn Source + Send>, bool, bool, Option<u64>);
        let (source, fanout, index, max_size): Opened = py
            .detach(|| {
                if is_original_dir(&path) {
                    let s = OriginalSource::open(&path, writable)?;
                    let (f, i, m) = (s.is_fanout(), !s.is_cache(), s.max_size());
                    Ok((Box::new(s) as Box<dyn Source + Send>, f, i, m))
                } else {
                    let s = DiskcacheSource::open(&path, writable)?;
                    let f = s.is_fanout();
                    Ok((Box::new(s) as Box<dyn Source + Send>, f, false, None))
                }
            })
            .map_err(to_py)?;
        Ok(DiskcacheReader {
            fanout,
            shards: source.shard_names().len(),
            format: source.format(),
            index,
            serializer: source.serializer(),
            max_size,
            state: Mutex::new(State {
                source,
                last: HashMap::new(),
            }),
        })
    }

    /// Whether the source is a `FanoutCache` (numbered shard directories).
    #[getter]
    fn is_fanout(&self) -> bool {
        self.fanout
    }

    /// The number of source shards (1 for a single store).
    #[getter]
    fn shard_count(&self) -> usize {
        self.shards
    }

    /// The source's format: `"diskcache"` or `"original sciqlop-cache"`.
    #[getter]
    fn format(&self) -> &'static str {
        self.format
    }

    /// Whether the source is an index of the original (no expiry or tags).
    #[getter]
    fn is_index(&self) -> bool {
        self.index
    }

    /// The serializer the source recorded for its values (the original's: `pickle`,
    /// `msgspec`, …), or None.
    #[getter]
    fn serializer(&self) -> Option<String> {
        self.serializer.clone()
    }

    /// The size bound the original recorded (None: unbounded or not recorded).
    #[getter]
    fn max_size(&self) -> Option<u64> {
        self.max_size
    }

    /// Every entry's id `(shard, row)`, least recently used first.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<(usize, i64)>> {
        let listed = self.with_state(py, |st| st.source.list())?;
        Ok(listed.iter().map(|l| (l.id.shard, l.id.row)).collect())
    }

    /// Reads the entries `ids` (each shard's from one snapshot). One tuple per id:
    /// `("entry", id, key_kind, key, value_kind, value, expire_at, tag_kind, tag)` with
    /// kinds `str`/`bytes`/`int`/`float`/`pickle` (a pickle as its bytes) and
    /// `expire_at` in Unix seconds or None; `("expired", id, key_repr)` for entries
    /// expired at `now`; `("vanished", id)`; `("unsupported", id, key_repr, reason)`;
    /// `("failed", id, key_repr, error)`.
    fn read_batch<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<(usize, i64)>,
        now: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let ids: Vec<EntryId> = ids
            .into_iter()
            .map(|(shard, row)| EntryId { shard, row })
            .collect();
        let opts = ReadOptions {
            expired_before: now,
            max_value_size: Some(sciqlop_cache::DEFAULT_MAX_VALUE_SIZE),
        };
        let reads = self.with_state(py, |st| {
            st.last.clear();
            st.source.read_batch(&ids, &opts)
        })?;
        let mut last = HashMap::new();
        let mut out = Vec::with_capacity(reads.len());
        for r in reads {
            let t = match r {
                Read::Entry(e) => {
                    let id = (e.id.shard, e.id.row);
                    let (kk, k) = item(py, &e.key)?;
                    let (vk, v) = item(py, &e.value)?;
                    let (tk, t) = match &e.tag {
                        Some(t) => {
                            let (a, b) = item(py, t)?;
                            (a.into_pyobject(py)?.into_any(), b)
                        }
                        None => (py.None().into_bound(py), py.None().into_bound(py)),
                    };
                    let items: Vec<Bound<'py, PyAny>> = vec![
                        "entry".into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                        kk.into_pyobject(py)?.into_any(),
                        k,
                        vk.into_pyobject(py)?.into_any(),
                        v,
                        e.expire_at.into_pyobject(py)?.into_any(),
                        tk,
                        t,
                    ];
                    last.insert(e.id, e);
                    PyTuple::new(py, items)?
                }
                Read::Expired { id, key } | Read::TooLarge { id, key } => {
                    ("expired", (id.shard, id.row), key.display("key")).into_pyobject(py)?
                }
                Read::Vanished(id) => ("vanished", (id.shard, id.row)).into_pyobject(py)?,
                Read::Unsupported { id, key, reason } => {
                    ("unsupported", (id.shard, id.row), key, reason).into_pyobject(py)?
                }
                Read::Failed { id, key, error } => {
                    ("failed", (id.shard, id.row), key, error).into_pyobject(py)?
                }
            };
            out.push(t);
        }
        self.with_state(py, move |st| {
            st.last = last;
            Ok(())
        })?;
        Ok(out)
    }

    /// Removes from the source the entries `ids` of the last batch read, where they
    /// are unchanged since; returns `(removed, changed)`.
    fn remove(&self, py: Python<'_>, ids: Vec<(usize, i64)>) -> PyResult<(u64, u64)> {
        let r = self.with_state(py, |st| {
            let entries: Vec<&Entry> = ids
                .iter()
                .filter_map(|&(shard, row)| st.last.get(&EntryId { shard, row }).map(|e| &**e))
                .collect();
            st.source.remove_unchanged(&entries)
        })?;
        Ok((r.removed, r.changed))
    }
}

/// Adds the migration classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DiskcacheReader>()
}
