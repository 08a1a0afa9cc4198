//! The counter encoding shared by `incr`/`decr`, `get`, and the WebAssembly interfaces.
//!
//! A counter is stored as the canonical ASCII decimal form of an `i64`: an optional `-`
//! followed by digits, no leading zeros (except `0` itself), no `+`, no spaces. So
//! `cache.get("hits")` after `incr` returns e.g. `b"42"`, readable by people and by any
//! language. Anything else is not a counter, and `incr` on it fails with
//! [`Error::NotACounter`](crate::Error::NotACounter) instead of overwriting it.

/// Longest encoded counter in bytes (`-9223372036854775808`).
pub const MAX_LEN: usize = 20;

/// Decodes a counter value, or `None` if the bytes are not a canonical counter.
///
/// ```
/// use sciqlop_cache::counter;
/// assert_eq!(counter::decode(b"-17"), Some(-17));
/// assert_eq!(counter::decode(b"017"), None);
/// assert_eq!(counter::decode(&counter::encode(i64::MIN)), Some(i64::MIN));
/// ```
pub fn decode(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    if bytes == b"-0" {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Encodes a counter value.
pub fn encode(value: i64) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_non_canonical() {
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"00",
            b"-0",
            b"1.5",
            b"99999999999999999999",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(decode(b"0"), Some(0));
        assert_eq!(decode(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(decode(b"9223372036854775808"), None);
    }

    proptest! {
        #[test]
        fn round_trips(v: i64) {
            prop_assert_eq!(decode(&encode(v)), Some(v));
        }
    }
}
