//! The host's store operations as a plugin calls them: arbitrary sequences of opens,
//! names, keys, values, transactions, compare-and-swap and batch calls, through the
//! host's own implementations of the generated WIT traits (`sciqlop:cache` and both
//! `wasi:keyvalue` versions), on two plugins sharing one root.
//!
//! Checked against a model of each plugin's stores:
//! - no panic, and no trap of the host (`Err` of the outer `wasmtime::Result`) for a
//!   handle the plugin holds;
//! - nothing readable outside the plugin's scope: a key reads as the model's value or,
//!   when it may have been evicted or expired, as absent; never as another store's or
//!   another plugin's value;
//! - quotas: the plugin's size never exceeds `max_bytes` by more than it wrote in the
//!   input (the core evicts in the background), oversized keys, values and
//!   entries, too many handles and too large batches are refused with their error;
//! - transactions commit what they saw and wrote, and a conflict only when a key they
//!   read changed.

#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sciqlop_cache::counter;
use sciqlop_cache_host::bindings::sciqlop::cache::cache::{
    Host as CacheHost, HostStore, HostTransaction,
};
use sciqlop_cache_host::bindings::sciqlop::cache::types::{Error as WitError, SetOptions};
use sciqlop_cache_host::keyvalue::draft::wasi::keyvalue as d1;
use sciqlop_cache_host::keyvalue::draft2::wasi::keyvalue as d2;
use sciqlop_cache_host::{CacheCtx, CacheCtxView, Limits, PluginPolicy, PluginScope};
use wasmtime::component::{Resource, ResourceTable};

const STORES: [&str; 3] = ["default", "s1", "s2"];
const NAMES: [&str; 10] = [
    "default", "s1", "s2", "denied", "", ".", "..", "../s1", "s1/x", "plugins",
];
const KEYS: [&str; 10] = [
    "a",
    "b",
    "s1/a",
    "",
    "k\u{e9}",
    "default/a",
    "../a",
    "a\0b",
    "c",
    "counter",
];
const MAX_KEY_LEN: usize = 24;
const MAX_VALUE: u64 = 16 << 10;
const MAX_HANDLES: u32 = 6;

#[derive(Arbitrary, Debug, Clone)]
enum Text {
    Pool(u8),
    Raw(String),
    Long(u8),
}

