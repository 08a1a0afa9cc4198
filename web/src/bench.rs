//! The set/get workload timed in node (wasm) and natively, for comparison.
//!
//! `n` values of `value_len` bytes are written under distinct keys, then read back once
//! each; the result is the mean time per operation of each phase.

use sciqlop_cache::{Cache, Result};

/// Mean microseconds per operation of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Number of keys written and read.
    pub n: u32,
    /// Mean µs per `set`.
    pub set_us: f64,
    /// Mean µs per `get` (all hits).
    pub get_us: f64,
}

/// Runs the workload on `cache` (assumed empty), timing with `now_ms` (milliseconds
/// from any origin). Fails if a value read back differs from the one written.
pub fn run(
    cache: &Cache,
    n: u32,
    value_len: usize,
    now_ms: impl Fn() -> f64,
) -> Result<BenchResult> {
    let keys: Vec<String> = (0..n).map(|i| format!("bench/{i:08}")).collect();
    let value = vec![0xA5u8; value_len];
    let t0 = now_ms();
    for k in &keys {
        cache.set(k, &value)?;
    }
    let t1 = now_ms();
    let mut bytes = 0usize;
    for k in &keys {
        match cache.get(k)? {
            Some(v) if v == value => bytes += v.len(),
            other => {
                return Err(sciqlop_cache::Error::InvalidArgument(format!(
                    "bench read back {other:?} for {k}"
                )));
            }
        }
    }
    let t2 = now_ms();
    debug_assert_eq!(bytes, value_len * n as usize);
    let per_op = |ms: f64| ms * 1000.0 / f64::from(n.max(1));
    Ok(BenchResult {
        n,
        set_us: per_op(t1 - t0),
        get_us: per_op(t2 - t1),
    })
}
