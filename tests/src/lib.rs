//! Helpers shared by the cross-crate integration tests (child-process workers live in
//! `src/bin/`).
//!
//! Values written by workers are derived deterministically from `(key, version)` by
//! [`payload`], so a parent process can verify the exact bytes a child acknowledged
//! without the bytes crossing the pipe, and can tell which version a stored value is by
//! [`parse_payload`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file threshold the worker suites use: values of at least this many bytes go to
/// files, so small and file-backed values are both exercised.
pub const SMALL_THRESHOLD: usize = 64;

/// Number of keys the crash writer uses per thread (see [`crash_key`]).
pub const CRASH_KEYS: usize = 24;

/// Key `i` (of [`CRASH_KEYS`]) of writer thread `thread` in the crash tests: each thread
/// has its own keys, so that each one's operations can be checked on their own.
pub fn crash_key(thread: usize, i: usize) -> String {
    format!("t{thread}k{i:02}")
}

/// Name of the SQLite file inside a store directory.
pub const DB_FILE: &str = "sciqlop-cache.db";

/// SplitMix64 step: a fast, well-mixed deterministic generator.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_of(key: &str, version: u64) -> u64 {
    // FNV-1a over the key, then mixed with the version.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut s = h ^ version.rotate_left(17);
    splitmix(&mut s)
}

/// The value written for `key` at `version`: a header `"<key>#<version>#"` followed by
/// pseudo-random filler. About a third of the values are at least
/// [`SMALL_THRESHOLD`] bytes long (file-backed with `.file_threshold(SMALL_THRESHOLD)`),
/// the others are small (inline).
pub fn payload(key: &str, version: u64) -> Vec<u8> {
    build_payload(key, version, |r, header_len| {
        if r.is_multiple_of(3) {
            SMALL_THRESHOLD + (r >> 8) as usize % 6000
        } else {
            header_len + (r >> 8) as usize % 24
        }
    })
}

/// The value the soak test writes for `key` at `version`: like [`payload`], with the
/// soak's spread of sizes, from the header (about 20 bytes) to 1 MiB: 70 % under
/// 1 KiB (inline with the default file threshold), 27 % from 1 KiB to 64 KiB, 3 % from
/// 64 KiB to 1 MiB.
pub fn soak_payload(key: &str, version: u64) -> Vec<u8> {
    build_payload(key, version, soak_len)
}

/// The length of [`soak_payload`]`(key, version)`, without making it.
pub fn soak_payload_len(key: &str, version: u64) -> usize {
    let mut s = seed_of(key, version);
    let r = splitmix(&mut s);
    let header_len = format!("{key}#{version}#").len();
    soak_len(r, header_len).max(header_len)
}

fn soak_len(r: u64, _header_len: usize) -> usize {
    let n = (r >> 8) as usize;
    match r % 100 {
        0..70 => 10 + n % 1014,
        70..97 => 1024 + n % (63 * 1024),
        _ => 64 * 1024 + n % (960 * 1024 + 1),
    }
}

