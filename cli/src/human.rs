//! Human-readable quantities.

/// Formats a byte count with binary units: `512 B`, `1.5 KiB`, `20.0 MiB`.
///
/// ```
/// assert_eq!(sqcache::human::bytes(512), "512 B");
/// assert_eq!(sqcache::human::bytes(1536), "1.5 KiB");
/// assert_eq!(sqcache::human::bytes(3 << 30), "3.0 GiB");
/// ```
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Formats a duration rounded to milliseconds (or whole seconds past a minute), in
/// humantime's notation: `1.234s` becomes `1s 234ms`.
pub fn duration(d: std::time::Duration) -> String {
    let d = if d.as_secs() >= 60 {
        std::time::Duration::from_secs(d.as_secs())
    } else {
        std::time::Duration::from_millis(d.as_millis() as u64)
    };
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 + 512 * 1024), "10.5 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_micros(1_234_567)), "1s 234ms");
        assert_eq!(duration(Duration::from_secs(3723)), "1h 2m 3s");
        assert_eq!(duration(Duration::from_micros(10)), "0s");
    }
}
