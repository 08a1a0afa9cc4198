//! The JS-facing API (`WebCache`), made with wasm-bindgen.

use std::time::Duration;

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use sciqlop_cache::{Cache, SetOptions};
use sqlite_wasm_rs::vfs::VfsFilesManager;
use sqlite_wasm_vfs::sahpool::{OpfsSAHPoolCfgBuilder, install};
use wasm_bindgen::prelude::*;

/// Name of the OPFS VFS registered for persistent caches.
const OPFS_VFS: &str = "opfs-sahpool";
/// OPFS directory (relative to the origin's root) holding the pool's files.
const OPFS_DIR: &str = ".sciqlop-cache";
/// Largest integer a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A cache opened from JavaScript: `await WebCache.open(name, options)`.
///
/// Keys are strings; values are bytes (`Uint8Array`/`ArrayBuffer`) or strings (stored as
/// UTF-8). Every method throws an `Error` with the cache's message on failure.
#[wasm_bindgen]
pub struct WebCache {
    cache: Cache,
    name: String,
    persistent: bool,
}

/// Reads `options[key]`, treating a missing options object or `undefined` as absent.
fn option(options: &Option<Object>, key: &str) -> Result<Option<JsValue>, JsError> {
    let Some(o) = options else { return Ok(None) };
    let v = Reflect::get(o, &JsValue::from_str(key))
        .map_err(|_| JsError::new(&format!("cannot read option {key}")))?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn number_option(options: &Option<Object>, key: &str) -> Result<Option<f64>, JsError> {
    option(options, key)?
        .map(|v| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| JsError::new(&format!("option {key} must be a number >= 0")))
        })
        .transpose()
}

/// A JS number that must be an exact integer.
fn to_i64(what: &str, f: f64) -> Result<i64, JsError> {
    if f.fract() != 0.0 || f.abs() > MAX_SAFE {
        return Err(JsError::new(&format!(
            "{what} must be an integer of at most 2^53 - 1, got {f}"
        )));
    }
    Ok(f as i64)
}

/// A count as a JS number (exact up to 2^53).
fn num(n: u64) -> f64 {
    n as f64
}

/// The bytes of a value given as a string, `Uint8Array` or `ArrayBuffer`.
fn value_bytes(value: &JsValue) -> Result<Vec<u8>, JsError> {
    if let Some(s) = value.as_string() {
        return Ok(s.into_bytes());
    }
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.to_vec());
    }
    if let Some(b) = value.dyn_ref::<ArrayBuffer>() {
        return Ok(Uint8Array::new(b).to_vec());
    }
    Err(JsError::new(
        "a value must be a string, a Uint8Array or an ArrayBuffer",
    ))
}

/// Installs (once per worker) the OPFS VFS, with room for one more database.
async fn install_opfs() -> Result<(), JsError> {
    let cfg = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(OPFS_VFS)
        .directory(OPFS_DIR)
        .build();
    let pool = install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false)
        .await
        .map_err(|e| {
            JsError::new(&format!(
                "cannot install the OPFS VFS (persistent caches need a dedicated worker \
                 in a secure context): {e}"
            ))
        })?;
    // A database and its rollback journal each take a slot of the pool.
    let used = pool.len().map_err(|e| JsError::new(&e.to_string()))?;
    pool.ensure_capacity(used + 4)
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    Ok(())
}

#[wasm_bindgen]
impl WebCache {
    /// Opens (creating if needed) the cache `name`.
    ///
    /// `options`: `persistent` (boolean, default false: in memory; true: in OPFS, from a
    /// dedicated worker only), `maxSize` (bytes of values kept, least recently read
    /// evicted beyond it; 0 or absent: unbounded), `maxKeyLen`, `maxValueSize`.
    pub async fn open(name: String, options: Option<Object>) -> Result<WebCache, JsError> {
        let persistent = option(&options, "persistent")?.is_some_and(|v| v.is_truthy());
        let mut builder = Cache::builder();
        if let Some(max) = number_option(&options, "maxSize")? {
            builder = builder.max_size(max as u64);
        }
        if let Some(max) = number_option(&options, "maxKeyLen")? {
            builder = builder.max_key_len(max as usize);
        }
        if let Some(max) = number_option(&options, "maxValueSize")? {
            builder = builder.max_value_size(max as u64);
        }
        if persistent {
            install_opfs().await?;
            builder = builder.vfs(OPFS_VFS);
        }
        let cache = builder.open(&name)?;
        Ok(WebCache {
            cache,
            name,
            persistent,
        })
    }

    /// The name the cache was opened with.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Whether the cache lives in OPFS (else in memory).
    #[wasm_bindgen(getter)]
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// The value of `key` as bytes, or `undefined` if absent or expired.
    pub fn get(&self, key: &str) -> Result<Option<Uint8Array>, JsError> {
        Ok(self.cache.get_with(key, |v| Uint8Array::from(v))?)
    }

