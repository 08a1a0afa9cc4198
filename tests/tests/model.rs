//! Model-based property test: random operation sequences run against the store and
//! against a plain in-memory model (a map with expiry times and tags); every return value
//! and, after every step, the whole observable state must agree.
//!
//! Covers set, set_with (expiry, tag), get, add, delete, pop, touch, incr (counters,
//! non-counters, overflow), contains, len, keys, clear, expire, evict_tag, transactions of
//! several operations that commit or return `Err` (rolled back), a manual clock moved
//! forward by some steps, and reopening the store between steps. Values are small
//! (inline) or at least 64 bytes (file-backed with `.file_threshold(64)`).
//!
//! Invariants after each step: every key reads as the model says, `contains`, `len` and
//! `keys` agree, `size()` is the sum of the lengths of live and expired-but-unpurged
//! values, `check(false)` is ok.
//!
//! The same test runs on a plain `Cache` and on a `FanoutCache` (8 shards), where a
//! transaction is opened on the shard of its first key and every write to a key of
//! another shard must fail with `Error::WrongShard` (reads are routed to that shard; the
//! transaction still commits or rolls back as a whole).
//!
//! A third form runs four threads at once on one `Cache`, each with its own operation
//! sequence on its own keys (single-key operations and transactions): their autocommit
//! writes meet in group commits, and every result of every thread must still agree with
//! that thread's model, and the whole store with all of them at the end.
//!
//! Cases: `PROPTEST_CASES` (default 40 per store form).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use proptest::prelude::*;
use sciqlop_cache::fanout::shard_of;
use sciqlop_cache::{Cache, Error, FanoutCache, ManualClock, SetOptions, counter};

const THRESHOLD: usize = 64;
/// The manual clock's start (µs since the Unix epoch).
const START: i64 = 1_700_000_000_000_000;
const SHARDS: u32 = 8;
const KEYS: [&str; 7] = [
    "",
    "a",
    "b",
    "c",
    "k/1",
    "k/2",
    "a-much-longer-key/with/parts",
];
const TAGS: [&str; 2] = ["red", "blue"];

// ---------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
enum Val {
    Small(u8, u8),
    Large(u16, u8),
    Counter(i64),
}

impl Val {
    fn bytes(&self) -> Vec<u8> {
        match *self {
            Val::Small(len, seed) => (0..len % THRESHOLD as u8)
                .map(|i| seed.wrapping_add(i.wrapping_mul(7)))
                .collect(),
            Val::Large(len, seed) => (0..THRESHOLD + usize::from(len))
                .map(|i| seed.wrapping_add((i as u8).wrapping_mul(13)))
                .collect(),
            Val::Counter(n) => counter::encode(n),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Set(usize, Val),
    /// key, value, expiry in ms, tag
    SetWith(usize, Val, Option<u64>, Option<usize>),
    Add(usize, Val),
    Delete(usize),
    Pop(usize),
    Touch(usize, Option<u64>),
    Incr(usize, i64, i64),
    Contains(usize),
    Len,
    Keys,
    Clear,
    Expire,
    EvictTag(usize),
    Advance(u64),
    Reopen,
    /// operations, commit (false: the closure returns Err)
    Tx(Vec<Op>, bool),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => (any::<u8>(), any::<u8>()).prop_map(|(l, s)| Val::Small(l, s)),
        2 => (0u16..600, any::<u8>()).prop_map(|(l, s)| Val::Large(l, s)),
        2 => prop_oneof![-5i64..100, Just(i64::MAX - 1), Just(i64::MIN)].prop_map(Val::Counter),
    ]
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn expiry() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![1 => Just(None), 3 => (0u64..3000).prop_map(Some)]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -3i64..4, 1 => Just(i64::MAX), 1 => Just(i64::MIN)]
}

