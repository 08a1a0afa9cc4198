//! The writer connection: routing a write (joining this thread's transaction, or in its
//! own), the transaction state machine (levels, savepoints, a transaction SQLite rolled
//! back), and what happens when the outermost level ends (files unlinked, locks
//! released, an oversized WAL restarted).

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use parking_lot::ReentrantMutexGuard;
use rusqlite::Connection;

use super::errors::is_storage_full;
use super::group::{Job, Leadership, MAX_ROUNDS, Role, Round, duplicate};
use super::turnstile::Entry;
use super::{Shared, connection, schema, thread_token};
use crate::engine::EngineTx;
use crate::platform::PLATFORM;
use crate::{Error, Result};

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// Transaction nesting depth (0: autocommit).
    pub(crate) depth: u32,
    /// Value files installed by the open transaction, with the depth that made them.
    pub(crate) new_files: Vec<(u32, String)>,
    /// A trigger queued files in `discarded` since the last drain.
    pub(crate) discard_pending: bool,
    /// SQLite rolled the open transaction back after an error (disk full, I/O): every
    /// further operation in it fails until the outermost level ends.
    pub(crate) aborted: bool,
    /// Locks (name, owner) released inside the open transaction: deleted once it ends,
    /// committed or not (a rollback must not bring a released lock back).
    pub(crate) unlocks: Vec<(String, String)>,
    /// This writer holds the store's writers' turnstile (see `turnstile`).
    pub(crate) in_turnstile: bool,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Self {
        Writer {
            conn,
            depth: 0,
            new_files: Vec::new(),
            discard_pending: false,
            aborted: false,
            unlocks: Vec::new(),
            in_turnstile: false,
        }
    }

    /// After a failed statement inside a transaction: if SQLite dropped the whole
    /// transaction, remember it so the rest of it is refused rather than autocommitted.
    fn note_abort<T>(&mut self, out: &Result<T>) {
        if out.is_err() && self.depth > 0 && self.conn.is_autocommit() {
            self.aborted = true;
        }
    }

    pub(crate) fn note_discards(&mut self, total_before: u64, changes: u64) {
        // Each entry row changed by a statement fires at most one totals update; any
        // change beyond that is a row queued in `discarded`.
        if self.conn.total_changes() - total_before > 2 * changes {
            self.discard_pending = true;
        }
    }
}

type WriterGuard<'a> = ReentrantMutexGuard<'a, RefCell<Writer>>;

