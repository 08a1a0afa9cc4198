//! `Arc<dyn Engine>` is an engine too: engines chosen at run time can be composed (the
//! shards of a fanout reopened as `dyn`, a fanout over engines named by location).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Capabilities, Engine, EngineTx, Namespace, ReadCheck, Version, WriteOp};
use crate::Result;
use crate::options::{CheckReport, EntryInfo, SetOptions, Stats};
use crate::policy::Kind;

impl Engine for Arc<dyn Engine> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn path(&self) -> &Path {
        (**self).path()
    }
    fn namespace(&self, name: &str) -> Result<Namespace> {
        (**self).namespace(name)
    }
    fn namespaces(&self) -> Result<Vec<Namespace>> {
        (**self).namespaces()
    }
    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        (**self).get_with(ns, key, f)
    }
    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).get(ns, key)
    }
    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        (**self).get_entry(ns, key)
    }
    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        (**self).get_versioned(ns, key)
    }
    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).get_many(ns, keys)
    }
    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        (**self).contains(ns, key)
    }
    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>> {
        (**self).info(ns, key)
    }
    fn len(&self, ns: &Namespace) -> Result<u64> {
        (**self).len(ns)
    }
    fn size(&self, ns: &Namespace) -> Result<u64> {
        (**self).size(ns)
    }
    fn keys_page(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        (**self).keys_page(ns, prefix, after, limit)
    }
    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        (**self).count_prefix(ns, prefix)
    }
    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        (**self).set(ns, key, value, opts)
    }
    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        (**self).set_many(ns, entries, opts)
    }
    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        (**self).add(ns, key, value, opts)
    }
    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        (**self).delete(ns, key)
    }
    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        (**self).pop_entry(ns, key)
    }
    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool> {
        (**self).touch(ns, key, expire)
    }
    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        (**self).incr(ns, key, delta, default)
    }
    fn clear(&self, ns: &Namespace) -> Result<u64> {
        (**self).clear(ns)
    }
    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        (**self).delete_prefix(ns, prefix)
    }
    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        (**self).evict_tag(ns, tag)
    }
    fn expire(&self) -> Result<u64> {
        (**self).expire()
    }
    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        (**self).compare_and_swap(ns, key, expected, new, opts)
    }
    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()> {
        (**self).commit_optimistic(reads, writes)
    }
    fn begin(&self, scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>> {
        (**self).begin(scope)
    }
    fn in_transaction(&self) -> bool {
        (**self).in_transaction()
    }
    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        (**self).try_lock(name, owner, expire)
    }
    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        (**self).unlock(name, owner)
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
    fn reset_stats(&self) {
        (**self).reset_stats()
    }
    fn total_size(&self) -> Result<u64> {
        (**self).total_size()
    }
    fn volume(&self) -> Result<u64> {
        (**self).volume()
    }
    fn check(&self, fix: bool) -> Result<CheckReport> {
        (**self).check(fix)
    }
    fn maintain(&self) -> Result<()> {
        (**self).maintain()
    }
    fn metadata(&self, name: &str) -> Result<Option<String>> {
        (**self).metadata(name)
    }
    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        (**self).set_metadata(name, value)
    }
    fn max_size(&self) -> u64 {
        (**self).max_size()
    }
    fn set_max_size(&self, bytes: u64) -> Result<()> {
        (**self).set_max_size(bytes)
    }
    fn evict(&self) -> Result<u64> {
        (**self).evict()
    }
    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>> {
        (**self).reopen_dyn()
    }
    fn parts(&self) -> Vec<&dyn Engine> {
        (**self).parts()
    }
}
