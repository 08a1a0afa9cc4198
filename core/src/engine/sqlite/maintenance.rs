//! The background thread: runs the upkeep (recency flush, expiry purge, eviction,
//! freeing space on a full disk) and watches the WAL (checkpoints once writes pause,
//! restarts when it grows too long, the read pin).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use super::{Shared, connection};
use crate::{Error, Result};

/// Wake-up flags between a store and its maintenance thread.
#[derive(Default)]
pub(crate) struct Signal {
    /// (work requested, stop requested)
    state: Mutex<(bool, bool)>,
    cond: Condvar,
    /// The thread is (about to be) asleep with no commit to checkpoint.
    idle: AtomicBool,
    /// The writer's WAL hook found the WAL past `WAL_RESTART_FRAMES` with passive
    /// checkpoints unable to catch up: it must be restarted.
    wal_full: AtomicBool,
}

impl Signal {
    /// Raises the WAL alarm (from the writer's WAL hook) and wakes the thread.
    pub(crate) fn set_wal_full(&self) {
        if !self.wal_full.swap(true, Ordering::SeqCst) {
            self.idle.store(false, Ordering::SeqCst);
            let _st = self.state.lock();
            self.cond.notify_one();
        }
    }

    /// Takes (clears) the WAL alarm; whether it was raised.
    pub(crate) fn take_wal_full(&self) -> bool {
        self.wal_full.load(Ordering::Relaxed) && self.wal_full.swap(false, Ordering::SeqCst)
    }

    fn wal_full(&self) -> bool {
        self.wal_full.load(Ordering::Relaxed)
    }

    /// Asks the maintenance thread to run now.
    pub(crate) fn wake(&self) {
        self.state.lock().0 = true;
        self.cond.notify_one();
    }

    /// After a commit (counted with `SeqCst` before this call) or the first read of a
    /// while: if the thread sleeps with nothing to watch, wakes it so that it watches
    /// for the writes to pause (and pins reads). Costs one atomic load, and a lock once
    /// per idle period.
    pub(crate) fn nudge(&self) {
        if self.idle.load(Ordering::SeqCst) && self.idle.swap(false, Ordering::SeqCst) {
            // Under the lock: the thread is either waiting, or has not read the count.
            let _st = self.state.lock();
            self.cond.notify_one();
        }
    }
}

