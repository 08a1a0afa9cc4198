//! Sharded stores: keys routed to one of N independent stores.

use xxhash_rust::xxh3::xxh3_64;

/// The shard of `key` among `count` shards: xxh3-64 of the key's UTF-8 bytes modulo
/// `count`. Stable across processes, platforms and releases (it is part of the on-disk
/// format of a fanout directory).
pub fn shard_of(key: &str, count: u32) -> u32 {
    (xxh3_64(key.as_bytes()) % u64::from(count.max(1))) as u32
}
