//! Group commit: autocommit writes that several threads of one process make at the same
//! time on one store share one SQLite commit.
//!
//! A commit (WAL frames written, locks taken and released) is most of an autocommit
//! write's cost; a write inside an open transaction costs a fraction of it, and the pages
//! that a group's writes share are written to the WAL once. Writers that meet are
//! therefore applied in one transaction, each acknowledged only once it has committed.
//!
//! The protocol (flat combining):
//! - A writer that finds no leader becomes the leader: it takes the writer lock and
//!   writes exactly as without groups (its own autocommit write: a writer alone never
//!   waits for company), then serves one round: every write queued meanwhile, in one
//!   transaction (`BEGIN IMMEDIATE`), each in its own savepoint, then one commit, and
//!   the next round while writes were queued meanwhile, up to [`MAX_ROUNDS`]. Then, if
//!   writes are queued, it hands the lead to the first of them; otherwise the next
//!   writer to come leads.
//! - A writer that finds a leader queues its write and sleeps until the round that ran
//!   it has committed (or until it is handed the lead, when it serves the round that
//!   holds its own write).
//! - A queued write that fails (an `add` that finds its key, a value that is not a
//!   counter, a full disk) is rolled back alone, to its savepoint, and its writer gets
//!   its own error; a panic in it is caught and resumed in its writer's thread. If SQLite
//!   drops the whole transaction (a write failed with an error that aborts it) or the
//!   commit fails, every writer of the round gets an error: no write is acknowledged that
//!   was not committed.
//!
//! A queued write is a closure on its writer's stack, run by the leader's thread: the
//! writer's thread sleeps until the leader is done with it ([`Combiner::submit`]'s safety
//! argument). Explicit transactions keep their semantics: they take the writer lock, so
//! they run between rounds, never inside one.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::writer::Writer;
use crate::Error;

/// Rounds a leader serves before handing the lead on: bounds its own latency.
pub(crate) const MAX_ROUNDS: usize = 8;

/// A queued write as the leader runs it: true if it succeeded (its savepoint is then
/// released; otherwise rolled back). It runs at most once; later calls do nothing.
pub(crate) type Job<'a> = dyn FnMut(&mut Writer) -> bool + Send + 'a;

/// Writes waiting for the leader, and whether there is one.
#[derive(Default)]
pub(crate) struct Combiner {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    leader: bool,
    queue: Vec<Queued>,
}

struct Queued {
    /// Points into the stack of a writer that sleeps on `done` until it is finished.
    job: &'static mut Job<'static>,
    done: Arc<Done>,
}

/// Where a queued write stands, as its writer sees it.
#[derive(Default)]
pub(crate) struct Done {
    state: Mutex<Signal>,
    cv: Condvar,
}

#[derive(Default)]
enum Signal {
    #[default]
    Queued,
    /// The writer now leads: it serves the round that holds its own write.
    Lead,
    /// The round that took the write is over: whether it committed.
    Finished(Result<(), Error>),
}

impl Done {
    fn set(&self, s: Signal) {
        *self.state.lock() = s;
        self.cv.notify_one();
    }
}

thread_local! {
    /// This thread's signal (a thread has at most one write queued at a time).
    static DONE: Arc<Done> = Arc::new(Done::default());
}

/// What a writer is to do.
pub(crate) enum Role {
    /// Write directly, then serve a round and hand on the lead ([`Leadership`]).
    Lead,
    /// Queue the write ([`Combiner::submit`]).
    Follow,
}

impl Combiner {
    /// Becomes the leader if there is none.
    pub(crate) fn enter(&self) -> Role {
        let mut st = self.state.lock();
        if st.leader {
            Role::Follow
        } else {
            st.leader = true;
            Role::Lead
        }
    }

