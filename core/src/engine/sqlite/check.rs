//! The integrity check: SQLite's own, every row against its value file (present, whole,
//! checksum), the maintained totals against the rows, files without rows; and with
//! `fix`, the repairs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rusqlite::Connection;

use super::{Shared, schema};
use crate::options::CheckReport;
use crate::{Error, Result};

/// Puts the true totals in row 0 of the (sharded, additive) totals and zeroes the rest.
/// Puts the true totals of each namespace in its first totals row (`ns * 16`) and zeroes
/// its other rows.
const RECOUNT: &str = "UPDATE totals SET
    count = iif(id = 0, (SELECT count(*) FROM entries),
        iif(id % 16 = 0, (SELECT count(*) FROM ns_entries WHERE ns = totals.id / 16), 0)),
    size = iif(id = 0, (SELECT coalesce(sum(size), 0) FROM entries),
        iif(id % 16 = 0,
            (SELECT coalesce(sum(size), 0) FROM ns_entries WHERE ns = totals.id / 16), 0)),
    file_size = iif(id = 0, (SELECT coalesce(sum(size), 0) FROM entries WHERE file IS NOT NULL),
        iif(id % 16 = 0, (SELECT coalesce(sum(size), 0) FROM ns_entries
            WHERE ns = totals.id / 16 AND file IS NOT NULL), 0))";

/// What the check found that `fix` repairs.
#[derive(Default)]
struct Findings {
    dangling: Vec<(i64, String)>,
    resize: Vec<((i64, String), i64)>,
    orphans: Vec<PathBuf>,
    stale_temps: Vec<PathBuf>,
}

/// Verifies (and with `fix`, repairs) the store. Holds the write lock throughout so that
/// no value file is being installed while files and rows are compared; a read-only
/// store is checked in one read transaction instead (it cannot be repaired, and the
/// comparison may then count a value file that another process is installing at that
/// moment as an orphan).
pub(crate) fn check(shared: &Shared, fix: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut to_remove: Vec<PathBuf> = Vec::new();
    if let Some(ro) = &shared.read_only {
        if fix {
            return Err(ro.error());
        }
        shared.read_snapshot(|c| inspect(shared, c, &mut report))?;
        return Ok(finish(report, false));
    }
    let outcome = shared.write(true, |w| {
        let found = inspect(shared, &w.conn, &mut report)?;
        if fix && report.sqlite_errors.is_empty() {
            let err = |e| shared.sql_err(e);
            let names: HashMap<i64, String> = shared
                .namespaces_on(&w.conn)?
                .into_iter()
                .map(|n| (n.id() as i64, n.name().to_owned()))
                .collect();
            for (ns, key) in &found.dangling {
                shared.exec(w, schema::DELETE_KEY.of_id(*ns), (ns, key))?;
                report.removed_keys.push(match names.get(ns) {
                    Some(n) if !n.is_empty() => format!("{n}/{key}"),
                    _ => key.clone(),
                });
            }
            for ((ns, key), actual) in &found.resize {
                shared.exec(w, schema::SET_SIZE.of_id(*ns), (ns, key, actual))?;
            }
            if !report.counters_consistent {
                w.conn.execute(RECOUNT, []).map_err(err)?;
            }
            to_remove.extend(found.orphans);
            to_remove.extend(found.stale_temps);
        }
        Ok(())
    });
    match outcome {
        // Ending the transaction reports the damage again (nothing was written).
        Err(Error::Corrupt { .. }) if !report.sqlite_errors.is_empty() => {}
        r => r?,
    }
    for p in &to_remove {
        // Not following links: a directory (or link) in a value file's place goes, never
        // what a link points to.
        let is_dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::io(
                format!("removing orphan file {}", p.display()),
                e,
            ));
        }
    }
    Ok(finish(report, fix))
}

/// Fills in the verdict.
fn finish(mut report: CheckReport, fix: bool) -> CheckReport {
    let problems = report.orphaned_files + report.dangling_rows + report.size_mismatches > 0
        || !report.counters_consistent;
    let damaged = !report.sqlite_errors.is_empty();
    report.sqlite_integrity_ok = !damaged;
    // A damaged database is never repaired in place (salvage copies it out).
    let fix = fix && !damaged;
    report.fixed = fix && problems;
    report.ok =
        report.sqlite_integrity_ok && (fix || !problems) && report.foreign_tables.is_empty();
    report
}