/// Operations allowed inside a transaction.
fn tx_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), val()).prop_map(|(k, v)| Op::Set(k, v)),
        (key(), val(), expiry(), proptest::option::of(0..TAGS.len()))
            .prop_map(|(k, v, e, t)| Op::SetWith(k, v, e, t)),
        (key(), val()).prop_map(|(k, v)| Op::Add(k, v)),
        key().prop_map(Op::Delete),
        key().prop_map(Op::Pop),
        key().prop_map(Op::Get),
        (key(), delta(), -2i64..3).prop_map(|(k, d, def)| Op::Incr(k, d, def)),
        key().prop_map(Op::Contains),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => key().prop_map(Op::Get),
        4 => (key(), val()).prop_map(|(k, v)| Op::Set(k, v)),
        4 => (key(), val(), expiry(), proptest::option::of(0..TAGS.len()))
            .prop_map(|(k, v, e, t)| Op::SetWith(k, v, e, t)),
        2 => (key(), val()).prop_map(|(k, v)| Op::Add(k, v)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Pop),
        2 => (key(), expiry()).prop_map(|(k, e)| Op::Touch(k, e)),
        3 => (key(), delta(), -2i64..3).prop_map(|(k, d, def)| Op::Incr(k, d, def)),
        1 => key().prop_map(Op::Contains),
        1 => Just(Op::Len),
        1 => Just(Op::Keys),
        1 => Just(Op::Clear),
        2 => Just(Op::Expire),
        1 => (0..TAGS.len()).prop_map(Op::EvictTag),
        3 => (0u64..2500).prop_map(Op::Advance),
        2 => Just(Op::Reopen),
        3 => (proptest::collection::vec(tx_op(), 1..6), any::<bool>())
            .prop_map(|(ops, commit)| Op::Tx(ops, commit)),
    ]
}

// ---------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expire: Option<i64>,
    tag: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    now: i64,
    map: BTreeMap<String, Entry>,
}

/// An operation's observable result. Counts of `clear`/`evict_tag` are ranges in the
/// model: whether expired-but-unpurged entries count is not specified.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Unit,
    Bool(bool),
    Bytes(Option<Vec<u8>>),
    Int(i64),
    Count(u64),
    CountIn(u64, u64),
    Keys(Vec<String>),
    NotACounter,
    Overflow,
    WrongShard,
}

impl Model {
    fn live(&self, k: &str) -> Option<&Entry> {
        self.map
            .get(k)
            .filter(|e| e.expire.is_none_or(|x| x > self.now))
    }

    fn at(&self, ms: Option<u64>) -> Option<i64> {
        ms.map(|ms| self.now + ms as i64 * 1000)
    }

    fn size(&self) -> u64 {
        self.map.values().map(|e| e.value.len() as u64).sum()
    }

