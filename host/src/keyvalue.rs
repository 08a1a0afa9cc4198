//! The standard `wasi:keyvalue` interfaces, both deployed versions, served from the same
//! per-plugin scope as `sciqlop:cache`.
//!
//! - `wasi:keyvalue@0.2.0-draft` (wasmtime's `wasmtime-wasi-keyvalue`, wasmCloud):
//!   `store`, `atomics` (`increment` on u64), `batch`; `list-keys` cursor `option<u64>`.
//! - `wasi:keyvalue@0.2.0-draft2` (Spin): `store`, `atomics` (`increment` on s64 and the
//!   `cas` resource), `batch`; `list-keys` cursor `option<string>`.
//!
//! A bucket is the plugin's store of the same name: `open("users")` checks the same
//! grants as `sciqlop:cache`'s `open("users")` (`access-denied` when not granted,
//! `no-such-store` for an invalid name) and sees the same data, and bucket handles count
//! against the same handle cap. Values, keys and byte quotas are checked as for
//! `sciqlop:cache`; such errors come back as `other("<kind>: <message>")`.
//!
//! Components written for other hosts name their one bucket as those hosts do:
//! wasmtime's test programs open `""`, Spin's components open `"default"`. Both mean the
//! plugin's store `default` ([`DEFAULT_BUCKET`]), so such components run unchanged (the
//! plugin needs the grant for `default`, which the default policy gives).
//!
//! Counters use the shared ASCII decimal i64 encoding ([`sciqlop_cache::counter`]), so
//! `get` after `increment` returns e.g. `b"42"` and `incr` of `sciqlop:cache` works on the
//! same key. A value that is not such a counter is an error, never a panic. The draft's
//! u64 `increment` refuses a delta above `i64::MAX`, a stored negative counter and a
//! result above `i64::MAX` (nothing is written then).
//!
//! Cursors: draft `list-keys` cursors are offsets into the store's keys in ascending
//! byte order (stateless; the cost of a page is linear in its offset), draft2 cursors are
//! the last key of the previous page. Pages hold up to [`KV_PAGE`] keys.
//!
//! Draft2 `cas` is a real compare-and-swap: `new` snapshots the key's bytes and the
//! entry's version, which the core keeps in the store (every write gives a new one),
//! and `swap` is the core's compare-and-swap on that version: a change A→B→A in between
//! fails with `cas-failed` and a fresh handle, whichever thread or process (another host
//! on the same root, a native program) made it. When the key was absent, `swap` only
//! inserts.

use wasmtime::component::{HasData, Linker, Resource};

use crate::bindings::sciqlop::cache::types::Error as WitError;
use crate::ctx::{CacheCtxView, CacheView};
use crate::scope::{CasHandle, StoreHandle, SwapError};

/// Keys per `list-keys` page.
pub const KV_PAGE: u32 = 256;

/// The store that the bucket names `""` (wasmtime's convention) and `"default"` (Spin's)
/// open.
pub const DEFAULT_BUCKET: &str = "default";

/// The plugin store a bucket identifier names: `""` is [`DEFAULT_BUCKET`].
fn bucket_store(identifier: &str) -> &str {
    if identifier.is_empty() {
        DEFAULT_BUCKET
    } else {
        identifier
    }
}

/// Bindings of `wasi:keyvalue@0.2.0-draft`.
#[allow(missing_docs)]
pub mod draft {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports@0.2.0-draft",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::scope::StoreHandle,
        },
    });
}

/// Bindings of `wasi:keyvalue@0.2.0-draft2`.
#[allow(missing_docs)]
pub mod draft2 {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/imports@0.2.0-draft2",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::scope::StoreHandle,
            "wasi:keyvalue/atomics.cas": crate::scope::CasHandle,
        },
    });
}

use draft::wasi::keyvalue as d1;
use draft2::wasi::keyvalue as d2;

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = CacheCtxView<'a>;
}

/// Adds both versions of `wasi:keyvalue` (`store`, `atomics`, `batch`) to `linker`.
pub fn add_keyvalue_to_linker<T: CacheView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    d1::store::add_to_linker::<T, HasKv>(linker, T::cache)?;
    d1::atomics::add_to_linker::<T, HasKv>(linker, T::cache)?;
    d1::batch::add_to_linker::<T, HasKv>(linker, T::cache)?;
    d2::store::add_to_linker::<T, HasKv>(linker, T::cache)?;
    d2::atomics::add_to_linker::<T, HasKv>(linker, T::cache)?;
    d2::batch::add_to_linker::<T, HasKv>(linker, T::cache)?;
    Ok(())
}