/// Header and filler of `key` at `version`, as long as `len_of(r, header_len)` says (at
/// least the header), `r` being the first draw of the value's generator.
fn build_payload(key: &str, version: u64, len_of: impl Fn(u64, usize) -> usize) -> Vec<u8> {
    let mut s = seed_of(key, version);
    let r = splitmix(&mut s);
    let header = format!("{key}#{version}#");
    let header_len = header.len();
    let len = len_of(r, header_len);
    let mut v = header.into_bytes();
    v.reserve(len.saturating_sub(header_len) + 8);
    while v.len() < len {
        v.extend_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    v.truncate(len.max(header_len));
    v
}

/// The version recorded in a [`payload`] of `key`, if `bytes` is exactly
/// `payload(key, version)` for some version.
pub fn parse_payload(key: &str, bytes: &[u8]) -> Option<u64> {
    parse_with(key, bytes, payload)
}

/// The version recorded in a [`soak_payload`] of `key`, if `bytes` is exactly
/// `soak_payload(key, version)` for some version.
pub fn parse_soak_payload(key: &str, bytes: &[u8]) -> Option<u64> {
    parse_with(key, bytes, soak_payload)
}

fn parse_with(key: &str, bytes: &[u8], make: fn(&str, u64) -> Vec<u8>) -> Option<u64> {
    let rest = bytes.strip_prefix(key.as_bytes())?.strip_prefix(b"#")?;
    let end = rest.iter().position(|b| *b == b'#')?;
    let version: u64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (make(key, version) == bytes).then_some(version)
}

/// Short description of a value for assertion messages.
pub fn describe(key: &str, v: Option<&[u8]>) -> String {
    match v {
        None => "absent".to_owned(),
        Some(b) => match parse_payload(key, b) {
            Some(ver) => format!("version {ver} ({} bytes)", b.len()),
            None => format!(
                "{} unrecognised bytes starting {:?}",
                b.len(),
                String::from_utf8_lossy(&b[..b.len().min(40)])
            ),
        },
    }
}

/// Reads an unsigned number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Final value files (`data/<bucket>/*.val`) of a store directory.
pub fn value_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(buckets) = std::fs::read_dir(dir.join("data")) else {
        return out;
    };
    for bucket in buckets.flatten() {
        if bucket.file_name() == "tmp" || !bucket.path().is_dir() {
            continue;
        }
        if let Ok(files) = std::fs::read_dir(bucket.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out.sort();
    out
}

/// Temporary value files (`*.tmp`) left in `data/tmp` (not the lock files of the
/// processes that own them).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("data").join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Opens the store's database read-only (no WAL writes, no schema change) to look at
/// rows directly.
pub fn open_db_read_only(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join(DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database read-only");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("set busy timeout");
    conn
}

/// Number of rows whose value lives in a file.
pub fn file_backed_rows(dir: &Path) -> u64 {
    let conn = open_db_read_only(dir);
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM entries WHERE file IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count file-backed rows");
    n as u64
}

/// `file` column of every file-backed row, by key.
pub fn file_rows(dir: &Path) -> BTreeMap<String, String> {
    let conn = open_db_read_only(dir);
    let mut st = conn
        .prepare("SELECT key, file FROM entries WHERE file IS NOT NULL")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// A child process's stdout, read on a thread so the child never blocks on a full pipe.
pub struct LineReader {
    handle: std::thread::JoinHandle<Vec<u8>>,
}

impl LineReader {
    /// Starts reading `out` to its end.
    pub fn spawn(mut out: impl std::io::Read + Send + 'static) -> Self {
        let handle = std::thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error (e.g. the child killed mid-write) just ends the output.
            let _ = out.read_to_end(&mut buf);
            buf
        });
        LineReader { handle }
    }

    /// Complete lines (a trailing line without its newline was cut short and is dropped).
    pub fn lines(self) -> Vec<String> {
        let buf = self.handle.join().expect("reader thread");
        let text = String::from_utf8_lossy(&buf);
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        // The element after the last '\n' is empty or an incomplete line.
        lines.pop();
        lines
    }
}

/// Whether this process runs as root (which ignores file permissions).
#[allow(unsafe_code)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sets `mode` on `path` and, for a directory, on everything below it (directories get
/// `dir_mode`, files `file_mode`).
pub fn chmod_tree(path: &Path, dir_mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).expect("metadata");
    if meta.is_dir() {
        for e in std::fs::read_dir(path).expect("read_dir").flatten() {
            chmod_tree(&e.path(), dir_mode, file_mode);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(dir_mode))
            .expect("chmod dir");
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(file_mode))
            .expect("chmod file");
    }
}

/// Overwrites the cells of the first two leaf pages of the database file `db` that
/// hold every one of `needles` (a key prefix and bytes of the values, so that they are
/// leaves of the entries B-tree, not of an index): a disk that lost them. Panics when
/// there are not two such pages.
pub fn damage_two_leaves(db: &Path, needles: &[&[u8]]) {
    use std::io::{Read, Seek, SeekFrom, Write};
    const PAGE: usize = 4096;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .expect("open db");
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).expect("read db");
    let leaves: Vec<usize> = (1..bytes.len() / PAGE)
        .filter(|&p| {
            let page = &bytes[p * PAGE..(p + 1) * PAGE];
            // 0x0A: a leaf page of an index B-tree (a WITHOUT ROWID table's format).
            page[0] == 0x0A
                && needles
                    .iter()
                    .all(|n| page.windows(n.len()).any(|w| w == *n))
        })
        .collect();
    assert!(
        leaves.len() >= 2,
        "leaf pages holding {needles:?}: {leaves:?}"
    );
    for p in &leaves[..2] {
        f.seek(SeekFrom::Start((*p * PAGE + 200) as u64))
            .expect("seek");
        f.write_all(&[0xde; PAGE - 300]).expect("damage");
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`), if it is
/// still there.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Number of open file descriptors of process `pid` (entries of `/proc/PID/fd`), if
/// it is still there.
pub fn open_fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|rd| rd.flatten().count() as u64)
}