    fn apply(&mut self, op: &Op) -> Out {
        match op {
            Op::Get(k) => Out::Bytes(self.live(KEYS[*k]).map(|e| e.value.clone())),
            Op::Set(k, v) => {
                self.put(*k, v.bytes(), None, None);
                Out::Unit
            }
            Op::SetWith(k, v, e, t) => {
                let expire = self.at(*e);
                self.put(*k, v.bytes(), expire, t.map(|t| TAGS[t].to_owned()));
                Out::Unit
            }
            Op::Add(k, v) => {
                if self.live(KEYS[*k]).is_some() {
                    Out::Bool(false)
                } else {
                    self.put(*k, v.bytes(), None, None);
                    Out::Bool(true)
                }
            }
            Op::Delete(k) => {
                let was = self.live(KEYS[*k]).is_some();
                self.map.remove(KEYS[*k]);
                Out::Bool(was)
            }
            Op::Pop(k) => {
                let v = self.live(KEYS[*k]).map(|e| e.value.clone());
                self.map.remove(KEYS[*k]);
                Out::Bytes(v)
            }
            Op::Touch(k, e) => {
                let at = self.at(*e);
                if self.live(KEYS[*k]).is_some() {
                    if let Some(entry) = self.map.get_mut(KEYS[*k]) {
                        entry.expire = at;
                    }
                    Out::Bool(true)
                } else {
                    Out::Bool(false)
                }
            }
            Op::Incr(k, delta, default) => {
                let key = KEYS[*k];
                match self.live(key).map(|e| counter::decode(&e.value)) {
                    Some(None) => Out::NotACounter,
                    Some(Some(cur)) => match cur.checked_add(*delta) {
                        None => Out::Overflow,
                        Some(n) => {
                            if let Some(e) = self.map.get_mut(key) {
                                e.value = counter::encode(n);
                            }
                            Out::Int(n)
                        }
                    },
                    None => match default.checked_add(*delta) {
                        None => Out::Overflow,
                        Some(n) => {
                            self.put(*k, counter::encode(n), None, None);
                            Out::Int(n)
                        }
                    },
                }
            }
            Op::Contains(k) => Out::Bool(self.live(KEYS[*k]).is_some()),
            Op::Len => Out::Count(self.live_keys().len() as u64),
            Op::Keys => Out::Keys(self.live_keys()),
            Op::Clear => {
                let out = Out::CountIn(self.live_keys().len() as u64, self.map.len() as u64);
                self.map.clear();
                out
            }
            Op::Expire => {
                let now = self.now;
                let before = self.map.len();
                self.map.retain(|_, e| e.expire.is_none_or(|x| x > now));
                Out::Count((before - self.map.len()) as u64)
            }
            Op::EvictTag(t) => {
                let tag = Some(TAGS[*t].to_owned());
                let all = self.map.values().filter(|e| e.tag == tag).count() as u64;
                let live = self
                    .live_keys()
                    .iter()
                    .filter(|k| self.map[*k].tag == tag)
                    .count() as u64;
                self.map.retain(|_, e| e.tag != tag);
                Out::CountIn(live, all)
            }
            Op::Advance(ms) => {
                self.now += *ms as i64 * 1000;
                Out::Unit
            }
            Op::Reopen => Out::Unit,
            Op::Tx(..) => unreachable!("transactions are driven by run_tx"),
        }
    }

    fn put(&mut self, k: usize, value: Vec<u8>, expire: Option<i64>, tag: Option<String>) {
        self.map
            .insert(KEYS[k].to_owned(), Entry { value, expire, tag });
    }

    fn live_keys(&self) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| self.live(k).is_some())
            .cloned()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The stores under test

/// Single-key operations, on a whole store or on the shard store of a transaction.
trait KeyOps {
    fn do_get(&self, k: &str) -> Result<Option<Vec<u8>>, Error>;
    fn do_set(&self, k: &str, v: &[u8], o: &SetOptions) -> Result<(), Error>;
    fn do_add(&self, k: &str, v: &[u8]) -> Result<bool, Error>;
    fn do_delete(&self, k: &str) -> Result<bool, Error>;
    fn do_pop(&self, k: &str) -> Result<Option<Vec<u8>>, Error>;
    fn do_touch(&self, k: &str, e: Option<Duration>) -> Result<bool, Error>;
    fn do_incr(&self, k: &str, d: i64, def: i64) -> Result<i64, Error>;
    fn do_contains(&self, k: &str) -> Result<bool, Error>;
}

macro_rules! key_ops {
    ($t:ty) => {
        impl KeyOps for $t {
            fn do_get(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
                self.get(k)
            }
            fn do_set(&self, k: &str, v: &[u8], o: &SetOptions) -> Result<(), Error> {
                self.set_with(k, v, o)
            }
            fn do_add(&self, k: &str, v: &[u8]) -> Result<bool, Error> {
                self.add(k, v)
            }
            fn do_delete(&self, k: &str) -> Result<bool, Error> {
                self.delete(k)
            }
            fn do_pop(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
                self.pop(k)
            }
            fn do_touch(&self, k: &str, e: Option<Duration>) -> Result<bool, Error> {
                self.touch(k, e)
            }
            fn do_incr(&self, k: &str, d: i64, def: i64) -> Result<i64, Error> {
                self.incr(k, d, def)
            }
            fn do_contains(&self, k: &str) -> Result<bool, Error> {
                self.contains(k)
            }
        }
    };
}
key_ops!(Cache);
key_ops!(FanoutCache);
// The store a fanout transaction hands its closure.
key_ops!(sciqlop_cache::Store<sciqlop_cache::CacheKind, sciqlop_cache::FanoutEngine<sciqlop_cache::SqliteEngine>>);