    /// Queues `job` and sleeps until a round has run it (or dropped it, if the round
    /// failed first) and is over: returns the round's outcome. If this writer is handed
    /// the lead meanwhile, it calls `lead` (which serves a round, its own write
    /// included) and goes on waiting.
    pub(crate) fn submit(&self, job: &mut Job<'_>, mut lead: impl FnMut()) -> Result<(), Error> {
        let done = DONE.with(Arc::clone);
        *done.state.lock() = Signal::Queued;
        // SAFETY: the queue (and a round that takes the job from it) holds this reference
        // only until it sets `done` to `Finished`, and this function does not return
        // before it sees `Finished`: the loop below has no other way out and cannot
        // unwind (a panic while leading is caught and resumed after it), so the closure
        // and everything it borrows outlive every use. A round that unwinds still
        // finishes the jobs it took (`Round`'s `Drop`).
        #[allow(unsafe_code)]
        let job: &'static mut Job<'static> =
            unsafe { std::mem::transmute::<&mut Job<'_>, &'static mut Job<'static>>(job) };
        self.state.lock().queue.push(Queued {
            job,
            done: done.clone(),
        });
        // A panic while leading is resumed only once the job is finished.
        let mut panicked = None;
        let mut st = done.state.lock();
        let out = loop {
            match std::mem::take(&mut *st) {
                Signal::Finished(out) => break out,
                Signal::Lead => {
                    drop(st);
                    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(&mut lead)) {
                        panicked = Some(p);
                    }
                    st = done.state.lock();
                }
                Signal::Queued => done.cv.wait(&mut st),
            }
        };
        drop(st);
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
        out
    }

    /// Writes queued now, and whether a leader is at work.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> (usize, bool) {
        let st = self.state.lock();
        (st.queue.len(), st.leader)
    }

    /// Takes every queued write for a round.
    pub(crate) fn take_round(&self) -> Round {
        Round::of(std::mem::take(&mut self.state.lock().queue))
    }

    /// Ends a leader's turn: the first queued writer leads next, or the next writer to
    /// come does.
    fn hand_on(&self) {
        let mut st = self.state.lock();
        match st.queue.first() {
            Some(next) => next.done.set(Signal::Lead),
            None => st.leader = false,
        }
    }
}

/// A leader's turn: handed on when dropped (also when the leader's own write panics),
/// unless the leader stepped down with nothing queued.
pub(crate) struct Leadership<'a> {
    combiner: &'a Combiner,
    over: bool,
}

impl<'a> Leadership<'a> {
    pub(crate) fn new(combiner: &'a Combiner) -> Self {
        Leadership {
            combiner,
            over: false,
        }
    }

    /// The writes queued for the next round; `None` when none is: the turn is then over
    /// (one lock for both, the common case of a writer alone).
    pub(crate) fn next_round(&mut self) -> Option<Round> {
        let mut st = self.combiner.state.lock();
        if st.queue.is_empty() {
            st.leader = false;
            self.over = true;
            return None;
        }
        Some(Round::of(std::mem::take(&mut st.queue)))
    }
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        if !self.over {
            self.combiner.hand_on();
        }
    }
}

/// The writes of one round; each writer is told the round's outcome when it is dropped.
pub(crate) struct Round {
    jobs: Vec<Queued>,
    /// What the writers are told: until the round has committed, that it did not.
    pub(crate) outcome: Result<(), Error>,
}

impl Round {
    /// A round of `jobs`, not committed yet.
    fn of(jobs: Vec<Queued>) -> Self {
        Round {
            jobs,
            outcome: Err(Error::TransactionAborted),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Runs write `i` (see [`Job`]).
    pub(crate) fn run(&mut self, i: usize, w: &mut Writer) -> bool {
        (self.jobs[i].job)(w)
    }
}

impl Drop for Round {
    fn drop(&mut self) {
        for q in self.jobs.drain(..) {
            let out = match &self.outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(duplicate(e)),
            };
            q.done.set(Signal::Finished(out));
        }
    }
}

/// A copy of `e` for another writer of a failed round: the same variant for the errors a
/// commit or an aborted transaction produce, the same message otherwise.
pub(crate) fn duplicate(e: &Error) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Busy { path, timeout } => Error::Busy {
            path: path.clone(),
            timeout: *timeout,
        },
        Error::Corrupt { path, detail } => Error::Corrupt {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::ReadOnly { path, reason } => Error::ReadOnly {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::TransactionAborted => Error::TransactionAborted,
        Error::Engine { path, source } => Error::Engine {
            path: path.clone(),
            source: source.to_string().into(),
        },
        other => Error::Remote(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_round_tells_every_writer_a_copy_of_its_error() {
        let e = Error::io(
            "committing",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        match duplicate(&e) {
            Error::Io { source, context } => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
                assert_eq!(context, "committing");
            }
            other => panic!("unexpected copy {other:?}"),
        }
        assert!(matches!(
            duplicate(&Error::TransactionAborted),
            Error::TransactionAborted
        ));
    }
}
