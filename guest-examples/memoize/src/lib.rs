//! Memoizing plugin: counts the primes below N (a sieve, seconds for large N) and keeps
//! the answer in its `memo` store with a time to live, so later invocations, even after
//! the host restarts, answer at once until the entry expires.
//!
//! Usage: `primes N [TTL_SECONDS]` (default TTL 3600), `forget N`, `forget-all`.

use std::time::Duration;

use cache_guest::{Cache, Plugin, SetOptions, describe};

struct Memoize;

const DEFAULT_TTL_S: u64 = 3600;
const TAG: &str = "primes";

fn count_primes_below(n: u64) -> u64 {
    let n = n as usize;
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0u64;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}

fn parse_u64(s: Option<&String>, what: &str) -> Result<u64, String> {
    s.ok_or(format!("missing {what}"))?
        .parse()
        .map_err(|e| format!("bad {what}: {e}"))
}

impl Plugin for Memoize {
    fn run(args: Vec<String>) -> Result<String, String> {
        let cache = Cache::open("memo").map_err(|e| describe(&e))?;
        match args.first().map(String::as_str) {
            Some("primes") => {
                let n = parse_u64(args.get(1), "N")?;
                if n > 200_000_000 {
                    return Err("N too large for this example (max 200000000)".into());
                }
                let ttl = match args.get(2) {
                    Some(_) => parse_u64(args.get(2), "TTL")?,
                    None => DEFAULT_TTL_S,
                };
                let key = format!("primes-below:{n}");
                if let Some(v) = cache.get(&key).map_err(|e| describe(&e))? {
                    let count = String::from_utf8_lossy(&v).into_owned();
                    return Ok(format!("primes below {n}: {count} (cached)"));
                }
                let count = count_primes_below(n);
                let opts = SetOptions::new().expire(Duration::from_secs(ttl)).tag(TAG);
                cache
                    .set_with(&key, count.to_string(), &opts)
                    .map_err(|e| describe(&e))?;
                Ok(format!(
                    "primes below {n}: {count} (computed, kept {ttl} s)"
                ))
            }
            Some("forget") => {
                let n = parse_u64(args.get(1), "N")?;
                let existed = cache
                    .delete(&format!("primes-below:{n}"))
                    .map_err(|e| describe(&e))?;
                Ok(if existed { "forgotten" } else { "not cached" }.into())
            }
            Some("forget-all") => {
                let n = cache.evict_tag(TAG).map_err(|e| describe(&e))?;
                Ok(format!("forgot {n} results"))
            }
            _ => Err("usage: primes N [TTL_SECONDS] | forget N | forget-all".into()),
        }
    }
}

cache_guest::export_plugin!(Memoize);

#[cfg(test)]
mod tests {
    #[test]
    fn sieve() {
        assert_eq!(super::count_primes_below(10), 4);
        assert_eq!(super::count_primes_below(100), 25);
    }
}