impl Shared {
    /// Takes the writer, waiting at most the busy timeout for another thread's
    /// transaction to end.
    pub(crate) fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        if let Some(g) = self.writer.try_lock() {
            return Ok(g);
        }
        if !PLATFORM.threads {
            return Ok(self.writer.lock());
        }
        self.writer
            .try_lock_for(self.config.busy_timeout)
            .ok_or_else(|| self.busy())
    }

    /// What a write that waited the whole busy timeout for the writer gets.
    fn busy(&self) -> Error {
        Error::Busy {
            path: self.db_path.clone(),
            timeout: self.config.busy_timeout,
        }
    }

    /// Refuses writes to a read-only store ([`Error::ReadOnly`], naming what is not
    /// writable).
    #[inline]
    pub(crate) fn writable(&self) -> Result<()> {
        match &self.read_only {
            Some(ro) => Err(ro.error()),
            None => Ok(()),
        }
    }

    /// Runs a write. Inside this thread's transaction it joins it; otherwise it runs in
    /// its own transaction (`immediate`: BEGIN IMMEDIATE … COMMIT, for multi-statement
    /// writes) or in autocommit mode (single-statement writes).
    pub(crate) fn write<T: Send>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut Writer) -> Result<T> + Send,
    ) -> Result<T> {
        let out = self.write_once(immediate, f);
        if let Err(e) = &out
            && is_storage_full(e)
        {
            self.note_disk_full();
        }
        out
    }

    /// A write that frees space or needs almost none (delete, clear, incr, touch,
    /// evictions): on a full disk it releases the store's reserve file and tries again,
    /// so that space can always be freed (outside a transaction: inside one, SQLite may
    /// have rolled it back, and the caller must retry the whole transaction).
    pub(crate) fn write_freeing<T: Send>(
        &self,
        immediate: bool,
        f: impl Fn(&mut Writer) -> Result<T> + Sync,
    ) -> Result<T> {
        match self.write(immediate, &f) {
            Err(e) if is_storage_full(&e) && !self.in_tx_here() && self.files.release_reserve() => {
                tracing::warn!(dir = %self.dir.display(), "disk full: released the store's reserve to free space");
                self.write(immediate, &f)
            }
            r => r,
        }
    }

    fn write_once<T: Send>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut Writer) -> Result<T> + Send,
    ) -> Result<T> {
        self.writable()?;
        let grouping = self.config.group_commit
            && PLATFORM.threads
            && PLATFORM.wal
            && !self.writer.is_owned_by_current_thread();
        if !grouping {
            return self.write_direct(immediate, self.lock_writer()?, f);
        }
        match self.combiner.enter() {
            Role::Lead => {
                let mut turn = Leadership::new(&self.combiner);
                let guard = match self.lock_writer() {
                    Ok(g) => g,
                    Err(e) => {
                        // The writes queued meanwhile would wait as long: they fail too.
                        self.combiner.take_round().outcome = Err(duplicate(&e));
                        return Err(e);
                    }
                };
                let out = self.write_direct(immediate, self.reborrow(&guard), f);
                self.serve_rounds(&guard, &mut turn);
                out
            }
            Role::Follow => self.follow(f),
        }
    }

    /// The writer, locked again by the thread that holds it (a reentrant lock: free).
    fn reborrow<'a>(&'a self, _held: &WriterGuard<'a>) -> WriterGuard<'a> {
        self.writer.lock()
    }

    /// A write on the writer, without groups: inside this thread's transaction it joins
    /// it; otherwise it runs in its own transaction (`immediate`) or in autocommit mode.
    fn write_direct<'a, T>(
        &'a self,
        immediate: bool,
        guard: WriterGuard<'a>,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        let mut w = guard.borrow_mut();
        if w.depth > 0 {
            if w.aborted {
                return Err(Error::TransactionAborted);
            }
            let out = f(&mut w);
            w.note_abort(&out);
            return out;
        }
        if immediate {
            drop(w);
            let tx = SqliteTx::begin(self, guard)?;
            let out = {
                let mut w = tx.guard.borrow_mut();
                let out = f(&mut w);
                w.note_abort(&out);
                out
            };
            let out = out?;
            tx.commit_now()?;
            Ok(out)
        } else {
            self.enter_turnstile(&mut w)?;
            let out = match f(&mut w) {
                Ok(v) if w.discard_pending => {
                    drop(w);
                    let r =
                        SqliteTx::begin(self, self.reborrow(&guard)).and_then(SqliteTx::commit_now);
                    w = guard.borrow_mut();
                    r.map(|()| v)
                }
                Ok(v) => {
                    self.note_commit();
                    self.restart_wal_inline(&w);
                    Ok(v)
                }
                Err(e) => Err(e),
            };
            self.leave_turnstile(&mut w);
            out
        }
    }

    /// Queues `f` for the leader's next round and returns its result once that round
    /// has committed (see `group`).
    fn follow<T: Send>(&self, f: impl FnOnce(&mut Writer) -> Result<T> + Send) -> Result<T> {
        let mut f = Some(f);
        let mut result: Option<std::thread::Result<Result<T>>> = None;
        let mut job = |w: &mut Writer| -> bool {
            let Some(f) = f.take() else {
                return false;
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let out = f(w);
                w.note_abort(&out);
                out
            }));
            let ok = matches!(r, Ok(Ok(_)));
            result = Some(r);
            ok
        };
        let job: &mut Job<'_> = &mut job;
        let outcome = self.combiner.submit(job, || {
            let mut turn = Leadership::new(&self.combiner);
            match self.lock_writer() {
                Ok(guard) => self.serve_rounds(&guard, &mut turn),
                Err(e) => self.combiner.take_round().outcome = Err(e),
            }
        });
        match result {
            // Its own failure first: it was rolled back whatever the round did.
            Some(Ok(Err(e))) => Err(e),
            Some(Ok(Ok(v))) => outcome.map(|()| v),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            // Not run: the round failed before it.
            None => Err(outcome.err().unwrap_or(Error::TransactionAborted)),
        }
    }

    /// Serves rounds while writes are queued, [`MAX_ROUNDS`] at most (handing the lead on
    /// costs a thread's wake-up, while the next round is usually queued already). Each
    /// round's writes run in one transaction, each in its own savepoint (a round of one
    /// needs none), and commit together; the writers are told when the round is dropped.
    fn serve_rounds(&self, guard: &WriterGuard<'_>, turn: &mut Leadership<'_>) {
        for _ in 0..MAX_ROUNDS {
            let Some(mut round) = turn.next_round() else {
                return;
            };
            let mut w = guard.borrow_mut();
            round.outcome = self.run_round(&mut w, &mut round);
        }
    }

    fn run_round(&self, w: &mut Writer, round: &mut Round) -> Result<()> {
        self.begin_level(w)?;
        let single = round.len() == 1;
        for i in 0..round.len() {
            let ok = if single {
                round.run(i, w)
            } else {
                if let Err(e) = self.begin_level(w) {
                    self.rollback_level(w);
                    return Err(e);
                }
                let ok = round.run(i, w);
                if !ok {
                    self.rollback_level(w);
                } else if let Err(e) = self.commit_level(w) {
                    // The write said it succeeded but its savepoint could not be kept:
                    // the whole round fails, so that nobody is told of a lost write.
                    self.rollback_level(w);
                    self.rollback_level(w);
                    return Err(e);
                }
                ok
            };
            if w.aborted {
                // SQLite dropped the transaction: nothing of the round is written.
                self.rollback_level(w);
                return Err(Error::TransactionAborted);
            }
            if single && !ok {
                self.rollback_level(w);
                return Ok(());
            }
        }
        let out = self.commit_level(w);
        if out.is_err() && w.depth > 0 {
            self.rollback_level(w);
        }
        out
    }

    /// Runs one mutating statement and notes whether triggers queued discarded files.
    pub(crate) fn exec(
        &self,
        w: &mut Writer,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<usize> {
        let before = w.conn.total_changes();
        let n = w
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(|e| self.sql_err(e))?;
        w.note_discards(before, n as u64);
        Ok(n)
    }

    /// Counts a commit.
    fn note_commit(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.pin.release();
        self.signal.nudge();
    }

    /// Deletes the locks released inside the transaction that just ended (the writer is
    /// back in autocommit mode).
    fn release_locks(&self, w: &mut Writer) {
        for (name, owner) in std::mem::take(&mut w.unlocks) {
            if let Err(e) = self.exec(w, schema::UNLOCK, (&name, &owner)) {
                tracing::warn!(lock = %name, error = %e, "releasing lock failed; it will expire");
            }
        }
    }

    /// With no maintenance thread, restarts an oversized WAL on the writer (see
    /// `connection`); called with the writer held, outside any transaction.
    fn restart_wal_inline(&self, w: &Writer) {
        if !self.threaded.load(Ordering::Relaxed)
            && self.signal.take_wal_full()
            && let Err(e) = connection::restart_wal(&w.conn, &self.pin, self.config.busy_timeout)
        {
            tracing::debug!(error = %e, "restarting the WAL failed; retried at the next commit");
            self.signal.set_wal_full();
        }
    }

    /// Begins a transaction level on the writer.
    pub(crate) fn begin(&self) -> Result<SqliteTx<'_>> {
        self.writable()?;
        let guard = self.lock_writer()?;
        SqliteTx::begin(self, guard)
    }
}