/// Opens transactions.
trait Transact {
    /// Opens a transaction for `anchor` (the store itself, or the shard of `anchor`).
    fn transact(
        &self,
        anchor: &str,
        f: &mut dyn FnMut(&dyn KeyOps) -> Result<(), Error>,
    ) -> Result<(), Error>;
    /// Whether `key` may be used in a transaction opened for `anchor`.
    fn same_tx(anchor: &str, key: &str) -> bool;
}

/// A whole store (plain or fanout).
trait Subject: KeyOps + Transact + Sized {
    fn open(dir: &Path, clock: &ManualClock) -> Self;
    fn len(&self) -> Result<u64, Error>;
    fn keys(&self) -> Result<Vec<String>, Error>;
    fn clear(&self) -> Result<u64, Error>;
    fn expire(&self) -> Result<u64, Error>;
    fn evict_tag(&self, t: &str) -> Result<u64, Error>;
    fn size(&self) -> Result<u64, Error>;
    fn check_ok(&self) -> Result<sciqlop_cache::CheckReport, Error>;
}

impl Subject for Cache {
    fn open(dir: &Path, clock: &ManualClock) -> Self {
        Cache::builder()
            .file_threshold(THRESHOLD)
            .clock(Arc::new(clock.clone()))
            .maintenance_interval(Duration::ZERO)
            .open(dir)
            .expect("open the store")
    }
    fn len(&self) -> Result<u64, Error> {
        Cache::len(self)
    }
    fn keys(&self) -> Result<Vec<String>, Error> {
        Cache::keys(self).collect()
    }
    fn clear(&self) -> Result<u64, Error> {
        Cache::clear(self)
    }
    fn expire(&self) -> Result<u64, Error> {
        Cache::expire(self)
    }
    fn evict_tag(&self, t: &str) -> Result<u64, Error> {
        Cache::evict_tag(self, t)
    }
    fn size(&self) -> Result<u64, Error> {
        Cache::size(self)
    }
    fn check_ok(&self) -> Result<sciqlop_cache::CheckReport, Error> {
        self.check(false)
    }
}

impl Transact for Cache {
    fn transact(
        &self,
        _anchor: &str,
        f: &mut dyn FnMut(&dyn KeyOps) -> Result<(), Error>,
    ) -> Result<(), Error> {
        Cache::transact(self, |tx| f(tx))
    }
    fn same_tx(_: &str, _: &str) -> bool {
        true
    }
}

impl Subject for FanoutCache {
    fn open(dir: &Path, clock: &ManualClock) -> Self {
        FanoutCache::builder()
            .shards(SHARDS)
            .file_threshold(THRESHOLD)
            .clock(Arc::new(clock.clone()))
            .maintenance_interval(Duration::ZERO)
            .open(dir)
            .expect("open the fanout")
    }
    fn len(&self) -> Result<u64, Error> {
        (**self).len()
    }
    fn keys(&self) -> Result<Vec<String>, Error> {
        (**self).keys().collect()
    }
    fn clear(&self) -> Result<u64, Error> {
        (**self).clear()
    }
    fn expire(&self) -> Result<u64, Error> {
        (**self).expire()
    }
    fn evict_tag(&self, t: &str) -> Result<u64, Error> {
        (**self).evict_tag(t)
    }
    fn size(&self) -> Result<u64, Error> {
        (**self).size()
    }
    fn check_ok(&self) -> Result<sciqlop_cache::CheckReport, Error> {
        self.check(false)
    }
}

impl Transact for FanoutCache {
    fn transact(
        &self,
        anchor: &str,
        f: &mut dyn FnMut(&dyn KeyOps) -> Result<(), Error>,
    ) -> Result<(), Error> {
        FanoutCache::transact(self, anchor, |tx| f(tx))
    }
    fn same_tx(anchor: &str, key: &str) -> bool {
        shard_of(anchor, SHARDS) == shard_of(key, SHARDS)
    }
}