/// The text of a `sciqlop:cache` error, for `other(..)`: `<kind>: <detail>`.
fn describe(e: &WitError) -> String {
    match e {
        WitError::NotFound => "not-found".into(),
        WitError::AccessDenied => "access-denied".into(),
        WitError::InvalidKey(m) => format!("invalid-key: {m}"),
        WitError::TooLarge(max) => format!("too-large: values are limited to {max} bytes"),
        WitError::QuotaExceeded(m) => format!("quota-exceeded: {m}"),
        WitError::NotACounter => {
            "not-a-counter: the value is not an ASCII decimal i64 counter".into()
        }
        WitError::Overflow => "overflow: the counter would leave the i64 range".into(),
        WitError::Conflict => "conflict".into(),
        WitError::TransactionClosed => "transaction-closed".into(),
        WitError::InvalidArgument(m) => format!("invalid-argument: {m}"),
        WitError::Io(m) => format!("io: {m}"),
    }
}

/// Implements what both versions share, for the version module `$v`.
macro_rules! common {
    ($v:ident) => {
        impl From<WitError> for $v::store::Error {
            fn from(e: WitError) -> Self {
                match e {
                    WitError::AccessDenied => $v::store::Error::AccessDenied,
                    other => $v::store::Error::Other(describe(&other)),
                }
            }
        }

        impl $v::store::Host for CacheCtxView<'_> {
            fn open(
                &mut self,
                identifier: String,
            ) -> wasmtime::Result<Result<Resource<StoreHandle>, $v::store::Error>> {
                let handle = match self.ctx.scope().open_store(bucket_store(&identifier)) {
                    Ok(h) => h,
                    Err(WitError::InvalidArgument(_)) => {
                        return Ok(Err($v::store::Error::NoSuchStore));
                    }
                    Err(e) => return Ok(Err(e.into())),
                };
                if let Err(e) = self.ctx.acquire() {
                    return Ok(Err(e.into()));
                }
                match self.table.push(handle) {
                    Ok(r) => Ok(Ok(r)),
                    Err(e) => {
                        self.ctx.release();
                        Err(e.into())
                    }
                }
            }
        }

        impl $v::store::HostBucket for CacheCtxView<'_> {
            fn get(
                &mut self,
                h: Resource<StoreHandle>,
                key: String,
            ) -> wasmtime::Result<Result<Option<Vec<u8>>, $v::store::Error>> {
                Ok(self.kv(&h, |s, b| s.get(b, &key))?.map_err(Into::into))
            }

            fn set(
                &mut self,
                h: Resource<StoreHandle>,
                key: String,
                value: Vec<u8>,
            ) -> wasmtime::Result<Result<(), $v::store::Error>> {
                Ok(self
                    .kv(&h, |s, b| s.set(b, &key, &value, None))?
                    .map_err(Into::into))
            }

            fn delete(
                &mut self,
                h: Resource<StoreHandle>,
                key: String,
            ) -> wasmtime::Result<Result<(), $v::store::Error>> {
                Ok(self
                    .kv(&h, |s, b| s.delete(b, &key).map(drop))?
                    .map_err(Into::into))
            }

            fn exists(
                &mut self,
                h: Resource<StoreHandle>,
                key: String,
            ) -> wasmtime::Result<Result<bool, $v::store::Error>> {
                Ok(self.kv(&h, |s, b| s.contains(b, &key))?.map_err(Into::into))
            }

            fn list_keys(
                &mut self,
                h: Resource<StoreHandle>,
                cursor: Option<kv_cursor!($v)>,
            ) -> wasmtime::Result<Result<$v::store::KeyResponse, $v::store::Error>> {
                Ok(self
                    .kv(&h, |s, b| list_keys!($v, s, b, cursor))?
                    .map_err(Into::into))
            }

            fn drop(&mut self, h: Resource<StoreHandle>) -> wasmtime::Result<()> {
                self.table.delete(h)?;
                self.ctx.release();
                Ok(())
            }
        }

        impl $v::batch::Host for CacheCtxView<'_> {
            fn get_many(
                &mut self,
                h: Resource<StoreHandle>,
                keys: Vec<String>,
            ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, $v::store::Error>> {
                let r = self.kv(&h, |s, b| s.get_many(b, &keys))?;
                Ok(r.map_err(Into::into).map(|values| {
                    keys.into_iter()
                        .zip(values)
                        .map(|(k, v)| v.map(|v| (k, v)))
                        .collect()
                }))
            }

            fn set_many(
                &mut self,
                h: Resource<StoreHandle>,
                key_values: Vec<(String, Vec<u8>)>,
            ) -> wasmtime::Result<Result<(), $v::store::Error>> {
                Ok(self
                    .kv(&h, |s, b| s.set_many(b, &key_values, None))?
                    .map_err(Into::into))
            }

            fn delete_many(
                &mut self,
                h: Resource<StoreHandle>,
                keys: Vec<String>,
            ) -> wasmtime::Result<Result<(), $v::store::Error>> {
                Ok(self
                    .kv(&h, |s, b| {
                        if keys.len() > crate::scope::MAX_BATCH {
                            return Err(WitError::QuotaExceeded(format!(
                                "more than {} keys in one call",
                                crate::scope::MAX_BATCH
                            )));
                        }
                        keys.iter().try_for_each(|k| s.delete(b, k).map(drop))
                    })?
                    .map_err(Into::into))
            }
        }
    };
}