impl Text {
    fn key(&self) -> String {
        match self {
            Text::Pool(i) => KEYS[*i as usize % KEYS.len()].to_owned(),
            Text::Raw(s) => s.clone(),
            Text::Long(n) => "k".repeat(MAX_KEY_LEN - 2 + (*n as usize % 5)),
        }
    }
    fn name(&self) -> String {
        match self {
            Text::Pool(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Text::Raw(s) => s.clone(),
            Text::Long(n) => "n".repeat(62 + (*n as usize % 5)),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Bytes(Vec<u8>),
    Counter(i64),
    Big(u16, u8),
}

impl Val {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Bytes(b) => b.clone(),
            Val::Counter(i) => counter::encode(*i),
            Val::Big(n, fill) => vec![*fill; *n as usize % (20 << 10)],
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Opts {
    expire_ms: Option<u64>,
    tag: Option<Text>,
}

/// An expiry in milliseconds: beyond about 292,000 years (the core's i64 microseconds)
/// it is refused, and the input's value is made the largest then, so that the model
/// knows which is which.
fn ms(x: u64) -> u64 {
    if x > 9_000_000_000_000_000 {
        u64::MAX
    } else {
        x
    }
}

impl Opts {
    fn wit(&self) -> SetOptions {
        SetOptions {
            expire_ms: self.expire_ms.map(ms),
            tag: self.tag.as_ref().map(Text::key),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Api {
    Cache,
    Draft,
    Draft2,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        plugin: bool,
        api: Api,
        name: Text,
    },
    Drop {
        slot: u8,
    },
    Get {
        slot: u8,
        key: Text,
    },
    Set {
        slot: u8,
        key: Text,
        value: Val,
        opts: Option<Opts>,
    },
    Add {
        slot: u8,
        key: Text,
        value: Val,
        opts: Option<Opts>,
    },
    Delete {
        slot: u8,
        key: Text,
    },
    Pop {
        slot: u8,
        key: Text,
    },
    Touch {
        slot: u8,
        key: Text,
        expire_ms: Option<u64>,
    },
    Contains {
        slot: u8,
        key: Text,
    },
    Incr {
        slot: u8,
        key: Text,
        delta: i64,
        default: i64,
        decr: bool,
    },
    EvictTag {
        slot: u8,
        tag: Text,
    },
    Clear {
        slot: u8,
    },
    Len {
        slot: u8,
    },
    Keys {
        slot: u8,
        prefix: Text,
        cursor: Option<Text>,
        limit: u32,
    },
    GetMany {
        slot: u8,
        keys: Vec<Text>,
    },
    SetMany {
        slot: u8,
        entries: Vec<(Text, Val)>,
        opts: Option<Opts>,
    },
    Expire {
        slot: u8,
    },
    KvGet {
        slot: u8,
        v2: bool,
        key: Text,
    },
    KvSet {
        slot: u8,
        v2: bool,
        key: Text,
        value: Val,
    },
    KvDelete {
        slot: u8,
        v2: bool,
        key: Text,
    },
    KvExists {
        slot: u8,
        v2: bool,
        key: Text,
    },
    KvList {
        slot: u8,
        offset: Option<u16>,
        cursor: Option<Text>,
        v2: bool,
    },
    KvIncrement {
        slot: u8,
        key: Text,
        delta: u64,
        v2: bool,
    },
    KvGetMany {
        slot: u8,
        v2: bool,
        keys: Vec<Text>,
    },
    KvSetMany {
        slot: u8,
        v2: bool,
        entries: Vec<(Text, Val)>,
    },
    KvDeleteMany {
        slot: u8,
        v2: bool,
        keys: Vec<Text>,
    },
    CasNew {
        slot: u8,
        key: Text,
    },
    CasCurrent {
        cas: u8,
    },
    CasSwap {
        cas: u8,
        value: Val,
    },
    CasDrop {
        cas: u8,
    },
    Begin {
        slot: u8,
    },
    TxGet {
        tx: u8,
        key: Text,
    },
    TxSet {
        tx: u8,
        key: Text,
        value: Val,
        opts: Option<Opts>,
    },
    TxAdd {
        tx: u8,
        key: Text,
        value: Val,
        opts: Option<Opts>,
    },
    TxDelete {
        tx: u8,
        key: Text,
    },
    TxIncr {
        tx: u8,
        key: Text,
        delta: i64,
        default: i64,
        decr: bool,
    },
    TxCommit {
        tx: u8,
    },
    TxRollback {
        tx: u8,
    },
    TxDrop {
        tx: u8,
    },
    BadHandle {
        rep: u32,
        which: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    tight_quota: Option<u16>,
    ops: Vec<Op>,
}

/// A modelled entry: `sure` is false when it may have gone (eviction, expiry).
#[derive(Debug, Clone)]
struct Ent {
    value: Vec<u8>,
    tag: Option<String>,
    sure: bool,
}

/// One plugin: its scope, context, table and model.
struct Plugin {
    scope: Arc<PluginScope>,
    ctx: CacheCtx,
    table: ResourceTable,
    stores: HashMap<String, BTreeMap<String, Ent>>,
    /// Write generation of each (store, key), and of each store as a whole.
    gens: HashMap<(String, String), u64>,
    store_gen: HashMap<String, u64>,
    next_gen: u64,
}

impl Plugin {
    fn view(&mut self) -> CacheCtxView<'_> {
        CacheCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
    fn bump(&mut self, store: &str, key: &str) {
        self.next_gen += 1;
        self.gens
            .insert((store.to_owned(), key.to_owned()), self.next_gen);
    }
    fn bump_store(&mut self, store: &str) {
        self.next_gen += 1;
        self.store_gen.insert(store.to_owned(), self.next_gen);
    }
    fn gen_of(&self, store: &str, key: &str) -> (u64, u64) {
        (
            *self
                .gens
                .get(&(store.to_owned(), key.to_owned()))
                .unwrap_or(&0),
            *self.store_gen.get(store).unwrap_or(&0),
        )
    }
    fn model(&mut self, store: &str) -> &mut BTreeMap<String, Ent> {
        self.stores.entry(store.to_owned()).or_default()
    }
}

struct StoreSlot {
    plugin: usize,
    store: String,
    rep: u32,
}

struct CasSlot {
    plugin: usize,
    store: String,
    key: String,
    rep: u32,
    seen: Option<Vec<u8>>,
    gens: (u64, u64),
    sure: bool,
}

/// What a transaction knows of a key: its value as the transaction sees it, or unknown
/// (the entry may have expired or been evicted before the transaction first read it).
#[derive(Debug, Clone)]
enum Seen {
    Known(Option<Vec<u8>>),
    Unknown,
}

struct TxSlot {
    plugin: usize,
    store: String,
    rep: u32,
    open: bool,
    seen: HashMap<String, Seen>,
    /// Keys written, with the tag and sureness the entry gets at commit.
    written: HashMap<String, (Option<String>, bool)>,
    /// Generations of the keys read when first read; `false` when a read was unsure.
    reads: HashMap<String, ((u64, u64), bool)>,
    held: u64,
    /// A write whose expiry is too far away: the commit must fail.
    doomed: bool,
}

struct World {
    plugins: Vec<Plugin>,
    stores: Vec<StoreSlot>,
    cas: Vec<CasSlot>,
    txs: Vec<TxSlot>,
    limits: Limits,
    loose: bool,
    /// Bytes each plugin wrote in this input: the core evicts beyond `max_size` in the
    /// background (documented), so a plugin's size may exceed its quota by what it wrote
    /// since the last eviction pass (the long run found it above the quota after a
    /// single set and after a set-many: the quota is not enforced at write time).
    slack: [u64; 2],
}

/// A batch is refused whole when its keys and values together exceed the byte quota.
fn within_quota(limits: &Limits, entries: &[(String, Vec<u8>)]) -> Result<(), ()> {
    let bytes: u64 = entries
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum();
    if bytes > limits.max_bytes {
        Err(())
    } else {
        Ok(())
    }
}

/// Whether setting `key` to `value` with `opts` must be accepted, and the entry is
/// sure to stay (no short expiry).
fn expect_set(limits: &Limits, key: &str, value: &[u8], opts: Option<&Opts>) -> Result<bool, ()> {
    if key.len() > MAX_KEY_LEN
        || value.len() as u64 > limits.max_value_size
        || value.len() as u64 + key.len() as u64 > limits.max_bytes
    {
        return Err(());
    }
    let mut sure = true;
    if let Some(o) = opts {
        if let Some(t) = &o.tag {
            if t.key().len() > MAX_KEY_LEN {
                return Err(());
            }
        }
        if let Some(x) = o.expire_ms.map(ms) {
            if x == u64::MAX {
                return Err(());
            }
            sure = x > 3_600_000;
        }
    }
    Ok(sure)
}

/// An error a call refused input with (never a storage error, never a trap).
fn refused(e: &WitError) -> bool {
    !matches!(e, WitError::Io(_))
}

fn kv_refused(e: &d1::store::Error) -> bool {
    match e {
        d1::store::Error::Other(m) => !m.starts_with("io:"),
        _ => true,
    }
}

fn kv2_refused(e: &d2::store::Error) -> bool {
    match e {
        d2::store::Error::Other(m) => !m.starts_with("io:"),
        _ => true,
    }
}

impl World {
    fn slot(&self, i: u8) -> Option<(usize, String, u32)> {
        if self.stores.is_empty() {
            return None;
        }
        let s = &self.stores[i as usize % self.stores.len()];
        Some((s.plugin, s.store.clone(), s.rep))
    }

    /// Checks a read of `key` in `store` of plugin `p` against the model, and learns
    /// from it (an unsure entry that reads absent is gone for good).
    fn check_read(&mut self, p: usize, store: &str, key: &str, got: &Option<Vec<u8>>) {
        let loose = self.loose;
        let m = self.plugins[p].model(store);
        match (m.get(key), got) {
            (None, None) => {}
            (None, Some(v)) => panic!("{store}/{key:?} reads {v:?}, never written there"),
            (Some(e), Some(v)) => assert_eq!(&e.value, v, "{store}/{key:?}"),
            (Some(e), None) => {
                assert!(!e.sure || loose, "{store}/{key:?} lost: {e:?}");
                m.remove(key);
            }
        }
    }

    fn check_quota(&mut self, p: usize) {
        let max = self.limits.max_bytes;
        let Some(s) = self.stores.iter().find(|s| s.plugin == p) else {
            return;
        };
        let rep = s.rep;
        let size = HostStore::size(&mut self.plugins[p].view(), Resource::new_borrow(rep))
            .expect("size traps")
            .expect("size fails");
        let slack = self.slack[p];
        assert!(
            size <= max + slack,
            "plugin {p} holds {size} bytes, quota {max} (+ {slack} of batches)"
        );
    }

    fn set_model(
        &mut self,
        p: usize,
        store: &str,
        key: &str,
        value: Vec<u8>,
        tag: Option<String>,
        sure: bool,
    ) {
        let sure = sure && !self.loose;
        self.slack[p] += (key.len() + value.len()) as u64;
        self.plugins[p]
            .model(store)
            .insert(key.to_owned(), Ent { value, tag, sure });
        self.plugins[p].bump(store, key);
    }

    fn open(&mut self, plugin: bool, api: Api, name: &Text) {
        let p = plugin as usize;
        let name = name.name();
        let target = match api {
            Api::Cache => name.clone(),
            _ if name.is_empty() => "default".to_owned(),
            _ => name.clone(),
        };
        let granted = STORES.contains(&target.as_str());
        let full = self.plugins[p].ctx.open_handles() >= self.limits.max_handles;
        let view = &mut self.plugins[p].view();
        let rep = match api {
            Api::Cache => match CacheHost::open(view, name.clone()).expect("open traps") {
                Ok(r) => Some(r.rep()),
                Err(e) => {
                    assert!(refused(&e), "{e:?}");
                    assert!(!granted || full, "open {name:?}: {e:?}");
                    None
                }
            },
            Api::Draft => match d1::store::Host::open(view, name.clone()).expect("open traps") {
                Ok(r) => Some(r.rep()),
                Err(e) => {
                    assert!(kv_refused(&e), "{e:?}");
                    assert!(!granted || full, "open {name:?}: {e:?}");
                    None
                }
            },
            Api::Draft2 => match d2::store::Host::open(view, name.clone()).expect("open traps") {
                Ok(r) => Some(r.rep()),
                Err(e) => {
                    assert!(kv2_refused(&e), "{e:?}");
                    assert!(!granted || full, "open {name:?}: {e:?}");
                    None
                }
            },
        };
        if let Some(rep) = rep {
            assert!(
                granted && !full,
                "opened {name:?} (granted {granted}, full {full})"
            );
            self.stores.push(StoreSlot {
                plugin: p,
                store: target,
                rep,
            });
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Open { plugin, api, name } => self.open(*plugin, *api, name),
            Op::Drop { slot } => {
                if self.stores.is_empty() {
                    return;
                }
                let s = self.stores.remove(*slot as usize % self.stores.len());
                HostStore::drop(&mut self.plugins[s.plugin].view(), Resource::new_own(s.rep))
                    .expect("drop traps");
            }
            Op::Get { slot, key } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let r = HostStore::get(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    key.clone(),
                )
                .expect("get traps");
                match r {
                    Ok(v) => {
                        assert!(key.len() <= MAX_KEY_LEN);
                        self.check_read(p, &store, &key, &v);
                    }
                    Err(e) => assert!(
                        key.len() > MAX_KEY_LEN && matches!(e, WitError::InvalidKey(_)),
                        "{e:?}"
                    ),
                }
            }
            Op::Set {
                slot,
                key,
                value,
                opts,
            }
            | Op::Add {
                slot,
                key,
                value,
                opts,
            } => {
                let add = matches!(op, Op::Add { .. });
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let value = value.bytes();
                let expect = expect_set(&self.limits, &key, &value, opts.as_ref());
                let wit = opts.as_ref().map(Opts::wit);
                let view = &mut self.plugins[p].view();
                let r = if add {
                    HostStore::add(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        value.clone(),
                        wit,
                    )
                    .expect("add traps")
                } else {
                    HostStore::set(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        value.clone(),
                        wit,
                    )
                    .expect("set traps")
                    .map(|()| true)
                };
                match (r, expect) {
                    (Ok(written), Ok(sure)) => {
                        let tag = opts.as_ref().and_then(|o| o.tag.as_ref()).map(Text::key);
                        let before = self.plugins[p].model(&store).get(&key).cloned();
                        if add {
                            match &before {
                                Some(e) if e.sure => assert!(!written, "add over {e:?}"),
                                None => assert!(written, "add of absent {key:?}"),
                                Some(_) => {}
                            }
                        }
                        if written {
                            self.set_model(p, &store, &key, value, tag, sure);
                        } else if let Some(e) = before {
                            // Present after all: keep it, now known to be there.
                            let _ = e;
                        }
                    }
                    (Ok(_), Err(())) => panic!("set of {key:?} ({} bytes) accepted", value.len()),
                    (Err(e), Ok(_)) => {
                        panic!("set of {key:?} ({} bytes) refused: {e:?}", value.len())
                    }
                    (Err(e), Err(())) => assert!(refused(&e), "{e:?}"),
                }
                self.check_quota(p);
            }
            Op::Delete { slot, key } | Op::Pop { slot, key } => {
                let pop = matches!(op, Op::Pop { .. });
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let view = &mut self.plugins[p].view();
                let r = if pop {
                    HostStore::pop(view, Resource::new_borrow(rep), key.clone()).expect("pop traps")
                } else {
                    HostStore::delete(view, Resource::new_borrow(rep), key.clone())
                        .expect("delete traps")
                        .map(|existed| existed.then(Vec::new))
                };
                match r {
                    Ok(got) => {
                        if pop {
                            self.check_read(p, &store, &key, &got);
                        } else {
                            let model = self.plugins[p].model(&store).get(&key).cloned();
                            match (model, got.is_some()) {
                                (None, true) => panic!("deleted {key:?}, never written"),
                                (Some(e), false) => assert!(!e.sure || self.loose, "{key:?} lost"),
                                _ => {}
                            }
                        }
                        self.plugins[p].model(&store).remove(&key);
                        self.plugins[p].bump(&store, &key);
                    }
                    Err(e) => assert!(key.len() > MAX_KEY_LEN && refused(&e), "{e:?}"),
                }
            }
            Op::Touch {
                slot,
                key,
                expire_ms,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let expire_ms = expire_ms.map(ms);
                let r = HostStore::touch(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    key.clone(),
                    expire_ms,
                )
                .expect("touch traps");
                match r {
                    Ok(found) => {
                        let loose = self.loose;
                        let m = self.plugins[p].model(&store);
                        match (m.get_mut(&key), found) {
                            (None, true) => panic!("touched {key:?}, never written"),
                            (None, false) => {}
                            (Some(e), false) => {
                                assert!(!e.sure || loose, "{key:?} lost");
                                m.remove(&key);
                            }
                            (Some(e), true) => {
                                // A touch sets the expiry: short, the entry may go;
                                // none or long, it stays (unless evicted).
                                e.sure = !loose && expire_ms.is_none_or(|ms| ms > 3_600_000);
                            }
                        }
                        self.plugins[p].bump(&store, &key);
                    }
                    Err(e) => assert!(
                        (key.len() > MAX_KEY_LEN || expire_ms == Some(u64::MAX)) && refused(&e),
                        "{e:?}"
                    ),
                }
            }
            Op::Contains { slot, key } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let r = HostStore::contains(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    key.clone(),
                )
                .expect("contains traps");
                match r {
                    Ok(found) => {
                        let m = self.plugins[p].model(&store);
                        match (m.get(&key), found) {
                            (None, true) => panic!("contains {key:?}, never written"),
                            (Some(e), false) => assert!(!e.sure || self.loose, "{key:?} lost"),
                            _ => {}
                        }
                    }
                    Err(e) => assert!(key.len() > MAX_KEY_LEN && refused(&e), "{e:?}"),
                }
            }
            Op::Incr {
                slot,
                key,
                delta,
                default,
                decr,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let view = &mut self.plugins[p].view();
                let r = if *decr {
                    HostStore::decr(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        *delta,
                        *default,
                    )
                } else {
                    HostStore::incr(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        *delta,
                        *default,
                    )
                }
                .expect("incr traps");
                let delta = if *decr {
                    -i128::from(*delta)
                } else {
                    i128::from(*delta)
                };
                self.after_incr(
                    p,
                    &store,
                    &key,
                    delta,
                    *default,
                    r.map_err(|e| {
                        assert!(refused(&e), "{e:?}");
                        e
                    }),
                );
            }
            Op::EvictTag { slot, tag } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let tag = tag.key();
                let r = HostStore::evict_tag(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    tag.clone(),
                )
                .expect("evict-tag traps");
                match r {
                    Ok(n) => {
                        let m = self.plugins[p].model(&store);
                        let sure = m
                            .values()
                            .filter(|e| e.sure && e.tag.as_ref() == Some(&tag))
                            .count() as u64;
                        let all =
                            m.values().filter(|e| e.tag.as_ref() == Some(&tag)).count() as u64;
                        assert!(
                            sure <= n && n <= all,
                            "evict-tag {tag:?}: {n}, model {sure}..{all}"
                        );
                        m.retain(|_, e| e.tag.as_ref() != Some(&tag));
                        self.plugins[p].bump_store(&store);
                    }
                    Err(e) => assert!(tag.len() > MAX_KEY_LEN && refused(&e), "{e:?}"),
                }
            }
            Op::Clear { slot } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let n = HostStore::clear(&mut self.plugins[p].view(), Resource::new_borrow(rep))
                    .expect("clear traps")
                    .expect("clear fails");
                let m = self.plugins[p].model(&store);
                let sure = m.values().filter(|e| e.sure).count() as u64;
                assert!(
                    sure <= n && n <= m.len() as u64,
                    "clear: {n}, model {sure}..{}",
                    m.len()
                );
                m.clear();
                self.plugins[p].bump_store(&store);
            }
            Op::Len { slot } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let n = HostStore::len(&mut self.plugins[p].view(), Resource::new_borrow(rep))
                    .expect("len traps")
                    .expect("len fails");
                let m = self.plugins[p].model(&store);
                let sure = m.values().filter(|e| e.sure).count() as u64;
                assert!(
                    sure <= n && n <= m.len() as u64,
                    "len: {n}, model {sure}..{}",
                    m.len()
                );
            }
            Op::Expire { slot } => {
                let Some((p, _, rep)) = self.slot(*slot) else {
                    return;
                };
                HostStore::expire(&mut self.plugins[p].view(), Resource::new_borrow(rep))
                    .expect("expire traps")
                    .expect("expire fails");
                for s in STORES {
                    self.plugins[p].bump_store(s);
                }
            }
            Op::Keys {
                slot,
                prefix,
                cursor,
                limit,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let prefix = prefix.key();
                let cursor = cursor.as_ref().map(Text::key);
                let r = HostStore::keys(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    prefix.clone(),
                    cursor.clone(),
                    *limit,
                )
                .expect("keys traps");
                match r {
                    Ok(page) => {
                        assert!(page.keys.len() <= (*limit).clamp(1, 1000) as usize);
                        assert!(page.keys.windows(2).all(|w| w[0] < w[1]), "{page:?}");
                        let m = self.plugins[p].model(&store);
                        for k in &page.keys {
                            assert!(k.starts_with(&prefix), "{k:?} without prefix {prefix:?}");
                            assert!(
                                cursor.as_ref().is_none_or(|c| k > c),
                                "{k:?} not after {cursor:?}"
                            );
                            assert!(
                                m.contains_key(k),
                                "keys lists {k:?}, never written to {store}"
                            );
                        }
                        if page.cursor.is_none() {
                            // The last page: every sure key after the cursor is listed.
                            for (k, e) in m.iter() {
                                if e.sure
                                    && k.starts_with(&prefix)
                                    && cursor.as_ref().is_none_or(|c| k > c)
                                {
                                    assert!(page.keys.contains(k), "{k:?} not listed");
                                }
                            }
                        }
                    }
                    Err(e) => assert!(
                        (prefix.len() > MAX_KEY_LEN
                            || cursor.is_some_and(|c| c.len() > MAX_KEY_LEN))
                            && refused(&e),
                        "{e:?}"
                    ),
                }
            }
            Op::GetMany { slot, keys } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let keys: Vec<String> = keys.iter().map(Text::key).collect();
                let r = HostStore::get_many(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    keys.clone(),
                )
                .expect("get-many traps");
                match r {
                    Ok(values) => {
                        assert_eq!(values.len(), keys.len());
                        for (k, v) in keys.iter().zip(&values) {
                            self.check_read(p, &store, k, v);
                        }
                    }
                    Err(e) => assert!(
                        keys.iter().any(|k| k.len() > MAX_KEY_LEN) && refused(&e),
                        "{e:?}"
                    ),
                }
            }
            Op::SetMany {
                slot,
                entries,
                opts,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let entries: Vec<(String, Vec<u8>)> =
                    entries.iter().map(|(k, v)| (k.key(), v.bytes())).collect();
                let expect: Result<Vec<bool>, ()> = entries
                    .iter()
                    .map(|(k, v)| expect_set(&self.limits, k, v, opts.as_ref()))
                    .collect::<Result<_, _>>()
                    .and_then(|sure| within_quota(&self.limits, &entries).map(|()| sure));
                if entries.is_empty() {
                    // Nothing to write: the options may be checked (a tag too long) or
                    // not (an expiry out of range is only computed per entry).
                    let r = HostStore::set_many(
                        &mut self.plugins[p].view(),
                        Resource::new_borrow(rep),
                        entries,
                        opts.as_ref().map(Opts::wit),
                    )
                    .expect("set-many traps");
                    if let Err(e) = r {
                        assert!(refused(&e), "{e:?}");
                    }
                    return;
                }
                let r = HostStore::set_many(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    entries.clone(),
                    opts.as_ref().map(Opts::wit),
                )
                .expect("set-many traps");
                match (r, expect) {
                    (Ok(()), Ok(sure)) => {
                        let tag = opts.as_ref().and_then(|o| o.tag.as_ref()).map(Text::key);
                        for ((k, v), sure) in entries.into_iter().zip(sure) {
                            self.set_model(p, &store, &k, v, tag.clone(), sure);
                        }
                        // A batch larger than the quota evicts part of itself.
                        let total: u64 = self.plugins[p]
                            .model(&store)
                            .values()
                            .map(|e| e.value.len() as u64 + 64)
                            .sum();
                        if total > self.limits.max_bytes {
                            for e in self.plugins[p].model(&store).values_mut() {
                                e.sure = false;
                            }
                        }
                    }
                    (Ok(()), Err(())) => panic!("set-many accepted a bad entry"),
                    (Err(e), Ok(_)) => panic!("set-many refused: {e:?}"),
                    (Err(e), Err(())) => assert!(refused(&e), "{e:?}"),
                }
                self.check_quota(p);
            }
            Op::KvGet { slot, v2, key } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let view = &mut self.plugins[p].view();
                let r = if *v2 {
                    d2::store::HostBucket::get(view, Resource::new_borrow(rep), key.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv2_refused(&e), "{e:?}"))
                } else {
                    d1::store::HostBucket::get(view, Resource::new_borrow(rep), key.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv_refused(&e), "{e:?}"))
                };
                match r {
                    Ok(v) => self.check_read(p, &store, &key, &v),
                    Err(()) => assert!(key.len() > MAX_KEY_LEN),
                }
            }
            Op::KvSet {
                slot,
                v2,
                key,
                value,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let value = value.bytes();
                let expect = expect_set(&self.limits, &key, &value, None);
                let view = &mut self.plugins[p].view();
                let r = if *v2 {
                    d2::store::HostBucket::set(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        value.clone(),
                    )
                    .expect("traps")
                    .map_err(|e| assert!(kv2_refused(&e), "{e:?}"))
                } else {
                    d1::store::HostBucket::set(
                        view,
                        Resource::new_borrow(rep),
                        key.clone(),
                        value.clone(),
                    )
                    .expect("traps")
                    .map_err(|e| assert!(kv_refused(&e), "{e:?}"))
                };
                assert_eq!(
                    r.is_ok(),
                    expect.is_ok(),
                    "kv set {key:?} ({} bytes)",
                    value.len()
                );
                if r.is_ok() {
                    self.set_model(p, &store, &key, value, None, true);
                }
                self.check_quota(p);
            }
            Op::KvDelete { slot, v2, key } | Op::KvExists { slot, v2, key } => {
                let exists = matches!(op, Op::KvExists { .. });
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                let r: Result<Option<bool>, ()> = match (v2, exists) {
                    (true, true) => d2::store::HostBucket::exists(view, b, key.clone())
                        .expect("traps")
                        .map(Some)
                        .map_err(|e| assert!(kv2_refused(&e))),
                    (false, true) => d1::store::HostBucket::exists(view, b, key.clone())
                        .expect("traps")
                        .map(Some)
                        .map_err(|e| assert!(kv_refused(&e))),
                    (true, false) => d2::store::HostBucket::delete(view, b, key.clone())
                        .expect("traps")
                        .map(|()| None)
                        .map_err(|e| assert!(kv2_refused(&e))),
                    (false, false) => d1::store::HostBucket::delete(view, b, key.clone())
                        .expect("traps")
                        .map(|()| None)
                        .map_err(|e| assert!(kv_refused(&e))),
                };
                match r {
                    Ok(Some(found)) => {
                        let m = self.plugins[p].model(&store);
                        match (m.get(&key), found) {
                            (None, true) => panic!("exists {key:?}, never written"),
                            (Some(e), false) => assert!(!e.sure || self.loose, "{key:?} lost"),
                            _ => {}
                        }
                    }
                    Ok(None) => {
                        self.plugins[p].model(&store).remove(&key);
                        self.plugins[p].bump(&store, &key);
                    }
                    Err(()) => assert!(key.len() > MAX_KEY_LEN),
                }
            }
            Op::KvList {
                slot,
                offset,
                cursor,
                v2,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                let (keys, last) = if *v2 {
                    let cursor = cursor.as_ref().map(Text::key);
                    match d2::store::HostBucket::list_keys(view, b, cursor.clone()).expect("traps")
                    {
                        Ok(r) => (r.keys, r.cursor.is_none()),
                        Err(e) => {
                            assert!(
                                kv2_refused(&e) && cursor.is_some_and(|c| c.len() > MAX_KEY_LEN),
                                "{e:?}"
                            );
                            return;
                        }
                    }
                } else {
                    let r = d1::store::HostBucket::list_keys(view, b, offset.map(u64::from))
                        .expect("traps")
                        .expect("list-keys fails");
                    (r.keys, r.cursor.is_none())
                };
                let _ = last;
                assert!(keys.windows(2).all(|w| w[0] < w[1]));
                let m = self.plugins[p].model(&store);
                for k in &keys {
                    assert!(
                        m.contains_key(k),
                        "list-keys lists {k:?}, never written to {store}"
                    );
                }
            }
            Op::KvIncrement {
                slot,
                key,
                delta,
                v2,
            } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                if *v2 {
                    let delta = *delta as i64;
                    let r =
                        d2::atomics::Host::increment(view, b, key.clone(), delta).expect("traps");
                    let r = r.map_err(|e| {
                        assert!(kv2_refused(&e), "{e:?}");
                        WitError::InvalidArgument(format!("{e:?}"))
                    });
                    self.after_incr(p, &store, &key, i128::from(delta), 0, r);
                } else {
                    let r =
                        d1::atomics::Host::increment(view, b, key.clone(), *delta).expect("traps");
                    let before = self.plugins[p].model(&store).get(&key).cloned();
                    match r {
                        Ok(next) => {
                            assert!(key.len() <= MAX_KEY_LEN && *delta <= i64::MAX as u64);
                            let base = before
                                .as_ref()
                                .filter(|e| e.sure)
                                .map(|e| counter::decode(&e.value));
                            if let Some(b) = base {
                                let b = b.expect("incremented a non-counter");
                                assert_eq!(next, b as u64 + delta, "increment {key:?}");
                            } else if before.is_none() {
                                assert_eq!(next, *delta);
                            }
                            let sure = before.as_ref().is_none_or(|e| e.sure);
                            let tag = before.and_then(|e| e.tag);
                            self.set_model(
                                p,
                                &store,
                                &key,
                                counter::encode(next as i64),
                                tag,
                                sure,
                            );
                        }
                        Err(e) => {
                            assert!(kv_refused(&e), "{e:?}");
                            if key.len() <= MAX_KEY_LEN && *delta <= i64::MAX as u64 {
                                let e = before.expect("increment of an absent key failed");
                                if e.sure {
                                    let ok = counter::decode(&e.value).is_some_and(|b| {
                                        b >= 0 && b.checked_add(*delta as i64).is_some()
                                    });
                                    assert!(!ok, "increment of {:?} refused", e.value);
                                }
                            }
                        }
                    }
                }
                self.check_quota(p);
            }
            Op::KvGetMany { slot, v2, keys } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let keys: Vec<String> = keys.iter().map(Text::key).collect();
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                let r = if *v2 {
                    d2::batch::Host::get_many(view, b, keys.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv2_refused(&e)))
                } else {
                    d1::batch::Host::get_many(view, b, keys.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv_refused(&e)))
                };
                match r {
                    Ok(got) => {
                        assert_eq!(got.len(), keys.len());
                        for (k, kv) in keys.iter().zip(got) {
                            if let Some((kk, _)) = &kv {
                                assert_eq!(kk, k);
                            }
                            self.check_read(p, &store, k, &kv.map(|(_, v)| v));
                        }
                    }
                    Err(()) => assert!(keys.iter().any(|k| k.len() > MAX_KEY_LEN)),
                }
            }
            Op::KvSetMany { slot, v2, entries } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let entries: Vec<(String, Vec<u8>)> =
                    entries.iter().map(|(k, v)| (k.key(), v.bytes())).collect();
                let expect: Result<Vec<bool>, ()> = entries
                    .iter()
                    .map(|(k, v)| expect_set(&self.limits, k, v, None))
                    .collect::<Result<_, _>>()
                    .and_then(|sure| within_quota(&self.limits, &entries).map(|()| sure));
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                let r = if *v2 {
                    d2::batch::Host::set_many(view, b, entries.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv2_refused(&e)))
                } else {
                    d1::batch::Host::set_many(view, b, entries.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv_refused(&e)))
                };
                assert_eq!(r.is_ok(), expect.is_ok(), "kv set-many");
                if r.is_ok() {
                    for (k, v) in entries {
                        self.set_model(p, &store, &k, v, None, true);
                    }
                    let total: u64 = self.plugins[p]
                        .model(&store)
                        .values()
                        .map(|e| e.value.len() as u64 + 64)
                        .sum();
                    if total > self.limits.max_bytes {
                        for e in self.plugins[p].model(&store).values_mut() {
                            e.sure = false;
                        }
                    }
                }
                self.check_quota(p);
            }
            Op::KvDeleteMany { slot, v2, keys } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let keys: Vec<String> = keys.iter().map(Text::key).collect();
                let view = &mut self.plugins[p].view();
                let b = Resource::new_borrow(rep);
                let r = if *v2 {
                    d2::batch::Host::delete_many(view, b, keys.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv2_refused(&e)))
                } else {
                    d1::batch::Host::delete_many(view, b, keys.clone())
                        .expect("traps")
                        .map_err(|e| assert!(kv_refused(&e)))
                };
                // Keys before the first bad one are deleted either way.
                let upto = keys
                    .iter()
                    .position(|k| k.len() > MAX_KEY_LEN)
                    .unwrap_or(keys.len());
                assert_eq!(r.is_ok(), upto == keys.len());
                for k in &keys[..upto] {
                    self.plugins[p].model(&store).remove(k);
                    self.plugins[p].bump(&store, k);
                }
            }
            Op::CasNew { slot, key } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let key = key.key();
                let full = self.plugins[p].ctx.open_handles() >= self.limits.max_handles;
                let gens = self.plugins[p].gen_of(&store, &key);
                let r = d2::atomics::HostCas::new(
                    &mut self.plugins[p].view(),
                    Resource::new_borrow(rep),
                    key.clone(),
                )
                .expect("cas new traps");
                match r {
                    Ok(c) => {
                        assert!(!full && key.len() <= MAX_KEY_LEN);
                        let seen = d2::atomics::HostCas::current(
                            &mut self.plugins[p].view(),
                            Resource::new_borrow(c.rep()),
                        )
                        .expect("traps")
                        .expect("current fails");
                        self.check_read(p, &store, &key, &seen);
                        let sure = self.plugins[p]
                            .model(&store)
                            .get(&key)
                            .is_none_or(|e| e.sure);
                        self.cas.push(CasSlot {
                            plugin: p,
                            store,
                            key,
                            rep: c.rep(),
                            seen,
                            gens,
                            sure,
                        });
                    }
                    Err(e) => assert!(
                        (full || key.len() > MAX_KEY_LEN) && kv2_refused(&e),
                        "{e:?}"
                    ),
                }
            }
            Op::CasCurrent { cas } => {
                if self.cas.is_empty() {
                    return;
                }
                let c = &self.cas[*cas as usize % self.cas.len()];
                let got = d2::atomics::HostCas::current(
                    &mut self.plugins[c.plugin].view(),
                    Resource::new_borrow(c.rep),
                )
                .expect("traps")
                .expect("current fails");
                assert_eq!(got, c.seen);
            }
            Op::CasDrop { cas } => {
                if self.cas.is_empty() {
                    return;
                }
                let c = self.cas.remove(*cas as usize % self.cas.len());
                d2::atomics::HostCas::drop(
                    &mut self.plugins[c.plugin].view(),
                    Resource::new_own(c.rep),
                )
                .expect("cas drop traps");
            }
            Op::CasSwap { cas, value } => {
                if self.cas.is_empty() {
                    return;
                }
                let c = self.cas.remove(*cas as usize % self.cas.len());
                let value = value.bytes();
                let p = c.plugin;
                let unchanged =
                    c.sure && !self.loose && self.plugins[p].gen_of(&c.store, &c.key) == c.gens;
                let expect = expect_set(&self.limits, &c.key, &value, None);
                let r = d2::atomics::Host::swap(
                    &mut self.plugins[p].view(),
                    Resource::new_own(c.rep),
                    value.clone(),
                )
                .expect("swap traps");
                match r {
                    Ok(()) => {
                        assert!(expect.is_ok());
                        self.set_model(p, &c.store, &c.key, value, None, true);
                    }
                    Err(d2::atomics::CasError::StoreError(e)) => {
                        assert!(kv2_refused(&e), "{e:?}");
                        assert!(
                            expect.is_err()
                                || self.plugins[p].ctx.open_handles() >= self.limits.max_handles,
                            "swap refused: {e:?}"
                        );
                    }
                    Err(d2::atomics::CasError::CasFailed(fresh)) => {
                        assert!(!unchanged, "cas on {:?} failed, nothing wrote it", c.key);
                        let seen = d2::atomics::HostCas::current(
                            &mut self.plugins[p].view(),
                            Resource::new_borrow(fresh.rep()),
                        )
                        .expect("traps")
                        .expect("current fails");
                        self.check_read(p, &c.store, &c.key, &seen);
                        let gens = self.plugins[p].gen_of(&c.store, &c.key);
                        let sure = self.plugins[p]
                            .model(&c.store)
                            .get(&c.key)
                            .is_none_or(|e| e.sure);
                        self.cas.push(CasSlot {
                            rep: fresh.rep(),
                            seen,
                            gens,
                            sure,
                            ..c
                        });
                    }
                }
                self.check_quota(p);
            }
            Op::Begin { slot } => {
                let Some((p, store, rep)) = self.slot(*slot) else {
                    return;
                };
                let full = self.plugins[p].ctx.open_handles() >= self.limits.max_handles;
                let r = HostStore::begin(&mut self.plugins[p].view(), Resource::new_borrow(rep))
                    .expect("begin traps");
                match r {
                    Ok(t) => {
                        assert!(!full);
                        self.txs.push(TxSlot {
                            plugin: p,
                            store,
                            rep: t.rep(),
                            open: true,
                            seen: HashMap::new(),
                            written: HashMap::new(),
                            reads: HashMap::new(),
                            held: 0,
                            doomed: false,
                        });
                    }
                    Err(e) => assert!(full && refused(&e), "{e:?}"),
                }
            }
            Op::TxGet { tx, key } => self.tx_op(*tx, key, TxAct::Get),
            Op::TxSet {
                tx,
                key,
                value,
                opts,
            } => self.tx_op(*tx, key, TxAct::Set(value.bytes(), opts.clone(), false)),
            Op::TxAdd {
                tx,
                key,
                value,
                opts,
            } => self.tx_op(*tx, key, TxAct::Set(value.bytes(), opts.clone(), true)),
            Op::TxDelete { tx, key } => self.tx_op(*tx, key, TxAct::Delete),
            Op::TxIncr {
                tx,
                key,
                delta,
                default,
                decr,
            } => self.tx_op(*tx, key, TxAct::Incr(*delta, *default, *decr)),
            Op::TxCommit { tx } => self.tx_commit(*tx),
            Op::TxRollback { tx } => {
                if self.txs.is_empty() {
                    return;
                }
                let t = self.txs.len();
                let t = &mut self.txs[*tx as usize % t];
                HostTransaction::rollback(
                    &mut self.plugins[t.plugin].view(),
                    Resource::new_borrow(t.rep),
                )
                .expect("rollback traps");
                t.open = false;
            }
            Op::TxDrop { tx } => {
                if self.txs.is_empty() {
                    return;
                }
                let t = self.txs.remove(*tx as usize % self.txs.len());
                HostTransaction::drop(&mut self.plugins[t.plugin].view(), Resource::new_own(t.rep))
                    .expect("tx drop traps");
            }
            Op::BadHandle { rep, which } => {
                // A handle the plugin does not hold: wasmtime's own lookup error (the
                // canonical ABI never lets a guest pass one), never a panic.
                let rep = rep.wrapping_add(1000);
                let view = &mut self.plugins[(*which & 1) as usize].view();
                match which % 4 {
                    0 => assert!(
                        HostStore::get(view, Resource::new_borrow(rep), "a".into()).is_err()
                    ),
                    1 => assert!(HostTransaction::commit(view, Resource::new_borrow(rep)).is_err()),
                    2 => assert!(
                        d2::atomics::HostCas::current(view, Resource::new_borrow(rep)).is_err()
                    ),
                    _ => assert!(HostStore::drop(view, Resource::new_own(rep)).is_err()),
                }
            }
        }
    }

    /// Checks an incr's result against the model, and records it.
    fn after_incr(
        &mut self,
        p: usize,
        store: &str,
        key: &str,
        delta: i128,
        default: i64,
        r: Result<i64, WitError>,
    ) {
        let before = self.plugins[p].model(store).get(key).cloned();
        let add = |base: i64| i64::try_from(i128::from(base) + delta).ok();
        match r {
            Ok(next) => {
                assert!(key.len() <= MAX_KEY_LEN);
                let from_absent = add(default);
                let from_model = before
                    .as_ref()
                    .and_then(|e| counter::decode(&e.value))
                    .and_then(add);
                match &before {
                    None => assert_eq!(Some(next), from_absent, "incr of absent {key:?}"),
                    Some(e) if e.sure => {
                        assert_eq!(Some(next), from_model, "incr of {:?}", e.value)
                    }
                    Some(_) => assert!(Some(next) == from_model || Some(next) == from_absent),
                }
                let sure = before.as_ref().is_none_or(|e| e.sure);
                let tag = before.and_then(|e| e.tag);
                self.set_model(p, store, key, counter::encode(next), tag, sure);
            }
            Err(e) => {
                if key.len() > MAX_KEY_LEN {
                    return;
                }
                match &before {
                    None => assert!(add(default).is_none(), "incr of absent {key:?}: {e:?}"),
                    Some(b) if b.sure => {
                        let ok = counter::decode(&b.value).and_then(add).is_some();
                        assert!(!ok, "incr of {:?} refused: {e:?}", b.value);
                    }
                    Some(_) => {}
                }
            }
        }
        self.check_quota(p);
    }

    fn tx_op(&mut self, tx: u8, key: &Text, act: TxAct) {
        if self.txs.is_empty() {
            return;
        }
        let ti = tx as usize % self.txs.len();
        let key = key.key();
        let (p, store, rep, open) = {
            let t = &self.txs[ti];
            (t.plugin, t.store.clone(), t.rep, t.open)
        };
        // What the store holds for this key, as far as the model knows.
        let model = self.plugins[p].model(&store).get(&key).cloned();
        let first =
            !self.txs[ti].seen.contains_key(&key) && !self.txs[ti].written.contains_key(&key);
        let gens = self.plugins[p].gen_of(&store, &key);
        let current: Seen = match self.txs[ti].seen.get(&key) {
            Some(s) => s.clone(),
            None => match &model {
                None => Seen::Known(None),
                Some(e) if e.sure => Seen::Known(Some(e.value.clone())),
                Some(_) => Seen::Unknown,
            },
        };
        let candidates: Vec<Option<Vec<u8>>> = match &current {
            Seen::Known(v) => vec![v.clone()],
            Seen::Unknown => vec![None, model.as_ref().map(|e| e.value.clone())],
        };
        let view = &mut self.plugins[p].view();
        let h = Resource::new_borrow(rep);
        let short = key.len() > MAX_KEY_LEN;
        // The value the transaction sees after the operation, if it succeeded.
        let after: Option<Seen>;
        let mut write: Option<(Option<String>, bool)> = None;
        let mut reads = true;
        let incr = matches!(act, TxAct::Incr(..));
        let mut doomed = false;
        match act {
            TxAct::Get => {
                let r = HostTransaction::get(view, h, key.clone()).expect("tx get traps");
                match r {
                    Ok(v) => {
                        assert!(open && !short);
                        assert!(
                            candidates.contains(&v),
                            "tx get {key:?}: {v:?}, expected one of {candidates:?}"
                        );
                        after = Some(Seen::Known(v));
                    }
                    Err(e) => {
                        assert!(refused(&e), "{e:?}");
                        assert!(
                            !open || short || matches!(e, WitError::QuotaExceeded(_)),
                            "tx get: {e:?}"
                        );
                        after = None;
                    }
                }
            }
            TxAct::Set(value, opts, add) => {
                // An expiry too far away is refused at commit, when it is computed.
                let far = opts.as_ref().and_then(|o| o.expire_ms).map(ms) == Some(u64::MAX);
                let near = opts.clone().map(|o| Opts {
                    expire_ms: o.expire_ms.filter(|_| !far),
                    ..o
                });
                let expect = expect_set(&self.limits, &key, &value, near.as_ref());
                doomed = far;
                let wit = opts.as_ref().map(Opts::wit);
                let r = if add {
                    HostTransaction::add(view, h, key.clone(), value.clone(), wit)
                        .expect("tx add traps")
                } else {
                    reads = false;
                    HostTransaction::set(view, h, key.clone(), value.clone(), wit)
                        .expect("tx set traps")
                        .map(|()| true)
                };
                match r {
                    Ok(written) => {
                        assert!(open);
                        let sure = expect.expect("tx set of a bad entry accepted");
                        if add {
                            let was = if written {
                                None
                            } else {
                                candidates.iter().flatten().next().cloned()
                            };
                            assert!(
                                candidates.contains(&was),
                                "tx add {key:?}: {written}, expected {candidates:?}"
                            );
                        }
                        if written {
                            let tag = opts.as_ref().and_then(|o| o.tag.as_ref()).map(Text::key);
                            write = Some((tag, sure));
                            after = Some(Seen::Known(Some(value)));
                        } else {
                            after = Some(Seen::Known(candidates.iter().flatten().next().cloned()));
                        }
                    }
                    Err(e) => {
                        assert!(refused(&e), "{e:?}");
                        assert!(
                            !open || expect.is_err() || matches!(e, WitError::QuotaExceeded(_)),
                            "tx set: {e:?}"
                        );
                        after = None;
                    }
                }
            }
            TxAct::Delete => {
                let r = HostTransaction::delete(view, h, key.clone()).expect("tx delete traps");
                match r {
                    Ok(existed) => {
                        assert!(open && !short);
                        assert!(
                            candidates.iter().any(|c| c.is_some() == existed),
                            "tx delete {key:?}: {existed}, {candidates:?}"
                        );
                        write = Some((None, true));
                        after = Some(Seen::Known(None));
                    }
                    Err(e) => {
                        assert!(refused(&e), "{e:?}");
                        assert!(
                            !open || short || matches!(e, WitError::QuotaExceeded(_)),
                            "tx delete: {e:?}"
                        );
                        after = None;
                    }
                }
            }
            TxAct::Incr(delta, default, decr) => {
                let r = if decr {
                    HostTransaction::decr(view, h, key.clone(), delta, default)
                } else {
                    HostTransaction::incr(view, h, key.clone(), delta, default)
                }
                .expect("tx incr traps");
                let d = if decr {
                    delta.checked_neg()
                } else {
                    Some(delta)
                };
                let outcome = |c: &Option<Vec<u8>>| -> Option<i64> {
                    let base = match c {
                        None => default,
                        Some(v) => counter::decode(v)?,
                    };
                    base.checked_add(d?)
                };
                match r {
                    Ok(next) => {
                        assert!(open && !short);
                        assert!(
                            candidates.iter().any(|c| outcome(c) == Some(next)),
                            "tx incr {key:?}: {next}, {candidates:?}"
                        );
                        let tag = model.as_ref().and_then(|e| e.tag.clone());
                        write = Some((tag, model.as_ref().is_none_or(|e| e.sure)));
                        after = Some(Seen::Known(Some(counter::encode(next))));
                    }
                    Err(e) => {
                        assert!(refused(&e), "{e:?}");
                        let explained = !open
                            || short
                            || matches!(e, WitError::QuotaExceeded(_))
                            || candidates.iter().any(|c| outcome(c).is_none());
                        assert!(explained, "tx incr {key:?} refused: {e:?}, {candidates:?}");
                        after = None;
                    }
                }
            }
        }
        let t = &mut self.txs[ti];
        if let Some(after) = after {
            if first && reads {
                let sure = matches!(current, Seen::Known(_));
                t.reads.insert(key.clone(), (gens, sure));
            }
            t.seen.insert(key.clone(), after);
            if write.is_some() && doomed {
                t.doomed = true;
            }
            if let Some(w) = write {
                // A set's options replace the entry's tag and expiry; an incr keeps
                // those of the entry it changes (an earlier write of this transaction's,
                // or the store's).
                if !(incr && t.written.contains_key(&key)) {
                    t.written.insert(key.clone(), w);
                }
            }
        }
        let _ = t.held;
    }

    fn tx_commit(&mut self, tx: u8) {
        if self.txs.is_empty() {
            return;
        }
        let ti = tx as usize % self.txs.len();
        let (p, rep) = (self.txs[ti].plugin, self.txs[ti].rep);
        let r = HostTransaction::commit(&mut self.plugins[p].view(), Resource::new_borrow(rep))
            .expect("commit traps");
        let t = &mut self.txs[ti];
        let was_open = std::mem::replace(&mut t.open, false);
        let store = t.store.clone();
        let seen = std::mem::take(&mut t.seen);
        let written = std::mem::take(&mut t.written);
        let reads = std::mem::take(&mut t.reads);
        let doomed = std::mem::take(&mut t.doomed);
        match r {
            Ok(()) => {
                assert!(was_open, "commit of a closed transaction");
                assert!(!doomed, "a commit with an expiry out of range succeeded");
                for (k, (tag, sure)) in written {
                    match seen.get(&k) {
                        Some(Seen::Known(Some(v))) => {
                            self.set_model(p, &store, &k, v.clone(), tag, sure)
                        }
                        Some(Seen::Known(None)) => {
                            self.plugins[p].model(&store).remove(&k);
                            self.plugins[p].bump(&store, &k);
                        }
                        _ => unreachable!("written keys are known"),
                    }
                }
                self.check_quota(p);
            }
            Err(WitError::Conflict) => {
                assert!(was_open);
                let changed = self.loose
                    || reads
                        .iter()
                        .any(|(k, (g, sure))| !sure || self.plugins[p].gen_of(&store, k) != *g);
                assert!(changed, "conflict, but none of {:?} changed", reads.keys());
                // A written key whose entry the transaction saw may have changed since.
            }
            Err(e) => {
                assert!(refused(&e), "{e:?}");
                assert!(!was_open || self.loose || doomed, "commit refused: {e:?}");
                if was_open {
                    // Nothing is written when a commit fails.
                }
            }
        }
    }
}