/// Handle of a running maintenance thread; `stop` joins it.
pub(crate) struct Maintenance {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    pub(crate) fn start(shared: Arc<Shared>) -> Result<Self> {
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sciqlop-cache-maintenance".into())
            .spawn(move || run(&s))
            .map_err(|e| Error::io("starting the maintenance thread", e))?;
        Ok(Maintenance {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn stop(mut self) {
        let signal = &self.shared.signal;
        signal.state.lock().1 = true;
        signal.cond.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.pin.release();
    }
}

/// How long writes (of any process) must pause before the thread checkpoints the WAL:
/// readers then find it fully copied and skip their WAL-index lookups, and no
/// checkpoint competes with a busy writer (which checkpoints itself, see
/// `CHECKPOINT_FRAMES`). Also how long reads must pause before the read pin goes.
const QUIET: Duration = Duration::from_millis(50);

/// How often the thread looks for commits (of any process) while the WAL or the reads
/// are active, and how long writes must pause before reads are pinned (see `pin`).
const PIN_POLL: Duration = Duration::from_millis(5);

fn run(shared: &Shared) {
    let every = shared.config.maintenance_interval;
    let signal = &shared.signal;
    let mut last_tick = Instant::now();
    // Inside the engine only with the fork gate open (see `crate::fork`): held at all
    // times but while waiting. Declared before `wal`, so held while `wal` (and its
    // connection) is dropped when the thread ends.
    let mut gate = Some(crate::fork::background_work());
    let mut wal = WalWatch::new(shared);
    let mut wal_failing = false;
    let mut freed_at: Option<Instant> = None;
    loop {
        let woken = {
            let mut st = signal.state.lock();
            if !st.0 && !st.1 {
                let due = every.saturating_sub(last_tick.elapsed());
                // Set before `wait` reads the commit count: a commit (or a first read)
                // either is seen there or sees the flag and wakes this thread
                // (`Signal::nudge`).
                signal.idle.store(true, Ordering::SeqCst);
                let watch = wal.wait(shared);
                if watch < due {
                    // Awake again soon anyway: no need to be woken (a read would
                    // otherwise wake this thread after every pass).
                    signal.idle.store(false, Ordering::Relaxed);
                }
                gate = None;
                signal.cond.wait_for(&mut st, watch.min(due));
                signal.idle.store(false, Ordering::Relaxed);
            }
            (std::mem::take(&mut st.0), st.1)
        };
        let (woken, stopping) = woken;
        // Taken again with the signal's lock released (a fork in progress may hold it).
        if gate.is_none() {
            gate = Some(crate::fork::background_work());
        }
        if stopping {
            return;
        }
        if freed_at.is_none_or(|t| t.elapsed() >= FREE_EVERY)
            && shared.disk_full_pending()
            && let Some(conn) = wal.conn.as_ref()
        {
            freed_at = Some(Instant::now());
            shared.take_disk_full();
            if let Err(e) = shared.free_space(conn) {
                // Tried again in a second (the flag keeps the thread polling).
                shared.note_disk_full();
                tracing::warn!(dir = %shared.dir.display(), error = %e, "freeing space failed");
            }
        }
        if (woken || last_tick.elapsed() >= every)
            && let Err(e) = {
                last_tick = Instant::now();
                tick(shared)
            }
        {
            tracing::warn!(dir = %shared.dir.display(), error = %e, "cache maintenance failed");
        }
        match wal.update(shared) {
            Ok(()) => wal_failing = false,
            Err(e) => {
                // E.g. a read-only database: retried after a pause, not at every poll,
                // and reported once per run of failures.
                wal.back_off(shared);
                if !std::mem::replace(&mut wal_failing, true) {
                    tracing::warn!(dir = %shared.dir.display(), error = %e, "WAL upkeep failed");
                } else {
                    tracing::debug!(dir = %shared.dir.display(), error = %e, "WAL upkeep failed");
                }
            }
        }
    }
}

/// What the maintenance thread knows of the WAL: when it last changed, whether it has
/// been copied back since, and so whether reads may be pinned.
struct WalWatch {
    /// Checkpoints, and sees every commit (`PRAGMA data_version`), opened on first use.
    conn: Option<Connection>,
    /// This instance's commit count, and `conn`'s data version, when last looked at.
    commits: u64,
    version: Option<i64>,
    /// When a commit was last noticed.
    changed_at: Instant,
    /// The WAL has been copied back entirely since then.
    copied: bool,
    /// And its file truncated to zero bytes.
    truncated: bool,
    /// When pooled reads were last noticed.
    read_at: Option<Instant>,
    /// After an error, nothing is tried before this time.
    paused_until: Option<Instant>,
}

/// Least time between two rounds of freeing space after the disk filled up.
const FREE_EVERY: Duration = Duration::from_secs(1);

/// The pause after a failed checkpoint or pin.
const BACK_OFF: Duration = Duration::from_secs(1);

/// How long the thread's checkpoints wait for other connections (writers, readers of
/// other processes) before giving up for the moment.
pub(crate) const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

impl WalWatch {
    fn new(shared: &Shared) -> Self {
        WalWatch {
            conn: None,
            commits: shared.commits(),
            version: None,
            changed_at: Instant::now(),
            copied: false,
            truncated: false,
            read_at: None,
            paused_until: None,
        }
    }

    fn back_off(&mut self, shared: &Shared) {
        shared.pin.release();
        self.paused_until = Some(Instant::now() + BACK_OFF);
    }

    /// How long the thread may sleep.
    fn wait(&self, shared: &Shared) -> Duration {
        let now = Instant::now();
        if let Some(t) = self.paused_until
            && t > now
        {
            return t - now;
        }
        if shared.pin.is_held() || shared.commits() != self.commits || shared.signal.wal_full() {
            return PIN_POLL;
        }
        if shared.disk_full_pending() {
            return FREE_EVERY;
        }
        let mut wait = Duration::MAX;
        if !self.copied {
            wait = (self.changed_at + QUIET)
                .saturating_duration_since(now)
                .max(PIN_POLL);
        }
        if self.read_at.is_some_and(|t| now.duration_since(t) < QUIET) {
            wait = wait.min(PIN_POLL);
        }
        wait
    }

    fn update(&mut self, shared: &Shared) -> Result<()> {
        if self.paused_until.is_some_and(|t| t > Instant::now()) {
            return Ok(());
        }
        self.paused_until = None;
        if self.conn.is_none() {
            self.conn = Some(shared.open_reader_waiting(CHECKPOINT_WAIT)?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if shared.signal.take_wal_full()
            && let Err(e) = connection::restart_wal(conn, &shared.pin, CHECKPOINT_WAIT)
        {
            // Other processes' writers or readers did not let go in time: try again.
            shared.signal.set_wal_full();
            tracing::debug!(error = %e, "restarting the WAL failed; retrying");
        }
        let now = Instant::now();
        let commits = shared.commits();
        let version = conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| shared.sql_err(e))?;
        if commits != self.commits || Some(version) != self.version {
            // Someone wrote: a held pin would stop their checkpoints.
            shared.pin.release();
            self.commits = commits;
            self.version = Some(version);
            self.changed_at = now;
            self.copied = false;
        }
        if shared.take_read_activity() {
            self.read_at = Some(now);
        }
        let quiet_for = now.duration_since(self.changed_at);
        if !self.copied && quiet_for >= QUIET {
            // A passive checkpoint waits for no one and, once complete, lets every new
            // reader skip the WAL. The pin (on the mark of the last commit) would not
            // stop it, but readers use mark 0 once it completes: take the pin again
            // below.
            shared.pin.release();
            self.copied = connection::passive_checkpoint(conn).map_err(|e| shared.sql_err(e))?;
            self.truncated = false;
            if !self.copied {
                // A reader of another process holds part of it: try again later.
                self.changed_at = now;
            }
        }
        if self.copied && !self.truncated {
            // Then the file goes back to zero bytes, as soon as no reader of any process
            // is left on the WAL (tried at every poll while writes stay paused; never
            // waited for).
            self.truncated = connection::try_truncate_wal(conn).map_err(|e| shared.sql_err(e))?;
        }
        let reading = self.read_at.is_some_and(|t| now.duration_since(t) < QUIET);
        if shared.pin.is_held() {
            if !reading {
                shared.pin.release();
            }
        } else if reading && quiet_for >= PIN_POLL {
            // Pinned before the checkpoint too: readers then share the pin's read mark
            // (that of the last commit), which stops neither checkpoints nor writers;
            // only the WAL's restart, until the next commit releases it.
            shared.pin_reads(self.commits)?;
        }
        Ok(())
    }
}

fn tick(shared: &Shared) -> Result<()> {
    // Files queued by another program's deletes (or left when opening found the write
    // lock taken).
    shared.drain_discarded()?;
    shared.flush_recency()?;
    shared.purge_expired()?;
    shared.evict()?;
    // Made again once there is room (it was released on a full disk, or never made).
    if let Err(e) = shared.files.ensure_reserve() {
        tracing::debug!(error = %e, "the reserve cannot be made yet");
    }
    Ok(())
}
