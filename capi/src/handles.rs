//! The handle registry: handles are ids, never pointers, so a closed or unknown handle
//! is an error code and never a use-after-free. Ids come from one counter shared by all
//! kinds of handle and are never reused, so a lock's id passed as a store is unknown too.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::error::{Failure, fail, sqc_status};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh, never used id.
pub(crate) fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Ids are sequential: a multiplicative hash spreads them well enough, at a fraction of
/// SipHash's cost on every call.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(crate) type IdMap<T> = HashMap<u64, T, BuildHasherDefault<IdHasher>>;

/// Objects of one kind by id.
pub(crate) struct Registry<T> {
    what: &'static str,
    map: RwLock<IdMap<T>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(what: &'static str) -> Self {
        Registry {
            what,
            map: RwLock::new(HashMap::with_hasher(BuildHasherDefault::new())),
        }
    }

    pub(crate) fn unknown(&self, id: u64) -> Failure {
        fail(
            sqc_status::InvalidHandle,
            format!(
                "{} handle {id} is not open (closed or released already, never opened, or a handle of another kind)",
                self.what
            ),
        )
    }

    /// Registers `obj` under a new id.
    pub(crate) fn insert(&self, obj: T) -> u64 {
        let id = new_id();
        self.map.write().insert(id, obj);
        id
    }

    /// Registers `obj` under an id already taken with `new_id`.
    pub(crate) fn insert_as(&self, id: u64, obj: T) {
        self.map.write().insert(id, obj);
    }

    /// Removes the object of `id` and hands it over.
    pub(crate) fn remove(&self, id: u64) -> Result<T, Failure> {
        self.map.write().remove(&id).ok_or_else(|| self.unknown(id))
    }
}

impl<T: Clone> Registry<T> {
    /// A clone of the object of `id` (for an `Arc`: the registry lock is held only
    /// while cloning, never during the operation).
    pub(crate) fn get(&self, id: u64) -> Result<T, Failure> {
        self.map
            .read()
            .get(&id)
            .cloned()
            .ok_or_else(|| self.unknown(id))
    }
}
