//! Salvage: copying everything readable out of a store whose database is damaged into a
//! fresh store, and naming what could not be read.
//!
//! The database is read raw (read-only, never through the engine, which may not even
//! open a damaged store). Rows are read in key order, a batch at a time; when a batch
//! runs into a damaged page, the scan probes keys further on (`key >= P` descends the
//! B-tree to `P` only) until one is readable, then bisects between the failing and the
//! readable probe so that only the keys of the damaged pages are skipped. Each skipped
//! stretch is reported as a lost key range. A row whose value cannot be read (a damaged
//! overflow page, a value file missing or changed) is reported by key.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ToSql};

use super::check::check_lines;
use super::files::FileTier;
use super::{SqliteEngine, schema};
use crate::engine::{Engine, Namespace};
use crate::options::{Config, SetOptions};
use crate::policy::Kind;
use crate::{Error, Result};

/// What [`salvage`] copied and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// The kind of the store (`cache` or `index`; `cache` when the database no longer
    /// says).
    pub kind: String,
    /// Live entries copied (or, in a survey, readable).
    pub copied: u64,
    /// Named namespaces found.
    pub namespaces: u64,
    /// Keys whose row was read but whose value was not (as `key`, or `namespace/key`
    /// in a named namespace), with why.
    pub lost_values: Vec<(String, String)>,
    /// Stretches of keys behind damaged pages: every key after the first and before
    /// the second (`None`: the start or the end) is lost, in the namespace named first.
    pub lost_ranges: Vec<LostRange>,
    /// What SQLite's integrity check reported (the first lines).
    pub sqlite_errors: Vec<String>,
}

/// A stretch of keys that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// The namespace (`""`: the default one).
    pub namespace: String,
    /// The last key read before the damage (`None`: from the first key).
    pub after: Option<String>,
    /// The first key read after it (`None`: to the last key).
    pub before: Option<String>,
}

/// Rows read per query.
const BATCH: usize = 256;

/// Reads the damaged store in `src` and, unless `dst` is `None` (a survey), copies
/// every live entry that can be read into a new store made at `dst` (which must not
/// exist or be empty), with its expiry, tag and namespace, and the store's metadata.
///
/// # Errors
/// [`Error::NotACache`] when `src` holds no database or one that SQLite cannot open at
/// all; [`Error::InvalidArgument`] when `dst` holds something; the errors of creating
/// and writing the new store.
pub fn salvage(src: &Path, dst: Option<&Path>) -> Result<SalvageReport> {
    let db = src.join(schema::DB_FILE);
    if !db.is_file() {
        return Err(Error::NotACache {
            path: src.to_owned(),
            reason: format!("no {} in it", schema::DB_FILE),
        });
    }
    let conn = open_raw(&db)?;
    let mut report = SalvageReport {
        sqlite_errors: check_lines(&conn, "integrity_check"),
        ..SalvageReport::default()
    };
    let kind = match conn
        .query_row("SELECT value FROM meta WHERE key = 'kind'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    {
        Ok(Some(k)) if k == "index" => Kind::INDEX,
        _ => Kind::CACHE,
    };
    report.kind = kind.name.to_owned();
    let files = FileTier::new(src, false, true, true)?;
    let out = match dst {
        Some(d) => Some(new_store(d, kind)?),
        None => None,
    };
    // Store metadata (the serializer, a bound set by a binding…).
    if let Some(engine) = &out
        && let Ok(mut st) = conn.prepare("SELECT key, value FROM meta WHERE key LIKE 'user.%'")
        && let Ok(rows) = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
    {
        for (k, v) in rows.flatten() {
            if let Some(name) = k.strip_prefix(schema::USER_META) {
                engine.set_metadata(name, Some(&v))?;
            }
        }
    }
    let mut spaces: Vec<(i64, String)> = vec![(0, String::new())];
    // A store of format 3 has no namespaces table.
    if let Ok(mut st) = conn.prepare("SELECT id, name FROM namespaces WHERE id <> 0 ORDER BY id") {
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(i64, String)>>>());
        match rows {
            Ok(rows) => spaces.extend(rows),
            Err(e) => report
                .sqlite_errors
                .push(format!("reading the namespaces: {e}")),
        }
    }
    report.namespaces = spaces.len() as u64 - 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    for (id, name) in &spaces {
        let target = match &out {
            Some(e) => Some(if *id == 0 {
                Namespace::DEFAULT
            } else {
                e.namespace(name)?
            }),
            None => None,
        };
        let table = Table::new(*id);
        let mut copy = |row: Row| -> Result<()> {
            if kind.expiry && row.expire.is_some_and(|e| e <= now) {
                return Ok(());
            }
            let shown = if name.is_empty() {
                row.key.clone()
            } else {
                format!("{name}/{}", row.key)
            };
            let value = match &row.file {
                Some(rel) => match files.read(&row.key, rel, row.size.max(0) as u64) {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        report
                            .lost_values
                            .push((shown, format!("its value file {rel} is missing")));
                        return Ok(());
                    }
                    Err(e) => {
                        report.lost_values.push((shown, e.to_string()));
                        return Ok(());
                    }
                },
                None => match table.value(&conn, &row.key) {
                    Ok(v) => v,
                    Err(e) => {
                        report
                            .lost_values
                            .push((shown, format!("its value cannot be read: {e}")));
                        return Ok(());
                    }
                },
            };
            if let (Some(engine), Some(ns)) = (&out, &target) {
                let mut opts = SetOptions::new();
                if kind.expiry
                    && let Some(e) = row.expire
                {
                    opts = opts.expire_at(UNIX_EPOCH + Duration::from_micros(e.max(0) as u64));
                }
                if let Some(t) = row.tag {
                    opts = opts.tag(t);
                }
                engine.set(ns, &row.key, &value, &opts)?;
            }
            report.copied += 1;
            Ok(())
        };
        let lost = table.scan(&conn, &mut copy)?;
        report
            .lost_ranges
            .extend(lost.into_iter().map(|(after, before)| LostRange {
                namespace: name.clone(),
                after,
                before,
            }));
    }
    Ok(report)
}

