//! The fanout as an engine: N engines behind one key space, each key living in the
//! shard [`shard_of`] routes it to. Every [`Store`](crate::Store) method works on it;
//! this is the one place routing happens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use super::shard_of;
use crate::engine::{
    Capabilities, Engine, EngineTx, Namespace, ReadCheck, Reopen, Version, WriteOp,
};
use crate::options::{CheckReport, EntryInfo, SetOptions, Stats};
use crate::policy::Kind;
use crate::{Error, Result};

/// N engines behind one key space (see the [module docs](super)).
///
/// A transaction runs on the shard of a key ([`Engine::begin`] with a scope); inside
/// it, this thread may write only to that shard: a write to another would wait for
/// that shard's writer while holding this one, and two threads doing so crosswise would
/// wait for each other forever, so it fails at once with [`Error::WrongShard`].
/// Batches (`set_many`, `get_many`) are split by shard: atomic per shard, not across.
pub struct FanoutEngine<E> {
    dir: PathBuf,
    shards: Vec<Arc<E>>,
    kind: Kind,
    /// Each shard's handle of a namespace, by name (the default namespace is every
    /// shard's default one and is not kept here).
    namespaces: RwLock<HashMap<String, Arc<[Namespace]>>>,
}

impl<E> std::fmt::Debug for FanoutEngine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanoutEngine")
            .field("dir", &self.dir)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<E: Engine> FanoutEngine<E> {
    /// A fanout over `shards` (at least one, all of one kind), living in `dir`. Keys
    /// are routed by [`shard_of`] among `shards.len()` shards, in the order given: the
    /// same shards must always come in the same order. Wrap it in a
    /// [`Fanout`](super::Fanout) with [`Fanout::from_engine`](super::Fanout::from_engine).
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`]: `shards` is empty.
    /// - [`Error::WrongKind`]: a shard is of another kind than the first one.
    pub fn new(dir: &Path, shards: Vec<E>) -> Result<Self> {
        let Some(first) = shards.first() else {
            return Err(Error::InvalidArgument(
                "a fanout needs at least one shard".into(),
            ));
        };
        let kind = first.kind();
        if let Some(other) = shards.iter().find(|s| s.kind() != kind) {
            return Err(Error::WrongKind {
                path: other.path().to_owned(),
                expected: kind.name,
                found: other.kind().name.to_owned(),
            });
        }
        Ok(FanoutEngine {
            dir: dir.to_owned(),
            shards: shards.into_iter().map(Arc::new).collect(),
            kind,
            namespaces: RwLock::new(HashMap::new()),
        })
    }

    /// The shard engines, in order.
    pub fn shard_engines(&self) -> &[Arc<E>] {
        &self.shards
    }

    fn count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// Shard `i`'s handle of namespace `ns`.
    fn ns_of(&self, ns: &Namespace, i: usize) -> Result<Namespace> {
        if ns.is_default() {
            return Ok(Namespace::DEFAULT);
        }
        if let Some(per) = self.namespaces.read().get(ns.name()) {
            return Ok(per[i].clone());
        }
        Ok(self.namespace_per_shard(ns.name())?[i].clone())
    }

    fn namespace_per_shard(&self, name: &str) -> Result<Arc<[Namespace]>> {
        let per: Arc<[Namespace]> = self
            .shards
            .iter()
            .map(|s| s.namespace(name))
            .collect::<Result<Vec<_>>>()?
            .into();
        self.namespaces.write().insert(name.to_owned(), per.clone());
        Ok(per)
    }

    /// The shard this thread has a transaction open on, if any.
    fn tx_shard(&self) -> Option<u32> {
        self.shards
            .iter()
            .position(|s| s.in_transaction())
            .map(|i| i as u32)
    }

    /// The shard of `key` (and its namespace handle) for a read.
    fn route(&self, ns: &Namespace, key: &str) -> Result<(&E, Namespace)> {
        let i = shard_of(key, self.count()) as usize;
        Ok((&self.shards[i], self.ns_of(ns, i)?))
    }

    /// The shard of `key` for a write: refused when this thread is inside a
    /// transaction on another shard.
    fn route_write(&self, ns: &Namespace, key: &str) -> Result<(&E, Namespace)> {
        let i = shard_of(key, self.count());
        if let Some(t) = self.tx_shard()
            && t != i
        {
            return Err(Error::WrongShard {
                key: key.to_owned(),
                key_shard: i,
                tx_shard: t,
            });
        }
        Ok((&self.shards[i as usize], self.ns_of(ns, i as usize)?))
    }

    /// Refuses an operation on every shard from inside a shard transaction.
    fn no_transaction(&self, what: &str) -> Result<()> {
        match self.tx_shard() {
            Some(t) => Err(Error::InvalidArgument(format!(
                "{what} spans every shard and cannot run inside a transaction of shard {t}"
            ))),
            None => Ok(()),
        }
    }

    /// Runs `f` on every shard (with its namespace handle) and adds the results up.
    fn sum(&self, ns: &Namespace, f: impl Fn(&E, &Namespace) -> Result<u64>) -> Result<u64> {
        let mut total = 0;
        for (i, s) in self.shards.iter().enumerate() {
            total += f(s, &self.ns_of(ns, i)?)?;
        }
        Ok(total)
    }

    /// The shard all the keys of an optimistic transaction live in.
    fn one_shard<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Result<usize> {
        let mut shard = None;
        for k in keys {
            let i = shard_of(k, self.count()) as usize;
            match shard {
                None => shard = Some(i),
                Some(s) if s != i => {
                    return Err(Error::Unsupported(
                        "an optimistic transaction of a fanout must keep to the keys of one shard",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(shard.unwrap_or(0))
    }
}

impl<E: Engine> Engine for FanoutEngine<E> {
    fn capabilities(&self) -> Capabilities {
        let inner = self.shards[0].capabilities();
        Capabilities {
            name: "fanout",
            atomic_batches: false,
            ..inner
        }
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn namespace(&self, name: &str) -> Result<Namespace> {
        if name.is_empty() {
            return Ok(Namespace::DEFAULT);
        }
        // The read guard must be gone before `namespace_per_shard` takes the write lock.
        let known = self.namespaces.read().get(name).cloned();
        let per = match known {
            Some(p) => p,
            None => self.namespace_per_shard(name)?,
        };
        // The fanout's id: shard 0's (persistent, the same for every handle).
        Ok(Namespace::new(per[0].id(), name))
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        self.shards[0].namespaces()
    }

    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let (s, n) = self.route(ns, key)?;
        s.get_with(&n, key, f)
    }

    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let (s, n) = self.route(ns, key)?;
        s.get(&n, key)
    }

    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        let (s, n) = self.route(ns, key)?;
        s.get_entry(&n, key)
    }

    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let (s, n) = self.route(ns, key)?;
        s.get_versioned(&n, key)
    }

    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut by_shard: Vec<Vec<(usize, &str)>> = vec![Vec::new(); self.shards.len()];
        for (pos, k) in keys.iter().enumerate() {
            by_shard[shard_of(k, self.count()) as usize].push((pos, k));
        }
        let mut out = vec![None; keys.len()];
        for (i, group) in by_shard.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let ks: Vec<&str> = group.iter().map(|(_, k)| *k).collect();
            let values = self.shards[i].get_many(&self.ns_of(ns, i)?, &ks)?;
            for ((pos, _), v) in group.into_iter().zip(values) {
                out[pos] = v;
            }
        }
        Ok(out)
    }

    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let (s, n) = self.route(ns, key)?;
        s.contains(&n, key)
    }

    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>> {
        let (s, n) = self.route(ns, key)?;
        s.info(&n, key)
    }

    fn len(&self, ns: &Namespace) -> Result<u64> {
        self.sum(ns, |s, n| s.len(n))
    }

    fn size(&self, ns: &Namespace) -> Result<u64> {
        self.sum(ns, |s, n| s.size(n))
    }

    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for (i, s) in self.shards.iter().enumerate() {
            all.extend(s.keys_page(&self.ns_of(ns, i)?, prefix, after, limit)?);
        }
        all.sort_unstable();
        all.truncate(limit);
        Ok(all)
    }

    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.sum(ns, |s, n| s.count_prefix(n, prefix))
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        let (s, n) = self.route_write(ns, key)?;
        s.set(&n, key, value, opts)
    }

    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        let mut by_shard: Vec<Vec<(&str, &[u8])>> = vec![Vec::new(); self.shards.len()];
        for &(k, v) in entries {
            // Checked like any write (inside a transaction, one shard only).
            self.route_write(ns, k)?;
            by_shard[shard_of(k, self.count()) as usize].push((k, v));
        }
        for (i, group) in by_shard.iter().enumerate() {
            if !group.is_empty() {
                self.shards[i].set_many(&self.ns_of(ns, i)?, group, opts)?;
            }
        }
        Ok(())
    }

    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        let (s, n) = self.route_write(ns, key)?;
        s.add(&n, key, value, opts)
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let (s, n) = self.route_write(ns, key)?;
        s.delete(&n, key)
    }

    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        let (s, n) = self.route_write(ns, key)?;
        s.pop_entry(&n, key)
    }

    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool> {
        let (s, n) = self.route_write(ns, key)?;
        s.touch(&n, key, expire)
    }

    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        let (s, n) = self.route_write(ns, key)?;
        s.incr(&n, key, delta, default)
    }

    fn clear(&self, ns: &Namespace) -> Result<u64> {
        self.no_transaction("clear")?;
        self.sum(ns, |s, n| s.clear(n))
    }

    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.no_transaction("delete_prefix")?;
        self.sum(ns, |s, n| s.delete_prefix(n, prefix))
    }

    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        self.no_transaction("evict_tag")?;
        self.sum(ns, |s, n| s.evict_tag(n, tag))
    }

    fn expire(&self) -> Result<u64> {
        self.no_transaction("expire")?;
        self.sum(&Namespace::DEFAULT, |s, _| s.expire())
    }

    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        let (s, n) = self.route_write(ns, key)?;
        s.compare_and_swap(&n, key, expected, new, opts)
    }

    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()> {
        let keys = reads
            .iter()
            .map(|r| r.key.as_str())
            .chain(writes.iter().map(|w| match w {
                WriteOp::Set { key, .. } | WriteOp::Delete { key, .. } => key.as_str(),
            }));
        let i = self.one_shard(keys)?;
        if let Some(t) = self.tx_shard()
            && t as usize != i
        {
            return Err(Error::InvalidArgument(format!(
                "an optimistic commit on shard {i} inside a transaction of shard {t}"
            )));
        }
        // Each key's namespace, as shard i knows it.
        let local = |ns: &Namespace| self.ns_of(ns, i);
        let reads = reads
            .iter()
            .map(|r| {
                Ok(ReadCheck {
                    ns: local(&r.ns)?,
                    key: r.key.clone(),
                    version: r.version,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let writes = writes
            .iter()
            .map(|w| {
                Ok(match w {
                    WriteOp::Set {
                        ns,
                        key,
                        value,
                        opts,
                    } => WriteOp::Set {
                        ns: local(ns)?,
                        key: key.clone(),
                        value: value.clone(),
                        opts: opts.clone(),
                    },
                    WriteOp::Delete { ns, key } => WriteOp::Delete {
                        ns: local(ns)?,
                        key: key.clone(),
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.shards[i].commit_optimistic(&reads, &writes)
    }

    fn begin(&self, scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>> {
        let Some(key) = scope else {
            return Err(Error::Unsupported(
                "a fanout transaction runs on the shard of a key: use transact(key, …) or begin(key)",
            ));
        };
        let i = shard_of(key, self.count());
        if let Some(t) = self.tx_shard()
            && t != i
        {
            return Err(Error::WrongShard {
                key: key.to_owned(),
                key_shard: i,
                tx_shard: t,
            });
        }
        self.shards[i as usize].begin(Some(key))
    }

    fn in_transaction(&self) -> bool {
        self.tx_shard().is_some()
    }

    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        let (s, _) = self.route_write(&Namespace::DEFAULT, name)?;
        s.try_lock(name, owner, expire)
    }

    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        // Released where it was taken, also from inside a transaction of another shard
        // (the release waits for nothing of this thread's).
        let i = shard_of(name, self.count()) as usize;
        self.shards[i].unlock(name, owner)
    }

    fn stats(&self) -> Stats {
        self.shards.iter().fold(Stats::default(), |acc, s| {
            let st = s.stats();
            Stats {
                hits: acc.hits + st.hits,
                misses: acc.misses + st.misses,
            }
        })
    }

    fn reset_stats(&self) {
        self.shards.iter().for_each(|s| s.reset_stats());
    }

    fn total_size(&self) -> Result<u64> {
        self.sum(&Namespace::DEFAULT, |s, _| s.total_size())
    }

    fn volume(&self) -> Result<u64> {
        self.sum(&Namespace::DEFAULT, |s, _| s.volume())
    }

    fn check(&self, fix: bool) -> Result<CheckReport> {
        let mut total = CheckReport::all_ok();
        for s in &self.shards {
            total.merge(&s.check(fix)?);
        }
        Ok(total)
    }

    fn maintain(&self) -> Result<()> {
        self.shards.iter().try_for_each(|s| s.maintain())
    }

    fn metadata(&self, name: &str) -> Result<Option<String>> {
        self.shards[0].metadata(name)
    }

    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.shards[0].set_metadata(name, value)
    }

    fn max_size(&self) -> u64 {
        self.shards.iter().map(|s| s.max_size()).sum()
    }

    fn set_max_size(&self, bytes: u64) -> Result<()> {
        let part = bytes.div_ceil(u64::from(self.count()));
        self.shards.iter().try_for_each(|s| s.set_max_size(part))
    }

    fn evict(&self) -> Result<u64> {
        self.sum(&Namespace::DEFAULT, |s, _| s.evict())
    }

    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>> {
        let shards = self
            .shards
            .iter()
            .map(|s| s.reopen_dyn())
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(FanoutEngine {
            dir: self.dir.clone(),
            shards: shards.into_iter().map(Arc::new).collect(),
            kind: self.kind,
            namespaces: RwLock::new(HashMap::new()),
        }))
    }

    fn parts(&self) -> Vec<&dyn Engine> {
        self.shards.iter().map(|s| &**s as &dyn Engine).collect()
    }
}

impl<E: Reopen> Reopen for FanoutEngine<E> {
    fn reopen(&self) -> Result<Self> {
        let shards = self
            .shards
            .iter()
            .map(|s| s.reopen())
            .collect::<Result<Vec<_>>>()?;
        FanoutEngine::new(&self.dir, shards)
    }
}