/// Maps a store result to an [`Out`]; errors other than the modelled ones fail the test.
fn out<T>(r: Result<T, Error>, f: impl FnOnce(T) -> Out) -> Result<Out, TestCaseError> {
    match r {
        Ok(v) => Ok(f(v)),
        Err(Error::NotACounter { .. }) => Ok(Out::NotACounter),
        Err(Error::CounterOverflow { .. }) => Ok(Out::Overflow),
        Err(Error::WrongShard { .. }) => Ok(Out::WrongShard),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error: {e}"))),
    }
}

fn run_key_op(s: &(impl KeyOps + ?Sized), op: &Op) -> Result<Out, TestCaseError> {
    let opts = |e: &Option<u64>, t: &Option<usize>| {
        let mut o = SetOptions::new();
        if let Some(ms) = e {
            o = o.expire(Duration::from_millis(*ms));
        }
        if let Some(t) = t {
            o = o.tag(TAGS[*t]);
        }
        o
    };
    match op {
        Op::Get(k) => out(s.do_get(KEYS[*k]), Out::Bytes),
        Op::Set(k, v) => out(s.do_set(KEYS[*k], &v.bytes(), &SetOptions::new()), |()| {
            Out::Unit
        }),
        Op::SetWith(k, v, e, t) => out(s.do_set(KEYS[*k], &v.bytes(), &opts(e, t)), |()| Out::Unit),
        Op::Add(k, v) => out(s.do_add(KEYS[*k], &v.bytes()), Out::Bool),
        Op::Delete(k) => out(s.do_delete(KEYS[*k]), Out::Bool),
        Op::Pop(k) => out(s.do_pop(KEYS[*k]), Out::Bytes),
        Op::Touch(k, e) => out(
            s.do_touch(KEYS[*k], e.map(Duration::from_millis)),
            Out::Bool,
        ),
        Op::Incr(k, d, def) => out(s.do_incr(KEYS[*k], *d, *def), Out::Int),
        Op::Contains(k) => out(s.do_contains(KEYS[*k]), Out::Bool),
        _ => unreachable!("not a single-key operation: {op:?}"),
    }
}

fn op_key(op: &Op) -> Option<usize> {
    match op {
        Op::Get(k)
        | Op::Set(k, _)
        | Op::SetWith(k, ..)
        | Op::Add(k, _)
        | Op::Delete(k)
        | Op::Pop(k)
        | Op::Touch(k, _)
        | Op::Incr(k, ..)
        | Op::Contains(k) => Some(*k),
        _ => None,
    }
}

fn compare(step: usize, op: &Op, got: &Out, want: &Out) -> Result<(), TestCaseError> {
    let ok = match (got, want) {
        (Out::Count(n), Out::CountIn(lo, hi)) => lo <= n && n <= hi,
        _ => got == want,
    };
    prop_assert!(
        ok,
        "step {step}: {op:?}: store returned {got:?}, model expects {want:?}"
    );
    Ok(())
}

/// Runs a transaction on the store and on a copy of the model; keeps the copy if the
/// transaction is meant to commit.
fn run_tx<S: Transact + ?Sized>(
    step: usize,
    s: &S,
    model: &mut Model,
    ops: &[Op],
    commit: bool,
) -> Result<(), TestCaseError> {
    let anchor = KEYS[op_key(&ops[0]).expect("tx ops have keys")];
    let mut inner = model.clone();
    let mut mismatch: Option<TestCaseError> = None;
    let r = s.transact(anchor, &mut |tx| {
        for (i, op) in ops.iter().enumerate() {
            let k = KEYS[op_key(op).expect("tx ops have keys")];
            // Reads of another shard's key are routed there (nothing of it is written
            // in this transaction, so it reads as the model says); writes are refused.
            let read = matches!(op, Op::Get(_) | Op::Contains(_));
            let want = if read || S::same_tx(anchor, k) {
                inner.apply(op)
            } else {
                Out::WrongShard
            };
            match run_key_op(tx, op).and_then(|got| compare(step, op, &got, &want)) {
                Ok(()) => {}
                Err(e) => {
                    mismatch = Some(TestCaseError::fail(format!("in transaction op {i}: {e}")));
                    return Err(Error::InvalidArgument("model mismatch".into()));
                }
            }
        }
        if commit {
            Ok(())
        } else {
            Err(Error::InvalidArgument("deliberate rollback".into()))
        }
    });
    if let Some(e) = mismatch {
        return Err(e);
    }
    match (commit, r) {
        (true, Ok(())) => *model = inner,
        (false, Err(Error::InvalidArgument(m))) if m == "deliberate rollback" => {}
        (c, r) => prop_assert!(
            false,
            "step {step}: transaction (commit {c}) returned {r:?}"
        ),
    }
    Ok(())
}

