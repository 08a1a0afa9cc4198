//! Key iteration (a page at a time) and operations on key prefixes.

use std::collections::VecDeque;

use super::Store;
use crate::Result;
use crate::engine::Engine;
use crate::policy::Policy;

impl<P: Policy, E: ?Sized + Engine> Store<P, E> {
    /// Iterates over all live keys of this namespace in byte order, a page at a time
    /// (no lock is held between pages: keys written meanwhile may or may not appear).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// for k in ["b", "a", "c"] { cache.set(k, b"")?; }
    /// let keys: Vec<String> = cache.keys().collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["a", "b", "c"]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// Reading a page can fail: the iterator then yields that error (the
    /// [errors of every operation](Store#errors-of-every-operation)) and ends.
    pub fn keys(&self) -> Keys<'_, P, E> {
        self.keys_with_prefix("")
    }

    /// Iterates over the live keys that start with `prefix`, in byte order.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// for k in ["a/1", "a/2", "b/1"] { cache.set(k, b"")?; }
    /// let keys: Vec<String> = cache.keys_with_prefix("a/").collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["a/1", "a/2"]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    pub fn keys_with_prefix(&self, prefix: &str) -> Keys<'_, P, E> {
        Keys {
            store: self,
            prefix: prefix.to_owned(),
            after: None,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// One page of at most `limit` live keys starting with `prefix`, strictly after
    /// `after` (a cursor: the last key of the previous page), in byte order. A page
    /// shorter than `limit` is the last one.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// for k in ["a", "b", "c"] { cache.set(k, b"")?; }
    /// let first = cache.keys_page("", None, 2)?;
    /// assert_eq!(first, ["a", "b"]);
    /// let next = cache.keys_page("", first.last().map(String::as_str), 2)?;
    /// assert_eq!(next, ["c"]);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn keys_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.engine.keys_page(&self.ns, prefix, after, limit)
    }

    /// Number of live keys starting with `prefix` (a range count, not a scan of the
    /// namespace).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let cache = sciqlop_cache::Cache::open(dir.path())?;
    /// for k in ["a/1", "a/2", "b/1"] { cache.set(k, b"")?; }
    /// assert_eq!(cache.count_prefix("a/")?, 2);
    /// assert_eq!(cache.delete_prefix("a/")?, 2);
    /// assert_eq!(cache.len()?, 1);
    /// # Ok::<(), sciqlop_cache::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only the [errors of every operation](Store#errors-of-every-operation).
    pub fn count_prefix(&self, prefix: &str) -> Result<u64> {
        self.engine.count_prefix(&self.ns, prefix)
    }

    /// Removes every entry whose key starts with `prefix`, atomically (shard by shard in
    /// a fanout); returns how many. See [`count_prefix`](Self::count_prefix) for an
    /// example.
    ///
    /// # Errors
    ///
    /// - [`Error::ReadOnly`](crate::Error::ReadOnly): the store is read-only.
    /// - [`Error::Busy`](crate::Error::Busy): another writer held the store for longer
    ///   than the busy timeout.
    /// - [`Error::InvalidArgument`](crate::Error::InvalidArgument): called inside a
    ///   transaction of a [`Fanout`](crate::Fanout) shard (a prefix spans every shard).
    ///
    /// Also the [errors of every operation](Store#errors-of-every-operation).
    pub fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.engine.delete_prefix(&self.ns, prefix)
    }
}

/// Iterator over live keys, fetched a page at a time, from [`Store::keys`] or
/// [`Store::keys_with_prefix`]. Items are `Result<String>`: a page that cannot be read
/// is one `Err` item (an error of [`keys_page`](Store::keys_page)), after which the
/// iterator ends.
pub struct Keys<'a, P: Policy, E: ?Sized + Engine> {
    store: &'a Store<P, E>,
    prefix: String,
    after: Option<String>,
    buf: VecDeque<String>,
    done: bool,
}

impl<P: Policy, E: ?Sized + Engine> Iterator for Keys<'_, P, E> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        const PAGE: usize = 256;
        if self.buf.is_empty() && !self.done {
            match self
                .store
                .keys_page(&self.prefix, self.after.as_deref(), PAGE)
            {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    self.after = page.last().cloned();
                    self.buf.extend(page);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
