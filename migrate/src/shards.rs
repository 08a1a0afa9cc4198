//! What the readers of sharded SQLite sources share: finding numbered shard
//! directories, opening a shard's database, removing a value file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::SourceError;

/// The shards of a source directory: `[("", dir)]` when `dir` itself holds the database
/// `db_name` and `accept`s it, else its numbered subdirectories that do, in numeric
/// order.
pub(crate) fn numbered(
    dir: &Path,
    db_name: &str,
    accept: impl Fn(&Path) -> bool,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let db = dir.join(db_name);
    if db.is_file() {
        return Ok(if accept(&db) {
            vec![(String::new(), dir.to_owned())]
        } else {
            Vec::new()
        });
    }
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let db = entry.path().join(db_name);
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && db.is_file()
            && accept(&db)
        {
            shards.push((name, entry.path()));
        }
    }
    shards.sort_by_key(|(name, _)| name.parse::<u64>().unwrap_or(u64::MAX));
    Ok(shards)
}

/// The shards of `dir` (see [`numbered`]), or why it is not a source of `format`.
pub(crate) fn find(
    dir: &Path,
    format: &'static str,
    db_name: &str,
    accept: impl Fn(&Path) -> bool,
) -> Result<Vec<(String, PathBuf)>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::Missing(dir.to_owned()));
    }
    let found = numbered(dir, db_name, accept).map_err(|e| SourceError::NotASource {
        path: dir.to_owned(),
        format,
        reason: e.to_string(),
    })?;
    if found.is_empty() {
        return Err(SourceError::NotASource {
            path: dir.to_owned(),
            format,
            reason: format!("no {db_name} of it in it nor in numbered shard directories"),
        });
    }
    Ok(found)
}

/// Opens a shard's database: read-write (needed when `writable`), else read-only when
/// that is all the file allows; waits up to a minute for the source's writers.
pub(crate) fn open_db(
    db: &Path,
    writable: bool,
    format: &'static str,
) -> Result<Connection, SourceError> {
    let err = |source| SourceError::Sqlite {
        format,
        path: db.to_owned(),
        source,
    };
    let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(db, rw) {
        Ok(c) => c,
        Err(e) if writable => return Err(err(e)),
        Err(_) => Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?,
    };
    conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
    Ok(conn)
}

/// Removes a value file of a removed entry, and up to two levels of directories it
/// leaves empty (both libraries spread files over two-level directories), never
/// `shard_dir` itself.
pub(crate) fn remove_value_file(shard_dir: &Path, path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut dir = path.parent();
    for _ in 0..2 {
        match dir {
            Some(d) if d != shard_dir && std::fs::remove_dir(d).is_ok() => dir = d.parent(),
            _ => break,
        }
    }
}
