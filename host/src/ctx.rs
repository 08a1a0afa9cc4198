//! The per-invocation cache context, the view trait embedders implement, and the
//! implementation of the generated WIT host traits.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::sciqlop::cache::cache::{self as wit, HostStore, HostTransaction};
use crate::bindings::sciqlop::cache::types::{
    self as wit_types, Error as WitError, KeyPage, SetOptions, Stats,
};
use crate::scope::{PluginScope, StoreHandle, TxBudget, TxHandle};

/// The cache state of one plugin instance: which plugin it is (decided by the host,
/// never by the plugin) and how many handles it holds.
#[derive(Debug)]
pub struct CacheCtx {
    scope: Arc<PluginScope>,
    open_handles: u32,
    /// Bytes buffered by the instance's open transactions together.
    tx_budget: TxBudget,
}

impl CacheCtx {
    /// A context for an instance of the plugin owning `scope`.
    pub fn new(scope: Arc<PluginScope>) -> Self {
        CacheCtx {
            scope,
            open_handles: 0,
            tx_budget: TxBudget::default(),
        }
    }

    /// The plugin's namespace.
    pub fn scope(&self) -> &Arc<PluginScope> {
        &self.scope
    }

    /// Store and transaction handles currently open.
    pub fn open_handles(&self) -> u32 {
        self.open_handles
    }

    /// Bytes the instance's open transactions buffer together (at most the plugin's
    /// `max_bytes`).
    pub fn transaction_bytes(&self) -> u64 {
        self.tx_budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn acquire(&mut self) -> Result<(), WitError> {
        let max = self.scope.policy().limits.max_handles;
        if self.open_handles >= max {
            return Err(WitError::QuotaExceeded(format!(
                "more than {max} open store/transaction handles"
            )));
        }
        self.open_handles += 1;
        Ok(())
    }

    pub(crate) fn release(&mut self) {
        self.open_handles = self.open_handles.saturating_sub(1);
    }
}

/// What the cache host functions borrow from the store's data: the context and the
/// resource table (shared with WASI, as in `wasmtime_wasi::WasiCtxView`).
pub struct CacheCtxView<'a> {
    /// The plugin's cache context.
    pub ctx: &'a mut CacheCtx,
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by an embedder's store data to give the cache functions their context.
///
/// ```ignore
/// struct MyState { wasi: WasiCtx, cache: CacheCtx, table: ResourceTable }
/// impl CacheView for MyState {
///     fn cache(&mut self) -> CacheCtxView<'_> {
///         CacheCtxView { ctx: &mut self.cache, table: &mut self.table }
///     }
/// }
/// sciqlop_cache_host::add_to_linker(&mut linker)?;
/// ```
pub trait CacheView: Send {
    /// The cache context and resource table of this store.
    fn cache(&mut self) -> CacheCtxView<'_>;
}

struct HasCache;

impl HasData for HasCache {
    type Data<'a> = CacheCtxView<'a>;
}

/// Adds the `sciqlop:cache` imports to `linker`. For the standard `wasi:keyvalue`
/// imports on the same context, also call
/// [`add_keyvalue_to_linker`](crate::add_keyvalue_to_linker).
pub fn add_to_linker<T: CacheView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit_types::add_to_linker::<T, HasCache>(linker, T::cache)?;
    wit::add_to_linker::<T, HasCache>(linker, T::cache)?;
    Ok(())
}

type Ret<T> = wasmtime::Result<Result<T, WitError>>;

impl CacheCtxView<'_> {
    /// Runs a store operation on the handle `h`.
    fn with_store<T>(
        &mut self,
        h: &Resource<StoreHandle>,
        f: impl FnOnce(&PluginScope, &StoreHandle) -> Result<T, WitError>,
    ) -> Ret<T> {
        let handle = self.table.get(h)?;
        Ok(f(&self.ctx.scope, handle))
    }

    /// Runs a transaction operation on the handle `h`.
    fn with_tx<T>(
        &mut self,
        h: &Resource<TxHandle>,
        f: impl FnOnce(&PluginScope, &mut TxHandle) -> Result<T, WitError>,
    ) -> Ret<T> {
        let tx = self.table.get_mut(h)?;
        Ok(f(&self.ctx.scope, tx))
    }
}

impl wit_types::Host for CacheCtxView<'_> {}

