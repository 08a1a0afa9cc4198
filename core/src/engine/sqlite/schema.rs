//! On-disk format: tables, triggers, the statements run against them, and creating,
//! validating and upgrading a database.
//!
//! Entries of the default namespace live in `entries`, a `WITHOUT ROWID` table clustered
//! on the key: a read is one B-tree seek and a small write dirties one table page (plus
//! a totals page). Entries of named namespaces live in `ns_entries`, clustered on
//! (namespace, key), so that a namespace is a range (listed, counted and cleared without
//! touching the others). Two tables rather than one keyed on (namespace, key): SQLite
//! compares records on their first field with a fast path (for text) and falls back to a
//! general comparison, twice as slow, on a tie; with the namespace first every
//! comparison of the default namespace tied on it (+19 % instructions per get), and with
//! the key first a namespace is not a range. Every statement that concerns one namespace
//! therefore has two forms ([`Scoped`]); both take the namespace id as `?1` (the default
//! form ignores it) and the key as `?2`.
//!
//! Totals (count, bytes of values, bytes in files) are kept exact by triggers in the
//! same transaction as every change, whichever program makes it, spread over 16
//! additive rows per namespace (row id `ns * 16 + last_use % 16`, so hot writers do not
//! all hit one row); the triggers also queue the files of removed or replaced
//! file-backed values in `discarded`, which the engine drains in the same transaction
//! and unlinks after commit. Each entry carries a `version`, a random 47-bit stamp given
//! by every write of its value (compare-and-swap, optimistic transactions).
//!
//! Writes that fire triggers use `OR FAIL`: with the default `ABORT`, SQLite keeps a
//! statement journal (a copy of every page a statement touches) so it can undo one
//! statement inside a transaction; that copy cost 38 % of a batched set. No constraint
//! of these statements can fail (keys, sizes and times are never NULL), and on I/O
//! errors SQLite still rolls back — the whole transaction, which the engine detects.
//! For the same reason only the primary key is `NOT NULL` (the engine always supplies
//! the other columns): the `DO UPDATE` branch of an upsert checks with `ABORT`.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension};

use super::errors::SqlErr;
use crate::engine::Namespace;
use crate::policy::Kind;
use crate::{Error, Result};

/// Format identifier stored in `meta` under `format`.
pub(crate) const FORMAT: &str = "sciqlop-cache/4";
/// The previous format (no named namespaces, no versions), upgraded in place.
const FORMAT_3: &str = "sciqlop-cache/3";

/// Name of the database file inside the store directory.
pub(crate) const DB_FILE: &str = crate::engine::DB_FILE;