enum TxAct {
    Get,
    Set(Vec<u8>, Option<Opts>, bool),
    Delete,
    Incr(i64, i64, bool),
}

/// The byte quota of the inputs that ask for a tight one (then eviction happens, and
/// the model only knows which keys may be there).
const TIGHT_QUOTA: u64 = 24 << 10;

fn limits(tight: bool) -> Limits {
    Limits {
        max_bytes: if tight { TIGHT_QUOTA } else { 64 << 20 },
        max_value_size: MAX_VALUE,
        max_key_len: MAX_KEY_LEN,
        max_handles: MAX_HANDLES,
        ..Limits::default()
    }
}

/// The two plugins' namespaces, for each quota: opened once per process (opening four
/// SQLite stores per input would be most of the run's time) and emptied before each
/// input, so that each input starts from empty stores.
fn scopes(tight: bool) -> &'static [Arc<PluginScope>; 2] {
    static S: OnceLock<(tempfile::TempDir, [[Arc<PluginScope>; 2]; 2])> = OnceLock::new();
    let (_, s) = S.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let open = |tight: bool| {
            let root = tmp.path().join(if tight { "tight" } else { "roomy" });
            let policy = PluginPolicy {
                stores: STORES.iter().map(|s| (*s).to_owned()).collect(),
                limits: limits(tight),
                location: None,
            };
            ["alpha", "beta"]
                .map(|name| PluginScope::open(&root, name, policy.clone()).expect("scope"))
        };
        let s = [open(false), open(true)];
        (tmp, s)
    });
    &s[tight as usize]
}

