//! Transactions: begun, committed and rolled back on one thread.
//!
//! The core's `Transaction` is not `Send` (SQLite's transaction belongs to the thread's
//! connection use), so an open transaction lives in a table of the thread that began
//! it; a process-wide table only records which thread owns each id, so that a commit
//! from another thread is `SQC_STATUS_WRONG_THREAD` (and the transaction stays open)
//! rather than "unknown handle". A thread that exits rolls back what it left open.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::Arc;
use std::thread::ThreadId;

use sqc_core::Transaction;

use crate::args::{self, Out};
use crate::error::{Res, fail, guard, sqc_status};
use crate::handles::{IdMap, Registry, new_id};
use crate::store::{StoreObj, store};
use crate::types::{sqc_store, sqc_tx};

type MaybeTx<'a> = Option<Transaction<'a>>;

self_cell::self_cell!(
    /// A transaction next to the store it runs on (kept alive by the `Arc`).
    struct TxCell {
        owner: Arc<StoreObj>,
        #[covariant]
        dependent: MaybeTx,
    }
);

/// Which thread owns each open transaction.
static OWNERS: Registry<ThreadId> = Registry::new("transaction");

/// This thread's open transactions; rolled back (and unregistered) when it exits.
struct Local(IdMap<TxCell>);

impl Drop for Local {
    fn drop(&mut self) {
        for (id, cell) in self.0.drain() {
            let _ = OWNERS.remove(id);
            // Rolling back during thread teardown: never let a panic escape a TLS
            // destructor (that aborts the process).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(cell)));
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local(IdMap::default()));
}

/// Begins a transaction on `store` (on a fanout: on the shard of `key`, which is then
/// required, and the transaction covers that shard's keys only: writing a key of
/// another shard meanwhile fails with `SQC_STATUS_WRONG_SHARD`, reading one is fine;
/// single stores ignore `key`, null is fine). Until it ends, everything this
/// thread does on the store joins it; one begun inside another is a savepoint. Other
/// threads and processes see nothing until the commit and their writes wait for it, so
/// the thread must not wait for another thread's write meanwhile. It must be committed
/// or rolled back by this thread (a thread that exits rolls back what it left open).
///
/// # Safety
/// `key` null or valid for its length; `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_tx_begin(
    store: sqc_store,
    key: *const c_char,
    key_len: usize,
    out: *mut sqc_tx,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (key, out) = unsafe { (args::opt_text(key, key_len, "key")?, Out::new(out, "out")?) };
        let obj = self::store(store)?;
        let cell = TxCell::try_new(obj, |o| o.begin(key).map(Some))?;
        let id = new_id();
        LOCAL.with_borrow_mut(|l| l.0.insert(id, cell));
        OWNERS.insert_as(id, std::thread::current().id());
        out.set(sqc_tx { id });
        Ok(())
    })
}

/// Takes this thread's transaction `id` out of its table, or says why it cannot.
fn take(id: u64) -> Res<TxCell> {
    if let Some(cell) = LOCAL.with_borrow_mut(|l| l.0.remove(&id)) {
        let _ = OWNERS.remove(id);
        return Ok(cell);
    }
    match OWNERS.get(id) {
        Ok(owner) => Err(fail(
            sqc_status::WrongThread,
            format!(
                "transaction {id} belongs to thread {owner:?}, not to {:?}: it must end on the thread that began it (it is still open)",
                std::thread::current().id()
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Commits: the outermost transaction makes its writes durable and visible, a nested
/// one joins its parent. The handle is invalid afterwards, whatever the outcome (on
/// failure nothing of the transaction was written).
#[unsafe(no_mangle)]
pub extern "C" fn sqc_tx_commit(tx: sqc_tx) -> sqc_status {
    guard(|| {
        let mut cell = take(tx.id)?;
        cell.with_dependent_mut(|_, t| t.take().map_or(Ok(()), Transaction::commit))?;
        Ok(())
    })
}

/// Rolls back everything done in the transaction (value files included). The handle
/// is invalid afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_tx_rollback(tx: sqc_tx) -> sqc_status {
    guard(|| {
        drop(take(tx.id)?);
        Ok(())
    })
}