/// Compares rows, files and totals on `conn` (inside a transaction), filling `report`.
/// A damaged database is reported (SQLite's findings, where reading stopped), not an
/// error.
fn inspect(shared: &Shared, conn: &Connection, report: &mut CheckReport) -> Result<Findings> {
    report.sqlite_errors = check_lines(conn, "quick_check");
    match compare(shared, conn, report) {
        Err(Error::Corrupt { detail, .. }) => {
            report
                .sqlite_errors
                .push(format!("reading the rows stopped: {detail}"));
            Ok(Findings::default())
        }
        r => r,
    }
}

/// The first lines SQLite's `PRAGMA quick_check` or `integrity_check` reports (empty
/// when it says `ok`).
pub(crate) fn check_lines(conn: &Connection, pragma: &str) -> Vec<String> {
    let lines = conn
        .prepare(&format!("PRAGMA {pragma}(20)"))
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    match lines {
        Ok(l) if l.len() == 1 && l[0] == "ok" => Vec::new(),
        Ok(l) => l,
        Err(e) => vec![e.to_string()],
    }
}

fn compare(shared: &Shared, conn: &Connection, report: &mut CheckReport) -> Result<Findings> {
    let err = |e| shared.sql_err(e);
    report.foreign_tables = schema::foreign_tables(conn).map_err(err)?;

    let mut referenced = HashSet::new();
    let mut dangling = Vec::new();
    let mut resize = Vec::new();
    // Per namespace, sums of what the rows record, to compare with the totals.
    let mut sums: HashMap<i64, (u64, u64, u64)> = HashMap::new();
    for sql in schema::ALL_ROWS.both() {
        let mut st = conn.prepare(sql).map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let ns: i64 = r.get(0).map_err(err)?;
            let id: (i64, String) = (ns, r.get(1).map_err(err)?);
            let file: Option<String> = r.get(2).map_err(err)?;
            let recorded: i64 = r.get(3).map_err(err)?;
            let (count, size, file_size) = sums.entry(ns).or_default();
            *count += 1;
            *size = size.wrapping_add(recorded as u64);
            match file {
                Some(f) => {
                    *file_size = file_size.wrapping_add(recorded as u64);
                    // Missing, truncated, changed (checksum), not one of ours, or
                    // not a regular file: the row cannot be served.
                    match shared.files.verify_file(&f, recorded.max(0) as u64) {
                        Ok(_) => {}
                        Err(why) if why == "missing" => dangling.push(id),
                        Err(_) => {
                            report.damaged_files += 1;
                            dangling.push(id);
                        }
                    }
                    referenced.insert(f);
                }
                None => {
                    let actual: i64 = r.get::<_, Option<i64>>(4).map_err(err)?.unwrap_or(0);
                    if actual != recorded {
                        resize.push((id, actual));
                    }
                }
            }
        }
    }
    report.dangling_rows = dangling.len() as u64;
    report.size_mismatches = resize.len() as u64;
    report.counters_consistent = true;
    for ns in shared.namespaces_on(conn)? {
        let want = sums.remove(&(ns.id() as i64)).unwrap_or_default();
        if shared.totals(conn, Some(&ns))? != want {
            report.counters_consistent = false;
        }
    }
    // Rows of a namespace that is not registered have no totals at all.
    report.counters_consistent &= sums.is_empty();

    // Files of rows that this transaction (a group of writes that check joined) or an
    // earlier one replaced or deleted are queued for removal: not orphans, they go
    // when it commits (or at the next drain).
    {
        let mut st = conn.prepare(schema::DISCARDED_FILES).map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            referenced.insert(r.get::<_, String>(0).map_err(err)?);
        }
    }
    let (files, stale_temps) = shared.files.scan()?;
    let orphans: Vec<PathBuf> = files
        .iter()
        .filter(|f| !referenced.contains(*f))
        .map(|f| shared.files.data.join(f))
        .collect();
    report.orphaned_files = (orphans.len() + stale_temps.len()) as u64;

    Ok(Findings {
        dangling,
        resize,
        orphans,
        stale_temps,
    })
}