macro_rules! kv_cursor {
    (d1) => {
        u64
    };
    (d2) => {
        String
    };
}

macro_rules! list_keys {
    (d1, $s:ident, $b:ident, $cursor:ident) => {
        $s.keys_at_offset($b, $cursor.unwrap_or(0), KV_PAGE)
            .map(|(keys, cursor)| d1::store::KeyResponse { keys, cursor })
    };
    (d2, $s:ident, $b:ident, $cursor:ident) => {
        $s.keys($b, "", $cursor.as_deref(), KV_PAGE)
            .map(|p| d2::store::KeyResponse {
                keys: p.keys,
                cursor: p.cursor,
            })
    };
}

impl CacheCtxView<'_> {
    /// Runs a bucket operation on the handle `h`.
    fn kv<T>(
        &mut self,
        h: &Resource<StoreHandle>,
        f: impl FnOnce(&crate::PluginScope, &StoreHandle) -> Result<T, WitError>,
    ) -> wasmtime::Result<Result<T, WitError>> {
        let handle = self.table.get(h)?;
        Ok(f(self.ctx.scope(), handle))
    }

    /// Pushes a new CAS handle, counted against the handle cap.
    fn push_cas(
        &mut self,
        cas: CasHandle,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, WitError>> {
        if let Err(e) = self.ctx.acquire() {
            return Ok(Err(e));
        }
        match self.table.push(cas) {
            Ok(r) => Ok(Ok(r)),
            Err(e) => {
                self.ctx.release();
                Err(e.into())
            }
        }
    }
}

common!(d1);
common!(d2);

impl d1::atomics::Host for CacheCtxView<'_> {
    fn increment(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, d1::store::Error>> {
        Ok(self
            .kv(&h, |s, b| s.increment_u64(b, &key, delta))?
            .map_err(Into::into))
    }
}

impl d2::atomics::Host for CacheCtxView<'_> {
    fn increment(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, d2::store::Error>> {
        Ok(self
            .kv(&h, |s, b| s.incr(b, &key, delta, 0))?
            .map_err(Into::into))
    }

    fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), d2::atomics::CasError>> {
        // The handle is consumed whatever happens.
        let handle = self.table.delete(cas)?;
        self.ctx.release();
        let scope = self.ctx.scope().clone();
        match scope.cas_swap(&handle, &value) {
            Ok(()) => Ok(Ok(())),
            Err(SwapError::Op(e)) => Ok(Err(d2::atomics::CasError::StoreError(e.into()))),
            Err(SwapError::Changed) => {
                let fresh = match scope.cas_renew(&handle) {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(d2::atomics::CasError::StoreError(e.into()))),
                };
                Ok(match self.push_cas(fresh)? {
                    Ok(r) => Err(d2::atomics::CasError::CasFailed(r)),
                    Err(e) => Err(d2::atomics::CasError::StoreError(e.into())),
                })
            }
        }
    }
}

impl d2::atomics::HostCas for CacheCtxView<'_> {
    fn new(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, d2::store::Error>> {
        let cas = match self.kv(&h, |s, b| s.cas_new(b, &key))? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self.push_cas(cas)?.map_err(Into::into))
    }

    fn current(
        &mut self,
        h: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, d2::store::Error>> {
        let cas = self.table.get(&h)?;
        Ok(Ok(self.ctx.scope().cas_current(cas)))
    }

    fn drop(&mut self, h: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        self.ctx.release();
        Ok(())
    }
}