/// An open transaction level; rolled back when dropped without `commit`.
pub(crate) struct SqliteTx<'a> {
    shared: &'a Shared,
    guard: WriterGuard<'a>,
    done: bool,
}

impl<'a> SqliteTx<'a> {
    fn begin(shared: &'a Shared, guard: WriterGuard<'a>) -> Result<Self> {
        shared.begin_level(&mut guard.borrow_mut())?;
        Ok(SqliteTx {
            shared,
            guard,
            done: false,
        })
    }

    fn rollback_level(&mut self) {
        self.shared.rollback_level(&mut self.guard.borrow_mut());
    }

    fn commit_level(&mut self) -> Result<()> {
        self.shared.commit_level(&mut self.guard.borrow_mut())
    }
}

/// The statement that opens (`begin`), releases (`commit`) or undoes (`rollback`) the
/// level above `depth` (0: the transaction itself); constant for the levels a group uses,
/// so that they are prepared once.
fn level_sql(op: &str, depth: u32) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow::{Borrowed, Owned};
    match (op, depth) {
        ("begin", 0) => Borrowed("BEGIN IMMEDIATE"),
        ("commit", 0) => Borrowed("COMMIT"),
        ("rollback", 0) => Borrowed("ROLLBACK"),
        ("begin", 1) => Borrowed("SAVEPOINT sp1"),
        ("commit", 1) => Borrowed("RELEASE sp1"),
        ("begin", d) => Owned(format!("SAVEPOINT sp{d}")),
        ("commit", d) => Owned(format!("RELEASE sp{d}")),
        (_, d) => Owned(format!("ROLLBACK TO sp{d}; RELEASE sp{d}")),
    }
}