/// Compares the whole observable state.
fn check_state<S: Subject>(step: usize, s: &S, model: &Model) -> Result<(), TestCaseError> {
    for k in KEYS {
        let got = s.do_get(k);
        let want = model.live(k).map(|e| e.value.clone());
        prop_assert!(
            matches!(&got, Ok(v) if *v == want),
            "step {step}: get({k:?}) = {got:?}, model {want:?}"
        );
        let c = s
            .do_contains(k)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(c, want.is_some(), "step {}: contains({:?})", step, k);
    }
    let err = |e: Error| TestCaseError::fail(format!("step {step}: {e}"));
    prop_assert_eq!(
        s.len().map_err(err)?,
        model.live_keys().len() as u64,
        "step {}: len",
        step
    );
    prop_assert_eq!(
        s.keys().map_err(err)?,
        model.live_keys(),
        "step {}: keys",
        step
    );
    prop_assert_eq!(
        s.size().map_err(err)?,
        model.size(),
        "step {}: size (live + expired-unpurged values)",
        step
    );
    let report = s.check_ok().map_err(err)?;
    prop_assert!(report.ok, "step {}: check(false): {:?}", step, report);
    Ok(())
}

fn run_sequence<S: Subject>(ops: &[Op]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let dir = tmp.path().join("store");
    let clock = ManualClock::new(START);
    let mut model = Model {
        now: START,
        ..Model::default()
    };
    let mut store = Some(S::open(&dir, &clock));
    for (step, op) in ops.iter().enumerate() {
        let s = store.as_ref().expect("store is open");
        match op {
            Op::Reopen => {
                // Close first: the reopened store starts from what is on disk.
                drop(store.take());
                store = Some(S::open(&dir, &clock));
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(*ms));
                model.apply(op);
            }
            Op::Tx(ops, commit) => run_tx(step, s, &mut model, ops, *commit)?,
            Op::Len => compare(step, op, &out(s.len(), Out::Count)?, &model.apply(op))?,
            Op::Keys => compare(step, op, &out(s.keys(), Out::Keys)?, &model.apply(op))?,
            Op::Clear => compare(step, op, &out(s.clear(), Out::Count)?, &model.apply(op))?,
            Op::Expire => compare(step, op, &out(s.expire(), Out::Count)?, &model.apply(op))?,
            Op::EvictTag(t) => compare(
                step,
                op,
                &out(s.evict_tag(TAGS[*t]), Out::Count)?,
                &model.apply(op),
            )?,
            _ => {
                let got = run_key_op(s, op)?;
                compare(step, op, &got, &model.apply(op))?;
            }
        }
        check_state(step, store.as_ref().expect("store is open"), &model)?;
    }
    Ok(())
}

/// One thread's view of a shared store: its keys carry the thread's prefix.
struct Prefixed<'a, S: ?Sized> {
    inner: &'a S,
    prefix: &'a str,
}

impl<S: ?Sized> Prefixed<'_, S> {
    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
}

impl<S: KeyOps + ?Sized> KeyOps for Prefixed<'_, S> {
    fn do_get(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.do_get(&self.key(k))
    }
    fn do_set(&self, k: &str, v: &[u8], o: &SetOptions) -> Result<(), Error> {
        self.inner.do_set(&self.key(k), v, o)
    }
    fn do_add(&self, k: &str, v: &[u8]) -> Result<bool, Error> {
        self.inner.do_add(&self.key(k), v)
    }
    fn do_delete(&self, k: &str) -> Result<bool, Error> {
        self.inner.do_delete(&self.key(k))
    }
    fn do_pop(&self, k: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.do_pop(&self.key(k))
    }
    fn do_touch(&self, k: &str, e: Option<Duration>) -> Result<bool, Error> {
        self.inner.do_touch(&self.key(k), e)
    }
    fn do_incr(&self, k: &str, d: i64, def: i64) -> Result<i64, Error> {
        self.inner.do_incr(&self.key(k), d, def)
    }
    fn do_contains(&self, k: &str) -> Result<bool, Error> {
        self.inner.do_contains(&self.key(k))
    }
}