fn open_raw(db: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let not_open = |e: rusqlite::Error| Error::NotACache {
        path: db.to_owned(),
        reason: format!("SQLite cannot open it: {e}"),
    };
    let conn = Connection::open_with_flags(db, flags).map_err(not_open)?;
    if conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok()
    {
        return Ok(conn);
    }
    // Unwritable and at rest (no WAL index can be made), or a damaged header: read the
    // file as it is.
    let uri = format!(
        "file:{}?immutable=1",
        super::uri_escape(&db.to_string_lossy())
    );
    Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(not_open)
}

fn new_store(dst: &Path, kind: Kind) -> Result<SqliteEngine> {
    if std::fs::read_dir(dst).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty: salvage into a new or empty directory",
            dst.display()
        )));
    }
    SqliteEngine::open(dst, Config::default(), Some(kind))
}

/// A row without its inline value.
struct Row {
    key: String,
    file: Option<String>,
    size: i64,
    expire: Option<i64>,
    tag: Option<String>,
}

/// The rows of one namespace: `entries` for the default one, `ns_entries` otherwise.
struct Table {
    ns: i64,
}

/// A stretch of lost keys: after the first (`None`: from the start), before the second
/// (`None`: to the end).
type Lost = (Option<String>, Option<String>);

/// Text bound as bytes (a probe between two keys need not be valid UTF-8; SQLite
/// compares text bytewise).
struct TextBytes<'a>(&'a [u8]);

impl ToSql for TextBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

impl Table {
    fn new(ns: i64) -> Self {
        Table { ns }
    }

    fn rows_sql(&self, inclusive: bool) -> String {
        let op = if inclusive { ">=" } else { ">" };
        if self.ns == 0 {
            format!(
                "SELECT key, file, size, expire, tag FROM entries WHERE key {op} ?1 ORDER BY key LIMIT ?2"
            )
        } else {
            format!(
                "SELECT key, file, size, expire, tag FROM ns_entries WHERE ns = ?3 AND key {op} ?1 ORDER BY key LIMIT ?2"
            )
        }
    }

