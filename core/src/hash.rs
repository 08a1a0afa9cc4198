//! XXH3-64 (seed 0): the crate's one hash, for fanout routing and value-file checksums.
//!
//! From `twox-hash`, which picks AVX2, SSE2 or NEON at run time (about 1.5× the speed of
//! a build limited to SSE2 on 1 MiB values on the benchmark machine). The output is the
//! standard XXH3, checked against an independent implementation below, so stores
//! written before keep their checksums and shard routing.

#[cfg(feature = "sqlite")]
use std::hash::Hasher;

use twox_hash::XxHash3_64;

/// The XXH3-64 of `bytes`.
pub(crate) fn xxh3_64(bytes: &[u8]) -> u64 {
    XxHash3_64::oneshot(bytes)
}

/// XXH3-64 over bytes given in parts (the same result as [`xxh3_64`] of them joined).
#[cfg(feature = "sqlite")]
pub(crate) struct Xxh3(XxHash3_64);

#[cfg(feature = "sqlite")]
impl Xxh3 {
    pub(crate) fn new() -> Self {
        Xxh3(XxHash3_64::with_seed(0))
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    pub(crate) fn digest(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn the_standard_xxh3_whole_and_in_parts() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(31) % 251) as u8)
            .collect();
        // Every length class of XXH3 (0, 1-3, 4-8, 9-16, 17-128, 129-240, long, several
        // blocks), against xxhash-rust.
        for len in [
            0,
            1,
            3,
            4,
            8,
            9,
            16,
            17,
            128,
            129,
            240,
            241,
            1023,
            1024,
            16_384,
            1 << 20,
            3_000_000,
        ] {
            let want = xxhash_rust::xxh3::xxh3_64(&data[..len]);
            assert_eq!(xxh3_64(&data[..len]), want, "len {len}");
            let mut h = Xxh3::new();
            for part in data[..len].chunks(65_536) {
                h.update(part);
            }
            assert_eq!(h.digest(), want, "len {len} in parts");
        }
    }
}