fuzz_target!(|input: Input| {
    let tight = input.tight_quota.is_some();
    let limits = limits(tight);
    let plugins = scopes(tight)
        .iter()
        .map(|scope| {
            for s in STORES {
                scope.store(s).expect("store").clear().expect("clear");
            }
            Plugin {
                ctx: CacheCtx::new(scope.clone()),
                scope: scope.clone(),
                table: ResourceTable::new(),
                stores: HashMap::new(),
                gens: HashMap::new(),
                store_gen: HashMap::new(),
                next_gen: 0,
            }
        })
        .collect();
    let mut w = World {
        plugins,
        stores: Vec::new(),
        cas: Vec::new(),
        txs: Vec::new(),
        limits,
        loose: tight,
        slack: [0; 2],
    };
    for op in input.ops.iter().take(200) {
        w.run(op);
    }
    // Every sure entry of every store of both plugins is there, read through the
    // embedder's view: nothing lost, nothing leaked between stores or plugins.
    for p in 0..2 {
        let scope = w.plugins[p].scope.clone();
        for s in STORES {
            let view = scope.store(s).expect("store view");
            let keys = view.keys_page("", None, 100_000).expect("keys");
            let m = w.plugins[p].model(s).clone();
            for k in &keys {
                assert!(
                    m.contains_key(k),
                    "plugin {p} store {s} holds {k:?}, never written"
                );
            }
            for (k, e) in &m {
                match view.get(k).expect("get") {
                    Some(v) => assert_eq!(v, e.value, "plugin {p} {s}/{k:?}"),
                    None => assert!(!e.sure, "plugin {p} {s}/{k:?} lost"),
                }
            }
        }
    }
});