impl Shared {
    /// Opens a transaction level on the writer: the transaction at depth 0, a savepoint
    /// above.
    fn begin_level(&self, w: &mut Writer) -> Result<()> {
        if w.aborted {
            return Err(Error::TransactionAborted);
        }
        if w.depth == 0 {
            self.enter_turnstile(w)?;
        }
        if let Err(e) = w
            .conn
            .prepare_cached(&level_sql("begin", w.depth))
            .and_then(|mut st| st.execute([]))
        {
            if w.depth == 0 {
                self.leave_turnstile(w);
            }
            return Err(self.sql_err(e));
        }
        w.depth += 1;
        if w.depth == 1 {
            self.tx_owner.store(thread_token(), Ordering::Release);
        }
        Ok(())
    }

    /// Undoes the innermost level; at the outermost, ends the transaction.
    fn rollback_level(&self, w: &mut Writer) {
        let depth = w.depth;
        if !w.aborted
            && !w.conn.is_autocommit()
            && let Err(e) = w.conn.execute_batch(&level_sql("rollback", depth - 1))
        {
            tracing::error!(error = %e, "rollback failed");
        }
        // Files installed at this level or deeper are no longer referenced.
        while let Some((d, _)) = w.new_files.last()
            && *d >= depth
        {
            if let Some((_, rel)) = w.new_files.pop() {
                self.files.remove(&rel);
            }
        }
        w.depth = depth - 1;
        if w.depth == 0 {
            w.discard_pending = false;
            w.aborted = false;
            self.tx_owner.store(0, Ordering::Release);
            self.release_locks(w);
            self.leave_turnstile(w);
        }
    }

    /// Takes the writers' turnstile before a write transaction or statement (at most
    /// the busy timeout; once per transaction however often called).
    fn enter_turnstile(&self, w: &mut Writer) -> Result<()> {
        let Some(t) = &self.turnstile else {
            return Ok(());
        };
        if w.in_turnstile {
            return Ok(());
        }
        match t.enter(self.config.busy_timeout) {
            Entry::Held => w.in_turnstile = true,
            Entry::Skipped => {}
            Entry::TimedOut => return Err(self.busy()),
        }
        Ok(())
    }