    /// The value of `key` decoded as UTF-8, or `undefined` if absent or expired.
    #[wasm_bindgen(js_name = getString)]
    pub fn get_string(&self, key: &str) -> Result<Option<String>, JsError> {
        self.cache
            .get(key)?
            .map(|v| {
                String::from_utf8(v)
                    .map_err(|_| JsError::new(&format!("the value of {key:?} is not UTF-8")))
            })
            .transpose()
    }

    /// Stores `value` (string, `Uint8Array` or `ArrayBuffer`) under `key`.
    ///
    /// `options`: `expireMs` (the entry expires this many milliseconds from now; 0
    /// expires it at once), `tag` (for `evictTag`).
    pub fn set(&self, key: &str, value: JsValue, options: Option<Object>) -> Result<(), JsError> {
        let bytes = value_bytes(&value)?;
        let mut opts = SetOptions::new();
        if let Some(ms) = number_option(&options, "expireMs")? {
            let d = Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
                JsError::new(&format!(
                    "option expireMs ({ms}) is too large for an expiry"
                ))
            })?;
            opts = opts.expire(d);
        }
        if let Some(tag) = option(&options, "tag")? {
            let tag = tag
                .as_string()
                .ok_or_else(|| JsError::new("option tag must be a string"))?;
            opts = opts.tag(tag);
        }
        Ok(self.cache.set_with(key, bytes, &opts)?)
    }

    /// Removes `key`; true if a live entry was removed.
    pub fn delete(&self, key: &str) -> Result<bool, JsError> {
        Ok(self.cache.delete(key)?)
    }

    /// Whether `key` has a live entry (does not count as a read).
    pub fn contains(&self, key: &str) -> Result<bool, JsError> {
        Ok(self.cache.contains(key)?)
    }

    /// Adds `delta` (default 1; may be negative) to the counter `key`, starting from
    /// `initial` (default 0) when absent; returns the new value. Counters are stored as
    /// ASCII decimal, so `getString` reads them too.
    pub fn incr(
        &self,
        key: &str,
        delta: Option<f64>,
        initial: Option<f64>,
    ) -> Result<f64, JsError> {
        let delta = to_i64("delta", delta.unwrap_or(1.0))?;
        let initial = to_i64("initial", initial.unwrap_or(0.0))?;
        Ok(self.cache.incr(key, delta, initial)? as f64)
    }

    /// Removes every entry tagged `tag`; returns how many.
    #[wasm_bindgen(js_name = evictTag)]
    pub fn evict_tag(&self, tag: &str) -> Result<f64, JsError> {
        Ok(num(self.cache.evict_tag(tag)?))
    }

    /// `{ hits, misses, count, size }`: reads of this instance that found / did not find
    /// a live entry, and the number and bytes of entries stored.
    pub fn stats(&self) -> Result<Object, JsError> {
        let s = self.cache.stats();
        let o = Object::new();
        for (k, v) in [
            ("hits", num(s.hits)),
            ("misses", num(s.misses)),
            ("count", num(self.cache.len()?)),
            ("size", num(self.cache.size()?)),
        ] {
            Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(v))
                .map_err(|_| JsError::new("cannot build the stats object"))?;
        }
        Ok(o)
    }

    /// Number of live entries.
    pub fn len(&self) -> Result<f64, JsError> {
        Ok(num(self.cache.len()?))
    }

    /// Whether there is no live entry.
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> Result<bool, JsError> {
        Ok(self.cache.is_empty()?)
    }

    /// The live keys in order, optionally only those starting with `prefix`.
    pub fn keys(&self, prefix: Option<String>) -> Result<Array, JsError> {
        let keys = match prefix {
            Some(p) => self.cache.keys_with_prefix(&p),
            None => self.cache.keys(),
        };
        let out = Array::new();
        for k in keys {
            out.push(&JsValue::from_str(&k?));
        }
        Ok(out)
    }

    /// Removes every entry; returns how many.
    pub fn clear(&self) -> Result<f64, JsError> {
        Ok(num(self.cache.clear()?))
    }

    /// Removes expired entries now; returns how many.
    pub fn expire(&self) -> Result<f64, JsError> {
        Ok(num(self.cache.expire()?))
    }

    /// Runs the upkeep now: records recency of reads, purges expired entries, evicts
    /// down to `maxSize`. (There is no background thread in a browser; it also runs
    /// inline when a write exceeds `maxSize`.)
    pub fn maintain(&self) -> Result<(), JsError> {
        Ok(self.cache.maintain()?)
    }
}

/// Times `n` sets then `n` gets of 100-byte values on a fresh in-memory cache; returns
/// `{ n, setUs, getUs }` (mean µs per operation).
#[wasm_bindgen(js_name = benchSetGet)]
pub fn bench_set_get(n: u32) -> Result<Object, JsError> {
    let name = format!("bench-{}", js_sys::Math::random());
    let cache = Cache::open(&name)?;
    let r = crate::bench::run(&cache, n, 100, js_sys::Date::now)?;
    cache.clear()?;
    let o = Object::new();
    for (k, v) in [
        ("n", f64::from(r.n)),
        ("setUs", r.set_us),
        ("getUs", r.get_us),
    ] {
        Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(v))
            .map_err(|_| JsError::new("cannot build the result object"))?;
    }
    Ok(o)
}