/// The tables of format 3, which format 4 keeps.
const TABLES_3: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE entries(
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB,                       -- inline value; NULL when file-backed
    file TEXT,                        -- value file relative to data/; NULL when inline
    size INTEGER,                     -- value length in bytes
    expire INTEGER,                   -- unix microseconds; NULL = never
    last_use INTEGER,                 -- unix microseconds of the last write or read
    tag TEXT
) WITHOUT ROWID;
CREATE INDEX entries_expire ON entries(expire) WHERE expire IS NOT NULL;
CREATE INDEX entries_tag ON entries(tag) WHERE tag IS NOT NULL;
CREATE TABLE totals(
    id INTEGER PRIMARY KEY,
    count INTEGER,
    size INTEGER,
    file_size INTEGER,
    pad BLOB
);
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 15)
INSERT INTO totals SELECT i, 0, 0, 0, zeroblob(900) FROM n;
CREATE TABLE discarded(file TEXT);
CREATE TABLE locks(name TEXT PRIMARY KEY, owner TEXT NOT NULL, expire INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
    UPDATE OR FAIL totals SET count = count + 1, size = size + new.size,
        file_size = file_size + iif(new.file IS NULL, 0, new.size) WHERE id = new.last_use & 15;
END;
CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
    UPDATE OR FAIL totals SET count = count - 1, size = size - old.size,
        file_size = file_size - iif(old.file IS NULL, 0, old.size) WHERE id = old.last_use & 15;
    INSERT OR FAIL INTO discarded(file) SELECT old.file WHERE old.file IS NOT NULL;
END;
CREATE TRIGGER entries_update AFTER UPDATE OF size, file ON entries BEGIN
    UPDATE OR FAIL totals SET size = size + new.size - old.size,
        file_size = file_size + iif(new.file IS NULL, 0, new.size)
                              - iif(old.file IS NULL, 0, old.size) WHERE id = new.last_use & 15;
    INSERT OR FAIL INTO discarded(file) SELECT old.file
        WHERE old.file IS NOT NULL AND old.file IS NOT new.file;
END;
";

/// What format 4 adds to format 3: versions, named namespaces and their entries.
const TABLES_4: &str = "
ALTER TABLE entries ADD COLUMN version INTEGER;
CREATE TABLE namespaces(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO namespaces(id, name) VALUES (0, '');
CREATE TABLE ns_entries(
    ns INTEGER,
    key TEXT,
    value BLOB,
    file TEXT,
    size INTEGER,
    expire INTEGER,
    last_use INTEGER,
    tag TEXT,
    version INTEGER,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX ns_entries_expire ON ns_entries(expire) WHERE expire IS NOT NULL;
CREATE INDEX ns_entries_tag ON ns_entries(ns, tag) WHERE tag IS NOT NULL;
CREATE TRIGGER ns_entries_insert AFTER INSERT ON ns_entries BEGIN
    UPDATE OR FAIL totals SET count = count + 1, size = size + new.size,
        file_size = file_size + iif(new.file IS NULL, 0, new.size)
        WHERE id = new.ns * 16 + (new.last_use & 15);
END;
CREATE TRIGGER ns_entries_delete AFTER DELETE ON ns_entries BEGIN
    UPDATE OR FAIL totals SET count = count - 1, size = size - old.size,
        file_size = file_size - iif(old.file IS NULL, 0, old.size)
        WHERE id = old.ns * 16 + (old.last_use & 15);
    INSERT OR FAIL INTO discarded(file) SELECT old.file WHERE old.file IS NOT NULL;
END;
CREATE TRIGGER ns_entries_update AFTER UPDATE OF size, file ON ns_entries BEGIN
    UPDATE OR FAIL totals SET size = size + new.size - old.size,
        file_size = file_size + iif(new.file IS NULL, 0, new.size)
                              - iif(old.file IS NULL, 0, old.size)
        WHERE id = new.ns * 16 + (new.last_use & 15);
    INSERT OR FAIL INTO discarded(file) SELECT old.file
        WHERE old.file IS NOT NULL AND old.file IS NOT new.file;
END;
";

/// Indexes used to find least-recently-used entries; created when a bound is set.
pub(crate) const CREATE_LRU_INDEX: &str = "
    CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_use);
    CREATE INDEX IF NOT EXISTS ns_entries_lru ON ns_entries(last_use)";

/// A statement about one namespace, in its two forms (see the module docs).
pub(crate) struct Scoped {
    default: String,
    named: String,
}

impl Scoped {
    /// Builds both forms of `template`: `{T}` is the table, `{K}` the condition on the
    /// key `?2` (and the namespace `?1`), `{N}` a condition on the namespace alone
    /// followed by `AND`, `{NS}` the namespace as a value (`0` in the default table),
    /// `{PK}` the primary key (for `IN`) and `{PKS}` its columns (for a `SELECT`). The
    /// hottest statements (a get, an upsert) take the key first and the namespace last
    /// instead, so that the default form binds nothing it does not use: `{K1}` is the
    /// condition on the key `?1` (and the namespace `?2`); `{C9}` and `{V9}` add the
    /// namespace (`?9`) to an `INSERT`'s columns and values. Runs of white space are
    /// folded (the statement cache hashes the text at every use).
    fn new(template: &str) -> Self {
        let form = |t: [&str; 10]| {
            let s = [
                "{T}", "{K1}", "{K}", "{N}", "{NS}", "{C9}", "{V9}", "{PKS}", "{PK}", "\n",
            ]
            .iter()
            .zip(t)
            .fold(template.to_owned(), |s, (from, to)| s.replace(from, to));
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        Scoped {
            default: form([
                "entries",
                "key = ?1",
                "key = ?2",
                "?1 = 0 AND",
                "0",
                "",
                "",
                "key",
                "key",
                " ",
            ]),
            named: form([
                "ns_entries",
                "key = ?1 AND ns = ?2",
                "ns = ?1 AND key = ?2",
                "ns = ?1 AND",
                "ns",
                ", ns",
                ", ?9",
                "ns, key",
                "(ns, key)",
                " ",
            ]),
        }
    }

    /// The form for `ns`.
    pub(crate) fn of(&self, ns: &Namespace) -> &str {
        if ns.is_default() {
            &self.default
        } else {
            &self.named
        }
    }

    /// The form for the namespace with id `id`.
    pub(crate) fn of_id(&self, id: i64) -> &str {
        if id == 0 { &self.default } else { &self.named }
    }

    /// Both forms (statements run over every namespace).
    pub(crate) fn both(&self) -> [&str; 2] {
        [&self.default, &self.named]
    }
}

macro_rules! scoped {
    ($(#[$doc:meta])* $name:ident = $template:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<Scoped> = LazyLock::new(|| Scoped::new($template));
    };
}

scoped!(
    /// Key first (`?1`), then the namespace (`?2`, named form only).
    GET = "SELECT value, file, size, expire FROM {T} WHERE {K1}"
);
scoped!(
    /// Key first (`?1`), then the namespace (`?2`, named form only).
    GET_ENTRY = "SELECT value, file, size, expire, tag, version FROM {T} WHERE {K1}"
);
scoped!(INFO = "SELECT file, size, expire, tag FROM {T} WHERE {K}");
scoped!(CONTAINS = "SELECT expire FROM {T} WHERE {K}");
scoped!(VERSION = "SELECT expire, version FROM {T} WHERE {K}");
scoped!(
    /// `?1` key, `?2` value, `?3` file, `?4` size, `?5` expire, `?6` last use, `?7` tag,
    /// `?8` version, `?9` namespace (named form only).
    UPSERT = "INSERT OR FAIL INTO {T}(key, value, file, size, expire, last_use, tag, version{C9})
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8{V9})
    ON CONFLICT({PKS}) DO UPDATE SET value = excluded.value, file = excluded.file,
        size = excluded.size, expire = excluded.expire, last_use = excluded.last_use,
        tag = excluded.tag, version = excluded.version"
);
scoped!(DELETE_LIVE = "DELETE FROM {T} WHERE {K} AND (expire IS NULL OR expire > ?3)");
scoped!(DELETE_EXPIRED = "DELETE FROM {T} WHERE {K} AND expire <= ?3");
scoped!(TOUCH = "UPDATE {T} SET expire = ?3 WHERE {K} AND (expire IS NULL OR expire > ?4)");
scoped!(
    /// A counter is always stored inline (it is at most 20 bytes), also when it was read
    /// from a file (a store with a tiny file threshold): the file is then discarded.
    UPDATE_COUNTER = "UPDATE OR FAIL {T}
    SET value = ?3, file = NULL, size = ?4, last_use = ?5, version = ?6 WHERE {K}"
);
scoped!(DELETE_KEY = "DELETE FROM {T} WHERE {K}");
scoped!(TOUCH_USE = "UPDATE {T} SET last_use = ?3 WHERE {K} AND last_use < ?3");
scoped!(COUNT_EXPIRED = "SELECT count(*) FROM {T} WHERE {N} expire <= ?2");
scoped!(KEYS_FROM = "SELECT key, expire FROM {T} WHERE {N} key >= ?2 ORDER BY key LIMIT ?3");
scoped!(KEYS_AFTER = "SELECT key, expire FROM {T} WHERE {N} key > ?2 ORDER BY key LIMIT ?3");
scoped!(
    /// Live keys in `[?2, ?3)` (`?4` = now).
    COUNT_RANGE = "SELECT count(*) FROM {T}
    WHERE {N} key >= ?2 AND key < ?3 AND (expire IS NULL OR expire > ?4)"
);
scoped!(
    /// Live keys from `?2` on (`?3` = now).
    COUNT_FROM = "SELECT count(*) FROM {T} WHERE {N} key >= ?2 AND (expire IS NULL OR expire > ?3)"
);
scoped!(DELETE_RANGE = "DELETE FROM {T} WHERE {N} key >= ?2 AND key < ?3");
scoped!(DELETE_FROM = "DELETE FROM {T} WHERE {N} key >= ?2");
scoped!(CLEAR_NS = "DELETE FROM {T} WHERE {N} 1");
scoped!(EVICT_TAG = "DELETE FROM {T} WHERE {N} tag = ?2");
scoped!(
    /// One batch (`?2` rows) of a namespace, for clearing on a full disk.
    DELETE_BATCH = "DELETE FROM {T} WHERE {N} key IN (SELECT key FROM {T} WHERE {N} 1 LIMIT ?2)"
);
scoped!(
    /// Expired entries of a table (`?1` = now, `?2` batch size), any namespace.
    PURGE_EXPIRED = "DELETE FROM {T} WHERE {PK} IN
    (SELECT {PKS} FROM {T} WHERE expire <= ?1 LIMIT ?2)"
);
scoped!(
    /// The least recently used entries of a table (`?1` of them), any namespace.
    LRU_VICTIMS = "SELECT {NS}, key, size, last_use FROM {T} ORDER BY last_use LIMIT ?1"
);
scoped!(
    /// Every row of a table, for `check`.
    ALL_ROWS = "SELECT {NS}, key, file, size, length(value) FROM {T}"
);
scoped!(
    /// Fixes the recorded size of a row (`?3`), for `check`.
    SET_SIZE = "UPDATE {T} SET size = ?3 WHERE {K}"
);

/// Totals of the whole store (every namespace).
pub(crate) const TOTALS: &str = "SELECT sum(count), sum(size), sum(file_size) FROM totals";
/// Totals of one namespace (`?1`).
pub(crate) const NS_TOTALS: &str = "SELECT sum(count), sum(size), sum(file_size) FROM totals
    WHERE id BETWEEN ?1 * 16 AND ?1 * 16 + 15";
pub(crate) const DRAIN_DISCARDED: &str = "DELETE FROM discarded RETURNING file";
/// Files queued for removal (by the open transaction, or left for the next drain).
pub(crate) const DISCARDED_FILES: &str = "SELECT file FROM discarded";
pub(crate) const LOCK: &str = "
INSERT INTO locks(name, owner, expire) VALUES (?1, ?2, ?3)
ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expire = excluded.expire
WHERE locks.expire <= ?4";
pub(crate) const UNLOCK: &str = "DELETE FROM locks WHERE name = ?1 AND owner = ?2";
pub(crate) const NAMESPACE_ID: &str = "SELECT id FROM namespaces WHERE name = ?1";
pub(crate) const NAMESPACES: &str = "SELECT id, name FROM namespaces ORDER BY id";
/// Creates namespace `?1`; returns its id.
pub(crate) const CREATE_NAMESPACE: &str = "INSERT INTO namespaces(name) VALUES (?1) RETURNING id";
/// The 16 totals rows of namespace `?1`.
pub(crate) const NAMESPACE_TOTALS: &str = "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 15)
INSERT OR IGNORE INTO totals SELECT ?1 * 16 + i, 0, 0, 0, zeroblob(900) FROM n";
pub(crate) const META_GET: &str = "SELECT value FROM meta WHERE key = ?1";
pub(crate) const META_SET: &str = "INSERT INTO meta(key, value) VALUES (?1, ?2)
    ON CONFLICT(key) DO UPDATE SET value = excluded.value";
pub(crate) const META_DELETE: &str = "DELETE FROM meta WHERE key = ?1";
/// Prefix of the `meta` keys that hold the store's user metadata (`Store::metadata`).
pub(crate) const USER_META: &str = "user.";

/// What `validate` found.
pub(crate) enum Found {
    /// A database of the current format, of this kind.
    Current(Kind),
    /// Empty: to be created.
    Empty,
    /// The previous format: to be upgraded (needs the write lock).
    Upgrade(Kind),
}

/// Reads what the database holds, without writing (a read transaction).
pub(crate) fn inspect(conn: &Connection, err: &SqlErr<'_>) -> Result<Found> {
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| err.map(e))?;
    if tables == 0 {
        return Ok(Found::Empty);
    }
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| err.map(e))?
        > 0;
    let meta = |k: &str| -> Result<Option<String>> {
        conn.query_row(META_GET, [k], |r| r.get(0))
            .optional()
            .map_err(|e| err.map(e))
    };
    let format = if has_meta { meta("format")? } else { None };
    let kind_name = if has_meta {
        meta("kind")?.unwrap_or_default()
    } else {
        String::new()
    };
    let kind = || {
        Kind::from_name(&kind_name).ok_or_else(|| Error::NotACache {
            path: err.path().to_owned(),
            reason: format!("unknown store kind {kind_name:?}"),
        })
    };
    let has_table = |name: &str| -> Result<bool> {
        Ok(conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| err.map(e))?
            > 0)
    };
    match format.as_deref() {
        Some(FORMAT) => Ok(Found::Current(kind()?)),
        Some(FORMAT_3) => Ok(Found::Upgrade(kind()?)),
        None if has_table("cache")? && !has_table("entries")? => Err(Error::NotACache {
            path: err.path().to_owned(),
            reason: crate::engine::foreign::original_reason(
                err.path().parent().unwrap_or(err.path()),
            ),
        }),
        None => Err(Error::NotACache {
            path: err.path().to_owned(),
            reason: "it has tables but no sciqlop-cache metadata".to_owned(),
        }),
        Some(f) => Err(Error::NotACache {
            path: err.path().to_owned(),
            reason: format!("unsupported format {f:?}"),
        }),
    }
}

