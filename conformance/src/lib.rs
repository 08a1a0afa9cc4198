//! The conformance suite: the semantics every engine behind the
//! [`Engine`](sciqlop_cache::Engine) contract must keep, written once and run against
//! any [`AnyStore`] — the SQLite engine natively and in a browser build, a fanout, the
//! guest engine inside a WebAssembly plugin (through the host), a Redis engine.
//!
//! [`run`] runs every case on a fresh store from the caller's factory and returns a
//! [`Report`]. A case that needs what the engine's [`Capabilities`] say it lacks is
//! reported as skipped with the reason (the documented exceptions); everything else
//! must pass.
//!
//! ```ignore
//! let report = sciqlop_cache_conformance::run(&mut || open_a_fresh_store());
//! report.assert_passed();
//! ```
//!
//! [`Capabilities`]: sciqlop_cache::Capabilities

mod cases;
mod model;

use sciqlop_cache::{AnyStore, Capabilities, Kind};

/// What one case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// Not run: the engine lacks what the case tests (why).
    Skipped(String),
    /// A check failed (what was expected and what happened).
    Failed(String),
}

/// The outcome of every case, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (case name, outcome).
    pub outcomes: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// The cases that failed, with their messages.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed(m) => Some((*n, m.as_str())),
                _ => None,
            })
            .collect()
    }

    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Passed)
            .count()
    }

    /// The cases that were skipped (the engine's documented exceptions), in order.
    pub fn skipped(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Panics with every failure unless all cases passed or were skipped.
    pub fn assert_passed(&self) {
        let f = self.failures();
        assert!(f.is_empty(), "conformance failures:\n{self}");
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, o) in &self.outcomes {
            match o {
                Outcome::Passed => writeln!(f, "ok      {name}")?,
                Outcome::Skipped(why) => writeln!(f, "skipped {name}: {why}")?,
                Outcome::Failed(m) => writeln!(f, "FAILED  {name}: {m}")?,
            }
        }
        write!(
            f,
            "{} passed, {} skipped, {} failed",
            self.passed(),
            self.outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
                .count(),
            self.failures().len()
        )
    }
}

/// What a case needs of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    CacheKind,
    Transactions,
    Savepoints,
    Versions,
    AtomicBatches,
    Namespaces,
    EntryInfo,
    Metadata,
}

impl Needs {
    /// Why a store cannot run a case that needs this, if it cannot.
    fn missing(self, caps: &Capabilities, kind: Kind) -> Option<String> {
        let (ok, what) = match self {
            Needs::CacheKind => (kind.expiry && kind.tags, "a cache (expiry, tags)"),
            Needs::Transactions => (caps.transactions, "transactions"),
            Needs::Savepoints => (caps.savepoints, "savepoints"),
            Needs::Versions => (caps.versions, "entry versions"),
            Needs::AtomicBatches => (caps.atomic_batches, "writes atomic across all keys"),
            Needs::Namespaces => (caps.namespaces, "named namespaces"),
            Needs::EntryInfo => (caps.entry_info, "entry metadata"),
            Needs::Metadata => (caps.metadata, "store metadata"),
        };
        (!ok).then(|| match self {
            Needs::CacheKind => "the store is an index, not a cache (no expiry, no tags)".into(),
            _ => format!("the {} engine has no {what}", caps.name),
        })
    }
}

/// A failed check: what it expected.
type Check = Result<(), String>;

/// One case of the suite.
struct Case {
    name: &'static str,
    needs: &'static [Needs],
    run: fn(&AnyStore) -> Check,
}

/// Runs every case, each on a fresh, empty store from `fresh`. A store whose
/// default namespace is not empty is cleared first.
pub fn run(fresh: &mut dyn FnMut() -> AnyStore) -> Report {
    let mut report = Report::default();
    for case in cases::ALL {
        let store = fresh();
        let caps = store.capabilities();
        let kind = store.kind();
        if let Some(why) = case.needs.iter().find_map(|n| n.missing(&caps, kind)) {
            report.outcomes.push((case.name, Outcome::Skipped(why)));
            continue;
        }
        let outcome = match store
            .clear()
            .map_err(|e| e.to_string())
            .and_then(|_| (case.run)(&store))
        {
            Ok(()) => Outcome::Passed,
            Err(m) => Outcome::Failed(m),
        };
        report.outcomes.push((case.name, outcome));
    }
    report
}

/// Fails the case with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// The value of a result, or the case fails naming what was being done.
pub(crate) fn ok<T>(r: sciqlop_cache::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: unexpected error: {e}"))
}
