//! Directories of other libraries, recognised so that opening one is refused with what
//! it is and how to convert it, and nothing is created or changed in it: the original
//! sciqlop-cache (C++ and `pysciqlop-cache`, whose database file has this project's
//! name, `sciqlop-cache.db`, with a table `cache`; its fanouts are two-digit shard
//! directories) and Python's diskcache (`cache.db`; fanouts in three-digit directories).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::DB_FILE;

/// Why `dir` is refused when it holds another library's store and no database of ours
/// (`None`: nothing foreign found).
pub(crate) fn foreign_store(dir: &Path) -> Option<String> {
    if dir.join("cache.db").is_file() || dir.join("000").join("cache.db").is_file() {
        return Some(format!(
            "it is a Python diskcache directory: convert it with `sqcache migrate {} NEW_DIR` \
             (or `python -m pysciqlop_cache.migrate`)",
            dir.display()
        ));
    }
    let shard = dir.join("00").join(DB_FILE);
    if shard.is_file() && original_db(&shard).is_some() {
        return Some(original_reason(dir));
    }
    None
}

/// Why the database file `db` is refused when the original wrote it.
pub(crate) fn original_db(db: &Path) -> Option<String> {
    let p = db.to_str()?;
    let uri = format!("file:{}?immutable=1", super::sqlite::uri_escape(p));
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    let has = |t: &str| {
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [t],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n > 0)
    };
    (has("cache") && !has("entries")).then(|| original_reason(db.parent().unwrap_or(db)))
}

/// The message for a store of the original in `dir`.
pub(crate) fn original_reason(dir: &Path) -> String {
    format!(
        "it was made by the original sciqlop-cache (pysciqlop-cache or its C++ library), \
         whose format this one does not open: convert it with `sqcache migrate {} NEW_DIR` \
         (or `python -m pysciqlop_cache.migrate`)",
        dir.display()
    )
}

/// An entry of `dir` that no store of ours would have left there without its database
/// (`None`: the directory is empty, or holds only what an interrupted creation or this
/// project's own files leave: `data/`, SQLite's side files, a lock file).
pub(crate) fn unrelated_entry(dir: &Path) -> Option<String> {
    unrelated(dir, |name| name == "data" || name.starts_with(DB_FILE))
}

/// [`unrelated_entry`] for a fanout's directory: what a fanout leaves there is its
/// marker and its numbered shard directories.
pub(crate) fn unrelated_fanout_entry(dir: &Path) -> Option<String> {
    unrelated(dir, |name| {
        name.starts_with(crate::fanout::MARKER) || name.bytes().all(|b| b.is_ascii_digit())
    })
}

fn unrelated(dir: &Path, ours: impl Fn(&str) -> bool) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Hidden files (a `.gitignore`, an editor's) are nobody's data.
        let ours = ours(&name) || name.starts_with('.');
        if !ours {
            return Some(format!("it has {name:?}"));
        }
    }
    None
}