    /// Gives the turnstile back once the write is over (committed or not).
    fn leave_turnstile(&self, w: &mut Writer) {
        if w.in_turnstile
            && let Some(t) = &self.turnstile
        {
            w.in_turnstile = false;
            t.leave();
        }
    }

    /// Releases the innermost level into the one below; at the outermost, commits.
    fn commit_level(&self, w: &mut Writer) -> Result<()> {
        if w.aborted {
            return Err(Error::TransactionAborted);
        }
        if w.depth > 1 {
            let d = w.depth - 1;
            w.conn
                .prepare_cached(&level_sql("commit", d))
                .and_then(|mut st| st.execute([]))
                .map_err(|e| self.sql_err(e))?;
            for f in &mut w.new_files {
                if f.0 > d {
                    f.0 = d;
                }
            }
            w.depth = d;
            return Ok(());
        }
        let mut unlink = Vec::new();
        if w.discard_pending {
            let mut st = w
                .conn
                .prepare_cached(schema::DRAIN_DISCARDED)
                .map_err(|e| self.sql_err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.sql_err(e))?;
            for r in rows {
                unlink.push(r.map_err(|e| self.sql_err(e))?);
            }
        }
        w.conn
            .prepare_cached("COMMIT")
            .and_then(|mut st| st.execute([]))
            .map_err(|e| self.sql_err(e))?;
        self.note_commit();
        w.depth = 0;
        w.discard_pending = false;
        w.new_files.clear();
        self.tx_owner.store(0, Ordering::Release);
        self.release_locks(w);
        self.restart_wal_inline(w);
        self.leave_turnstile(w);
        for rel in unlink {
            self.files.remove(&rel);
        }
        Ok(())
    }
}

impl SqliteTx<'_> {
    /// Commits this level; on error, `Drop` rolls it back.
    pub(crate) fn commit_now(mut self) -> Result<()> {
        self.commit_level()?;
        self.done = true;
        Ok(())
    }
}

