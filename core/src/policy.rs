//! Store kinds: which features of an engine a store uses.
//!
//! A [`Kind`] is the run-time description an engine is opened with and records on disk;
//! a [`Policy`] is its compile-time face, which decides the methods a
//! [`Store`](crate::Store) offers: [`CacheKind`] (expiry, tags, LRU eviction, stats),
//! [`IndexKind`] (none of them) and [`AnyKind`] (whatever the store on disk is, for
//! tools that open any store: the cache-only methods then fail with
//! [`Error::Unsupported`](crate::Error::Unsupported) on an index).

/// The features a store uses, as engines see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Kind {
    /// Name recorded on disk and shown in messages (`"cache"`, `"index"`).
    pub name: &'static str,
    /// Entries may carry an expiry time; reads filter expired entries.
    pub expiry: bool,
    /// Reads count as use for LRU eviction under `max_size`.
    pub lru: bool,
    /// Entries may carry a tag.
    pub tags: bool,
    /// Hits and misses are counted.
    pub stats: bool,
}

impl Kind {
    /// Full-featured cache.
    pub const CACHE: Kind = Kind {
        name: "cache",
        expiry: true,
        lru: true,
        tags: true,
        stats: true,
    };

    /// Bare key-value store.
    pub const INDEX: Kind = Kind {
        name: "index",
        expiry: false,
        lru: false,
        tags: false,
        stats: false,
    };

    /// The kind recorded under `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::CACHE, Kind::INDEX]
            .into_iter()
            .find(|k| k.name == name)
    }
}

/// The compile-time kind of a [`Store`](crate::Store). Sealed: [`CacheKind`],
/// [`IndexKind`] and [`AnyKind`].
pub trait Policy: sealed::Sealed + Send + Sync + 'static {
    /// The kind, or `None` to adopt the kind found on disk ([`AnyKind`]).
    const KIND: Option<Kind>;
    /// Name shown in messages.
    const NAME: &'static str = match Self::KIND {
        Some(k) => k.name,
        None => "any",
    };
}

/// Full-featured cache: expiry, tags, LRU eviction by size, hit/miss statistics.
#[derive(Debug, Clone, Copy)]
pub struct CacheKind;

/// Bare persistent key-value store: no expiry, eviction, tags or statistics overhead.
#[derive(Debug, Clone, Copy)]
pub struct IndexKind;

/// Whatever kind the store on disk is (tools that open any store). Creating a store
/// needs a concrete kind.
#[derive(Debug, Clone, Copy)]
pub struct AnyKind;

impl Policy for CacheKind {
    const KIND: Option<Kind> = Some(Kind::CACHE);
}

impl Policy for IndexKind {
    const KIND: Option<Kind> = Some(Kind::INDEX);
}

impl Policy for AnyKind {
    const KIND: Option<Kind> = None;
}

/// Kinds whose stores offer the cache methods (expiry, tags, stats, eviction).
pub trait CacheApi: Policy {}
impl CacheApi for CacheKind {}
impl CacheApi for AnyKind {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CacheKind {}
    impl Sealed for super::IndexKind {}
    impl Sealed for super::AnyKind {}
}
