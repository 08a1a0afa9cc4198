//! On-disk format: tables, triggers and the statements run against them.
//!
//! One `WITHOUT ROWID` table of entries clustered on the key: a read is one B-tree seek
//! and a small write dirties one table page (plus the totals page). Totals (count, bytes of values,
//! bytes in files) are kept exact by triggers in the same transaction as every change,
//! whichever program makes it; the triggers also queue the files of removed or replaced
//! file-backed values in `discarded`, which the engine drains in the same transaction
//! and unlinks after commit.
//!
//! Writes that fire triggers use `OR FAIL`: with the default `ABORT`, SQLite keeps a
//! statement journal (a copy of every page a statement touches) so it can undo one
//! statement inside a transaction; that copy cost 38 % of a batched set. No constraint
//! of these statements can fail (keys, sizes and times are never NULL), and on I/O
//! errors SQLite still rolls back — the whole transaction, which the engine detects.
//! For the same reason only the key carries a `NOT NULL` (the engine always supplies
//! the other columns): the `DO UPDATE` branch of an upsert checks with `ABORT`.

/// Format identifier stored in `meta` under `format`.
pub(crate) const FORMAT: &str = "sciqlop-cache/3";

/// Name of the database file inside the store directory.
pub(crate) const DB_FILE: &str = crate::engine::DB_FILE;

/// Creates a fresh database. Run inside a write transaction.
pub(crate) const CREATE: &str = "
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

/// Index used to find least-recently-used entries; created when a bound is set.
pub(crate) const CREATE_LRU_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_use)";

pub(crate) const GET: &str = "SELECT value, file, size, expire FROM entries WHERE key = ?1";
pub(crate) const GET_ENTRY: &str =
    "SELECT value, file, size, expire, tag FROM entries WHERE key = ?1";
/// Prefix of the `meta` keys that hold the store's user metadata (`Store::metadata`).
pub(crate) const USER_META: &str = "user.";
pub(crate) const INFO: &str = "SELECT file, size, expire, tag FROM entries WHERE key = ?1";
pub(crate) const CONTAINS: &str = "SELECT expire FROM entries WHERE key = ?1";
pub(crate) const UPSERT: &str = "
INSERT OR FAIL INTO entries(key, value, file, size, expire, last_use, tag) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT(key) DO UPDATE SET value = excluded.value, file = excluded.file, size = excluded.size,
    expire = excluded.expire, last_use = excluded.last_use, tag = excluded.tag";
pub(crate) const DELETE_LIVE: &str =
    "DELETE FROM entries WHERE key = ?1 AND (expire IS NULL OR expire > ?2)";
pub(crate) const DELETE_EXPIRED: &str = "DELETE FROM entries WHERE key = ?1 AND expire <= ?2";
pub(crate) const TOUCH: &str =
    "UPDATE entries SET expire = ?2 WHERE key = ?1 AND (expire IS NULL OR expire > ?3)";
/// A counter is always stored inline (it is at most 20 bytes), also when it was read
/// from a file (a store with a tiny file threshold): the file is then discarded.
pub(crate) const UPDATE_COUNTER: &str =
    "UPDATE OR FAIL entries SET value = ?2, file = NULL, size = ?3, last_use = ?4 WHERE key = ?1";
pub(crate) const TOTALS: &str = "SELECT sum(count), sum(size), sum(file_size) FROM totals";
pub(crate) const COUNT_EXPIRED: &str = "SELECT count(*) FROM entries WHERE expire <= ?1";
pub(crate) const KEYS_FROM: &str =
    "SELECT key, expire FROM entries WHERE key >= ?1 ORDER BY key LIMIT ?2";
pub(crate) const KEYS_AFTER: &str =
    "SELECT key, expire FROM entries WHERE key > ?1 ORDER BY key LIMIT ?2";
pub(crate) const PURGE_EXPIRED: &str =
    "DELETE FROM entries WHERE key IN (SELECT key FROM entries WHERE expire <= ?1 LIMIT ?2)";
pub(crate) const LRU_VICTIMS: &str = "SELECT key, size FROM entries ORDER BY last_use LIMIT ?1";
pub(crate) const DELETE_KEY: &str = "DELETE FROM entries WHERE key = ?1";
pub(crate) const DELETE_BATCH: &str =
    "DELETE FROM entries WHERE key IN (SELECT key FROM entries LIMIT ?1)";
pub(crate) const TOUCH_USE: &str =
    "UPDATE entries SET last_use = ?2 WHERE key = ?1 AND last_use < ?2";
pub(crate) const DRAIN_DISCARDED: &str = "DELETE FROM discarded RETURNING file";
pub(crate) const LOCK: &str = "
INSERT INTO locks(name, owner, expire) VALUES (?1, ?2, ?3)
ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expire = excluded.expire
WHERE locks.expire <= ?4";
pub(crate) const UNLOCK: &str = "DELETE FROM locks WHERE name = ?1 AND owner = ?2";