/// The tables of this project's schema (format 4).
const OUR_TABLES: [&str; 7] = [
    "meta",
    "entries",
    "totals",
    "discarded",
    "locks",
    "namespaces",
    "ns_entries",
];

/// The tables of the database that are not ours, by name.
pub(crate) fn foreign_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for n in names {
        let n = n?;
        if !OUR_TABLES.contains(&n.as_str()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Creates a fresh database of `kind`. Run inside a write transaction.
pub(crate) fn create(conn: &Connection, kind: Kind, err: &SqlErr<'_>) -> Result<()> {
    conn.execute_batch(TABLES_3).map_err(|e| err.map(e))?;
    conn.execute_batch(TABLES_4).map_err(|e| err.map(e))?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('format', ?1), ('kind', ?2)",
        (FORMAT, kind.name),
    )
    .map_err(|e| err.map(e))?;
    Ok(())
}

/// Upgrades a database of format 3 (no versions, no named namespaces) in place: a
/// column and tables added, nothing copied. Run inside a write transaction.
pub(crate) fn upgrade_from_3(conn: &Connection, err: &SqlErr<'_>) -> Result<()> {
    conn.execute_batch(TABLES_4).map_err(|e| err.map(e))?;
    conn.execute("UPDATE meta SET value = ?1 WHERE key = 'format'", [FORMAT])
        .map_err(|e| err.map(e))?;
    Ok(())
}
