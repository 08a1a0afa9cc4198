//! Store kinds: which features of the one engine a store type switches on.

/// The features a store kind uses. Implemented by [`CacheKind`] and [`IndexKind`]; the
/// trait is sealed so the engine can rely on the two known configurations.
pub trait Policy: sealed::Sealed + Send + Sync + 'static {
    /// Name recorded on disk and shown in messages.
    const NAME: &'static str;
    /// Entries may carry an expiry time; reads filter expired entries.
    const EXPIRY: bool;
    /// Reads count as use for LRU eviction under `max_size`.
    const LRU: bool;
    /// Entries may carry a tag.
    const TAGS: bool;
    /// Hits and misses are counted.
    const STATS: bool;
}

/// Full-featured cache: expiry, tags, LRU eviction by size, hit/miss statistics.
#[derive(Debug, Clone, Copy)]
pub struct CacheKind;

/// Bare persistent key-value store: no expiry, eviction, tags or statistics overhead.
#[derive(Debug, Clone, Copy)]
pub struct IndexKind;

impl Policy for CacheKind {
    const NAME: &'static str = "cache";
    const EXPIRY: bool = true;
    const LRU: bool = true;
    const TAGS: bool = true;
    const STATS: bool = true;
}

impl Policy for IndexKind {
    const NAME: &'static str = "index";
    const EXPIRY: bool = false;
    const LRU: bool = false;
    const TAGS: bool = false;
    const STATS: bool = false;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CacheKind {}
    impl Sealed for super::IndexKind {}
}
