//! The marker file of a fanout directory (`sciqlop-fanout.toml`: format, kind, shard
//! count) and the shard directories (`000`, `001`, …).
#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hash::xxh3_64;

use super::{DEFAULT_SHARDS, MAX_SHARDS};
use crate::policy::Kind;
use crate::{Error, Result};

/// Name of the file that marks a fanout directory.
pub const MARKER: &str = "sciqlop-fanout.toml";
const FORMAT: &str = "sciqlop-cache-fanout/1";

pub(crate) fn shard_dir(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("{i:03}"))
}

/// Reads the shard count of a fanout directory from its marker file (`None`: there is
/// no marker, so no fanout, or one whose marker was deleted).
///
/// ```
/// use sciqlop_cache::{FanoutCache, fanout::shard_count_on_disk};
/// let dir = tempfile::tempdir()?;
/// assert_eq!(shard_count_on_disk(dir.path())?, None);
/// FanoutCache::builder().shards(4).open(dir.path())?;
/// assert_eq!(shard_count_on_disk(dir.path())?, Some(4));
/// # Ok::<(), sciqlop_cache::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::NotACache`]: the marker file is not a valid fanout marker (another
///   format, no kind, a shard count out of range).
/// - [`Error::Io`]: the marker file exists but cannot be read.
pub fn shard_count_on_disk(dir: &Path) -> Result<Option<u32>> {
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) => parse_marker(&marker, &text).map(|(_, n)| Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", marker.display()), e)),
    }
}

fn parse_marker(marker: &Path, text: &str) -> Result<(String, u32)> {
    let bad = |reason: String| Error::NotACache {
        path: marker.to_owned(),
        reason,
    };
    let mut format = None;
    let mut kind = None;
    let mut shards = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "format" => format = Some(v.to_owned()),
            "kind" => kind = Some(v.to_owned()),
            "shards" => shards = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    if format.as_deref() != Some(FORMAT) {
        return Err(bad(format!("unsupported fanout format {format:?}")));
    }
    match (kind, shards) {
        (Some(k), Some(n)) if (1..=MAX_SHARDS).contains(&n) => Ok((k, n)),
        _ => Err(bad("fanout marker lacks a valid kind or shard count".into())),
    }
}

/// The shard count of the shard stores in `dir` (highest shard number + 1), if any.
fn shards_on_disk(dir: &Path) -> Result<Option<u32>> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut highest = None;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() >= 3
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = name.parse::<u32>()
            && i < MAX_SHARDS
            && shard_dir(dir, i) == e.path()
            && e.path().join(crate::engine::DB_FILE).exists()
        {
            highest = highest.max(Some(i));
        }
    }
    Ok(highest.map(|i| i + 1))
}

/// Whether `dir` holds a fanout (its marker, or shard stores whose marker is gone).
pub(crate) fn looks_like_fanout(dir: &Path) -> bool {
    dir.join(MARKER).exists() || shard_dir(dir, 0).join(crate::engine::DB_FILE).exists()
}

/// The shard count in the marker of the fanout `dir`, which is made (the directory and
/// its marker) if missing, unless `read_only`: then nothing is written, and a fanout
/// whose marker is gone is read through its shard directories.
pub(crate) fn read_or_create_marker(
    dir: &Path,
    kind: Kind,
    requested: Option<u32>,
    read_only: bool,
) -> Result<u32> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(dir.to_owned())),
        Ok(_) => {}
        Err(_) if read_only => {
            return Err(Error::NotACache {
                path: dir.to_owned(),
                reason: "no fanout is there (a read-only open creates nothing)".into(),
            });
        }
        Err(_) => fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating fanout directory {}", dir.display()), e))?,
    }
    let marker = dir.join(MARKER);
    loop {
        match fs::read_to_string(&marker) {
            Ok(text) => {
                let (on_disk, n) = parse_marker(&marker, &text)?;
                if on_disk != kind.name {
                    return Err(Error::WrongKind {
                        path: dir.to_owned(),
                        expected: kind.name,
                        found: on_disk,
                    });
                }
                if let Some(r) = requested
                    && r != n
                {
                    return Err(Error::ShardCountMismatch {
                        path: dir.to_owned(),
                        on_disk: n,
                        requested: r,
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.join(crate::engine::DB_FILE).exists() {
                    return Err(Error::WrongKind {
                        path: dir.to_owned(),
                        expected: "fanout",
                        found: "single-store".into(),
                    });
                }
                // Shard stores without their marker (it was deleted): the count is
                // theirs, never the one asked for, or every key would route elsewhere.
                let found = shards_on_disk(dir)?;
                // A creator racing this one links its marker before it makes a shard:
                // shards seen with a marker there now are that creator's, read it.
                if found.is_some() && marker.exists() {
                    continue;
                }
                if let (Some(n), Some(r)) = (found, requested)
                    && n != r
                {
                    return Err(Error::ShardCountMismatch {
                        path: dir.to_owned(),
                        on_disk: n,
                        requested: r,
                    });
                }
                if read_only {
                    return found.ok_or_else(|| Error::NotACache {
                        path: dir.to_owned(),
                        reason: "no fanout is there (a read-only open creates nothing)".into(),
                    });
                }
                if let Some(n) = found {
                    tracing::warn!(dir = %dir.display(), shards = n, "fanout marker missing: recreated from the shard directories");
                }
                let n = found.or(requested).unwrap_or(DEFAULT_SHARDS);
                let text = format!(
                    "format = \"{FORMAT}\"\nkind = \"{}\"\nshards = {n}\n",
                    kind.name
                );
                // Write a complete temporary file, then link it into place: the marker
                // appears whole or not at all, and of two racing creators one wins.
                let tmp = dir.join(format!(
                    ".{MARKER}.{:016x}",
                    xxh3_64(
                        format!("{:?}{}", std::time::SystemTime::now(), std::process::id())
                            .as_bytes()
                    )
                ));
                let written = fs::File::create_new(&tmp)
                    .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
                let linked = written.and_then(|()| fs::hard_link(&tmp, &marker));
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(format!("creating {}", marker.display()), e)),
                }
                // Loop: read back what is there (ours or the winner's).
            }
            Err(e) => return Err(Error::io(format!("reading {}", marker.display()), e)),
        }
    }
}