impl wit::Host for CacheCtxView<'_> {
    fn open(&mut self, name: String) -> Ret<Resource<StoreHandle>> {
        let handle = match self.ctx.scope.open_store(&name) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.ctx.acquire() {
            return Ok(Err(e));
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

impl HostStore for CacheCtxView<'_> {
    fn get(&mut self, h: Resource<StoreHandle>, key: String) -> Ret<Option<Vec<u8>>> {
        self.with_store(&h, |s, h| s.get(h, &key))
    }

    fn set(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
        o: Option<SetOptions>,
    ) -> Ret<()> {
        self.with_store(&h, |s, h| s.set(h, &key, &value, o.as_ref()))
    }

    fn add(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
        o: Option<SetOptions>,
    ) -> Ret<bool> {
        self.with_store(&h, |s, h| s.add(h, &key, &value, o.as_ref()))
    }

    fn delete(&mut self, h: Resource<StoreHandle>, key: String) -> Ret<bool> {
        self.with_store(&h, |s, h| s.delete(h, &key))
    }

    fn pop(&mut self, h: Resource<StoreHandle>, key: String) -> Ret<Option<Vec<u8>>> {
        self.with_store(&h, |s, h| s.pop(h, &key))
    }

    fn touch(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        expire_ms: Option<u64>,
    ) -> Ret<bool> {
        self.with_store(&h, |s, h| s.touch(h, &key, expire_ms))
    }

    fn contains(&mut self, h: Resource<StoreHandle>, key: String) -> Ret<bool> {
        self.with_store(&h, |s, h| s.contains(h, &key))
    }

    fn incr(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        delta: i64,
        default: i64,
    ) -> Ret<i64> {
        self.with_store(&h, |s, h| s.incr(h, &key, delta, default))
    }

    fn decr(
        &mut self,
        h: Resource<StoreHandle>,
        key: String,
        delta: i64,
        default: i64,
    ) -> Ret<i64> {
        self.with_store(&h, |s, h| s.decr(h, &key, delta, default))
    }

    fn evict_tag(&mut self, h: Resource<StoreHandle>, tag: String) -> Ret<u64> {
        self.with_store(&h, |s, h| s.evict_tag(h, &tag))
    }

    fn expire(&mut self, h: Resource<StoreHandle>) -> Ret<u64> {
        self.with_store(&h, |s, _| s.expire())
    }

    fn clear(&mut self, h: Resource<StoreHandle>) -> Ret<u64> {
        self.with_store(&h, |s, h| s.clear(h))
    }

    fn len(&mut self, h: Resource<StoreHandle>) -> Ret<u64> {
        self.with_store(&h, |s, h| s.len(h))
    }

    fn size(&mut self, h: Resource<StoreHandle>) -> Ret<u64> {
        self.with_store(&h, |s, _| s.size())
    }

    fn stats(&mut self, h: Resource<StoreHandle>) -> Ret<Stats> {
        self.with_store(&h, |s, _| Ok(s.stats()))
    }

    fn keys(
        &mut self,
        h: Resource<StoreHandle>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Ret<KeyPage> {
        self.with_store(&h, |s, h| s.keys(h, &prefix, cursor.as_deref(), limit))
    }

    fn get_many(
        &mut self,
        h: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> Ret<Vec<Option<Vec<u8>>>> {
        self.with_store(&h, |s, h| s.get_many(h, &keys))
    }

    fn set_many(
        &mut self,
        h: Resource<StoreHandle>,
        entries: Vec<(String, Vec<u8>)>,
        o: Option<SetOptions>,
    ) -> Ret<()> {
        self.with_store(&h, |s, h| s.set_many(h, &entries, o.as_ref()))
    }

    fn begin(&mut self, h: Resource<StoreHandle>) -> Ret<Resource<TxHandle>> {
        let tx = {
            let handle = self.table.get(&h)?;
            self.ctx.scope.begin(handle, &self.ctx.tx_budget)
        };
        if let Err(e) = self.ctx.acquire() {
            return Ok(Err(e));
        }
        match self.table.push(tx) {
            Ok(r) => Ok(Ok(r)),
            Err(e) => {
                self.ctx.release();
                Err(e.into())
            }
        }
    }

    fn drop(&mut self, h: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        self.ctx.release();
        Ok(())
    }
}

impl HostTransaction for CacheCtxView<'_> {
    fn get(&mut self, h: Resource<TxHandle>, key: String) -> Ret<Option<Vec<u8>>> {
        self.with_tx(&h, |s, tx| s.tx_get(tx, &key))
    }

    fn contains(&mut self, h: Resource<TxHandle>, key: String) -> Ret<bool> {
        self.with_tx(&h, |s, tx| s.tx_contains(tx, &key))
    }

    fn set(
        &mut self,
        h: Resource<TxHandle>,
        key: String,
        value: Vec<u8>,
        o: Option<SetOptions>,
    ) -> Ret<()> {
        self.with_tx(&h, |s, tx| s.tx_set(tx, &key, value, o.as_ref()))
    }

    fn add(
        &mut self,
        h: Resource<TxHandle>,
        key: String,
        value: Vec<u8>,
        o: Option<SetOptions>,
    ) -> Ret<bool> {
        self.with_tx(&h, |s, tx| s.tx_add(tx, &key, value, o.as_ref()))
    }

    fn delete(&mut self, h: Resource<TxHandle>, key: String) -> Ret<bool> {
        self.with_tx(&h, |s, tx| s.tx_delete(tx, &key))
    }

    fn incr(&mut self, h: Resource<TxHandle>, key: String, delta: i64, default: i64) -> Ret<i64> {
        self.with_tx(&h, |s, tx| s.tx_incr(tx, &key, delta, default))
    }

    fn decr(&mut self, h: Resource<TxHandle>, key: String, delta: i64, default: i64) -> Ret<i64> {
        self.with_tx(&h, |s, tx| s.tx_decr(tx, &key, delta, default))
    }

    fn commit(&mut self, h: Resource<TxHandle>) -> Ret<()> {
        self.with_tx(&h, |s, tx| s.tx_commit(tx))
    }

    fn rollback(&mut self, h: Resource<TxHandle>) -> wasmtime::Result<()> {
        let tx = self.table.get_mut(&h)?;
        self.ctx.scope.tx_rollback(tx);
        Ok(())
    }

    /// Dropping an uncommitted transaction discards its buffered writes.
    fn drop(&mut self, h: Resource<TxHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        self.ctx.release();
        Ok(())
    }
}