impl Transact for Prefixed<'_, Cache> {
    fn transact(
        &self,
        anchor: &str,
        f: &mut dyn FnMut(&dyn KeyOps) -> Result<(), Error>,
    ) -> Result<(), Error> {
        Transact::transact(self.inner, &self.key(anchor), &mut |tx| {
            f(&Prefixed {
                inner: tx,
                prefix: self.prefix,
            })
        })
    }
    fn same_tx(_: &str, _: &str) -> bool {
        true
    }
}

const THREADS: usize = 4;

fn thread_prefix(t: usize) -> String {
    format!("t{t}/")
}

/// The operations a thread runs on its own keys: single-key operations and transactions.
fn thread_op() -> impl Strategy<Value = Op> {
    op().prop_filter("an operation on the thread's own keys", |o| {
        op_key(o).is_some() || matches!(o, Op::Tx(..))
    })
}

/// Runs one thread's operations against its own model.
fn run_thread(
    cache: &Cache,
    t: usize,
    ops: &[Op],
    start: &Barrier,
) -> Result<Model, TestCaseError> {
    let prefix = thread_prefix(t);
    let me = Prefixed {
        inner: cache,
        prefix: &prefix,
    };
    let mut model = Model {
        now: START,
        ..Model::default()
    };
    start.wait();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Tx(ops, commit) => run_tx(step, &me, &mut model, ops, *commit)?,
            _ => {
                let got = run_key_op(&me, op)?;
                compare(step, op, &got, &model.apply(op))
                    .map_err(|e| TestCaseError::fail(format!("thread {t}: {e}")))?;
            }
        }
    }
    Ok(model)
}

/// Runs `THREADS` threads' sequences at once on one store, then checks the whole state.
fn run_threads(seqs: &[Vec<Op>]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let clock = ManualClock::new(START);
    let cache = <Cache as Subject>::open(&tmp.path().join("store"), &clock);
    let start = Barrier::new(seqs.len());
    let models = std::thread::scope(|s| {
        let handles: Vec<_> = seqs
            .iter()
            .enumerate()
            .map(|(t, ops)| {
                let (cache, start) = (&cache, &start);
                s.spawn(move || run_thread(cache, t, ops, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    for (t, model) in models.iter().enumerate() {
        let prefix = thread_prefix(t);
        for k in KEYS {
            let want = model.live(k).map(|e| e.value.clone());
            let got = cache.get(&format!("{prefix}{k}"));
            prop_assert!(
                matches!(&got, Ok(v) if *v == want),
                "thread {t}: get({k:?}) = {got:?} at the end, model {want:?}"
            );
        }
    }
    let err = |e: Error| TestCaseError::fail(e.to_string());
    let live: u64 = models.iter().map(|m| m.live_keys().len() as u64).sum();
    prop_assert_eq!(cache.len().map_err(err)?, live, "len at the end");
    let size: u64 = models.iter().map(Model::size).sum();
    prop_assert_eq!(cache.size().map_err(err)?, size, "size at the end");
    let report = cache.check(false).map_err(err)?;
    prop_assert!(report.ok, "check(false) at the end: {:?}", report);
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cache_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_sequence::<Cache>(&ops)?;
    }

    #[test]
    fn fanout_cache_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_sequence::<FanoutCache>(&ops)?;
    }

    #[test]
    fn threads_on_one_cache_match_their_models(
        seqs in proptest::collection::vec(proptest::collection::vec(thread_op(), 1..40), THREADS)
    ) {
        run_threads(&seqs)?;
    }
}