impl EngineTx for SqliteTx<'_> {
    fn commit(self: Box<Self>) -> Result<()> {
        (*self).commit_now()
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback_level();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::sqlite::SqliteEngine;
    use crate::engine::{Engine, Namespace};
    use crate::options::{Config, SetOptions};
    use crate::policy::Kind;
    use rusqlite::OptionalExtension;

    fn engine(dir: &std::path::Path, group_commit: bool) -> SqliteEngine {
        let config = Config {
            group_commit,
            // Files above 64 bytes: a file-backed write joins the group too.
            file_threshold: 64,
            maintenance_interval: Duration::ZERO,
            ..Config::default()
        };
        SqliteEngine::open(dir, config, Some(Kind::CACHE)).expect("open")
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let t = std::time::Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    type Write<'a> = Box<dyn FnOnce() -> Result<String> + Send + 'a>;

    /// Runs `leader` and then `others` in threads while this thread holds the writer in
    /// a transaction: with group commit, `leader` leads (it waits for the writer) and the
    /// others queue for its round. Returns the results (leader first) and the commits
    /// they took.
    fn meet(
        e: &SqliteEngine,
        leader: Write<'_>,
        others: Vec<Write<'_>>,
    ) -> (Vec<std::thread::Result<Result<String>>>, u64) {
        let tx = e.begin(None).expect("begin");
        let before = e.shared.commits();
        let n = others.len();
        let results = std::thread::scope(|s| {
            let mut handles = vec![s.spawn(leader)];
            if e.shared.config.group_commit {
                wait_for("a leader", || e.shared.combiner.queued().1);
            }
            handles.extend(others.into_iter().map(|w| s.spawn(w)));
            if e.shared.config.group_commit {
                wait_for("the queued writes", || e.shared.combiner.queued().0 == n);
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            tx.commit().expect("commit");
            handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        });
        // The transaction's own commit is not the writers'.
        (results, e.shared.commits() - before - 1)
    }

    fn outcome(r: &std::thread::Result<Result<String>>) -> String {
        match r {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(Error::NotACounter { .. })) => "not a counter".into(),
            Ok(Err(e)) => format!("error {e}"),
            Err(p) => format!(
                "panic {}",
                p.downcast_ref::<&str>()
                    .copied()
                    .unwrap_or("(not a string)")
            ),
        }
    }

    #[test]
    fn writers_that_meet_share_one_commit_and_keep_their_own_results() {
        for group_commit in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let e = engine(dir.path(), group_commit);
            let ns = Namespace::DEFAULT;
            let opts = SetOptions::new();
            e.set(&ns, "taken", b"x", &opts).expect("set");
            e.set(&ns, "text", b"not a number", &opts).expect("set");
            let big = vec![7u8; 1000];
            let (e, ns, opts, big) = (&e, &ns, &opts, &big);
            let (results, commits) = meet(
                e,
                Box::new(move || e.set(ns, "a", b"1", opts).map(|()| "set".into())),
                vec![
                    Box::new(move || e.add(ns, "taken", b"y", opts).map(|b| format!("add {b}"))),
                    Box::new(move || e.incr(ns, "text", 1, 0).map(|n| format!("incr {n}"))),
                    Box::new(move || e.set(ns, "big", big, opts).map(|()| "set".into())),
                    Box::new(move || e.add(ns, "new", b"n", opts).map(|b| format!("add {b}"))),
                ],
            );
            let got: Vec<String> = results.iter().map(outcome).collect();
            assert_eq!(
                got,
                ["set", "add false", "not a counter", "set", "add true"],
                "group commit {group_commit}"
            );
            // Grouped: the leader's own commit and one for the four others. Alone: one
            // each, but for the failed incr.
            assert_eq!(
                commits,
                if group_commit { 2 } else { 4 },
                "group commit {group_commit}"
            );
            let get = |k| e.get(ns, k).expect("get");
            assert_eq!(get("taken").as_deref(), Some(&b"x"[..]));
            assert_eq!(get("text").as_deref(), Some(&b"not a number"[..]));
            assert_eq!(get("a").as_deref(), Some(&b"1"[..]));
            assert_eq!(get("big").as_ref(), Some(big));
            assert_eq!(get("new").as_deref(), Some(&b"n"[..]));
            assert_eq!(e.len(ns).expect("len"), 5);
            let report = e.check(false).expect("check");
            assert!(report.ok && report.orphaned_files == 0, "{report:?}");
        }
    }

    #[test]
    fn a_panic_in_a_queued_write_is_its_writers_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path(), true);
        let ns = Namespace::DEFAULT;
        let opts = SetOptions::new();
        let (e, ns, opts) = (&e, &ns, &opts);
        let (results, commits) = meet(
            e,
            Box::new(move || e.set(ns, "a", b"1", opts).map(|()| "set".into())),
            vec![
                Box::new(move || {
                    e.shared.write(false, |w| {
                        w.conn
                            .execute("INSERT INTO meta(key, value) VALUES ('half', 'done')", [])
                            .map_err(|e| Error::Remote(e.to_string()))?;
                        panic!("boom")
                    })
                }),
                Box::new(move || e.set(ns, "b", b"2", opts).map(|()| "set".into())),
            ],
        );
        let got: Vec<String> = results.iter().map(outcome).collect();
        assert_eq!(got, ["set", "panic boom", "set"]);
        assert_eq!(commits, 2);
        assert_eq!(e.get(ns, "b").expect("get").as_deref(), Some(&b"2"[..]));
        // The panicking write was rolled back to its savepoint.
        let half: Option<String> = e
            .shared
            .read(|c| {
                c.query_row("SELECT value FROM meta WHERE key = 'half'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| Error::Remote(e.to_string()))
            })
            .expect("read");
        assert_eq!(half, None);
        // The store goes on.
        e.set(ns, "after", b"v", opts).expect("set after");
        assert!(!e.in_transaction());
    }
}