    /// Up to `limit` rows from `from` on (`inclusive`: `>=`).
    fn rows(
        &self,
        conn: &Connection,
        from: &[u8],
        inclusive: bool,
        limit: usize,
    ) -> rusqlite::Result<Vec<Row>> {
        let mut st = conn.prepare_cached(&self.rows_sql(inclusive))?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Row {
                key: r.get(0)?,
                file: r.get(1)?,
                size: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                expire: r.get(3)?,
                tag: r.get(4)?,
            })
        };
        if self.ns == 0 {
            st.query_map((TextBytes(from), limit as i64), map)?
                .collect::<rusqlite::Result<Vec<_>>>()
        } else {
            st.query_map((TextBytes(from), limit as i64, self.ns), map)?
                .collect::<rusqlite::Result<Vec<_>>>()
        }
    }

    fn value(&self, conn: &Connection, key: &str) -> rusqlite::Result<Vec<u8>> {
        let v: Option<Vec<u8>> = if self.ns == 0 {
            conn.prepare_cached("SELECT value FROM entries WHERE key = ?1")?
                .query_row([key], |r| r.get(0))?
        } else {
            conn.prepare_cached("SELECT value FROM ns_entries WHERE ns = ?2 AND key = ?1")?
                .query_row((key, self.ns), |r| r.get(0))?
        };
        Ok(v.unwrap_or_default())
    }

    /// Whether the B-tree can be read from `from` on (the first key there, if any).
    fn probe(&self, conn: &Connection, from: &[u8]) -> bool {
        self.rows(conn, from, true, 1).is_ok()
    }

    /// Calls `each` for every readable row in key order; returns the lost stretches.
    fn scan(
        &self,
        conn: &Connection,
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<Vec<Lost>> {
        let mut lost = Vec::new();
        // Rows are read from `from` on (`inclusive`: `>=`, else `>`).
        let mut from: Vec<u8> = Vec::new();
        let mut inclusive = true;
        let mut last: Option<String> = None;
        let mut batch = BATCH;
        loop {
            match self.rows(conn, &from, inclusive, batch) {
                Ok(rows) => {
                    let n = rows.len();
                    for r in rows {
                        from = r.key.as_bytes().to_vec();
                        last = Some(r.key.clone());
                        each(r)?;
                    }
                    if n > 0 {
                        inclusive = false;
                    }
                    if n < batch {
                        // The end (a short batch, or no row at all).
                        return Ok(lost);
                    }
                    // After a damaged stretch, go back to whole batches once one row
                    // read well past it.
                    batch = BATCH;
                }
                Err(_) if batch > 1 => {
                    // The damage is somewhere in this batch: read row by row up to it.
                    batch = 1;
                }
                Err(_) => {
                    // The damage is right after `from`. The first string after it that
                    // is known unreadable:
                    let mut bad = from.clone();
                    if !inclusive {
                        bad.push(0);
                    }
                    match self.skip_damage(conn, bad) {
                        Some(ok) => {
                            let next = self
                                .rows(conn, &ok, true, 1)
                                .ok()
                                .and_then(|r| r.into_iter().next())
                                .map(|r| r.key);
                            lost.push((last.clone(), next.clone()));
                            if next.is_none() {
                                return Ok(lost);
                            }
                            from = ok;
                            inclusive = true;
                            batch = 1;
                        }
                        None => {
                            lost.push((last, None));
                            return Ok(lost);
                        }
                    }
                }
            }
        }
    }

    /// The smallest probe past `bad` (about) from which the B-tree reads again
    /// (`bad` itself does not); `None` when nothing after it can be read.
    fn skip_damage(&self, conn: &Connection, mut bad: Vec<u8>) -> Option<Vec<u8>> {
        // Ever larger jumps: the next value at each position from the last, then first
        // bytes further on.
        let mut candidates: Vec<Vec<u8>> = Vec::new();
        for i in (0..bad.len()).rev() {
            if bad[i] < 0xff {
                let mut c = bad[..i].to_vec();
                c.push(bad[i] + 1);
                candidates.push(c);
            }
        }
        let first = bad.first().copied().unwrap_or(0);
        for b in first.saturating_add(2)..=0xff {
            candidates.push(vec![b]);
        }
        let mut ok = candidates
            .into_iter()
            .find(|c| c.as_slice() > bad.as_slice() && self.probe(conn, c))?;
        // Bisect between the failing `bad` and the readable `ok`.
        for _ in 0..64 {
            let mid = midpoint(&bad, &ok);
            if mid.as_slice() <= bad.as_slice() || mid.as_slice() >= ok.as_slice() {
                break;
            }
            if self.probe(conn, &mid) {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        Some(ok)
    }
}

/// A byte string between `a` and `b` (`a < b`), as if both were base-256 fractions.
fn midpoint(a: &[u8], b: &[u8]) -> Vec<u8> {
    let len = a.len().max(b.len()) + 1;
    let digit = |s: &[u8], i: usize| u32::from(s.get(i).copied().unwrap_or(0));
    let mut sum = vec![0u32; len];
    let mut carry = 0;
    for i in (0..len).rev() {
        let v = digit(a, i) + digit(b, i) + carry;
        sum[i] = v & 0xff;
        carry = v >> 8;
    }
    // Halve (carry is the top bit).
    let mut out = Vec::with_capacity(len);
    let mut rem = carry;
    for d in sum {
        let v = (rem << 8) | d;
        out.push((v / 2) as u8);
        rem = v % 2;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::midpoint;

    #[test]
    fn midpoints_lie_between() {
        for (a, b) in [
            (&b"a"[..], &b"b"[..]),
            (b"key0150", b"key016"),
            (b"", b"\x01"),
            (b"ab", b"ab\x01"),
            (b"\xfe\xff", b"\xff"),
        ] {
            let m = midpoint(a, b);
            assert!(a < m.as_slice() || m.as_slice() == a, "{a:?} {m:?} {b:?}");
            assert!(m.as_slice() < b, "{a:?} {m:?} {b:?}");
        }
        assert!(midpoint(b"a", b"c").as_slice() == b"b");
    }
}
