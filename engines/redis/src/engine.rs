//! [`RedisEngine`]: the [`Engine`] contract on a Redis server or a Redis Cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use redis::{ConnectionLike, RedisError, Value};
use sciqlop_cache::engine::{ReadCheck, Reopen, WriteOp};
use sciqlop_cache::{
    Capabilities, CheckReport, Config, Engine, EngineTx, EntryInfo, Error, Expiry, Kind, Namespace,
    Result, SetOptions, Stats, Version,
};

use crate::location::{self, Location};

/// The engine's Lua script (one script, one operation per call: see its header).
const SCRIPT: &str = include_str!("engine.lua");

/// Reads whose recency is kept on the client and sent in one call (LRU order).
const RECENCY_BATCH: usize = 64;

/// Largest value when the server does not say (`proto-max-bulk-len`'s default).
const DEFAULT_MAX_BULK: u64 = 512 * 1024 * 1024;

/// Latest expiry stored (year 9999, in ms): later ones are refused.
const MAX_EXPIRE_MS: i64 = 253_402_300_799_999;

enum Conn {
    One(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::One(c) => c,
            Conn::Cluster(c) => c.as_mut(),
        }
    }
}

enum Client {
    One(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A store on a Redis server (standalone or a Redis Cluster), from a `redis://` or
/// `redis+cluster://` location (see [`location`](crate::location)).
///
/// Every operation runs on the server in one step (a Lua script, or one command for
/// plain reads), so several processes and machines share the store safely. A store's
/// keys share one hash slot (they start with `sqc{NAME}:`), so on a cluster a store
/// lives on one node and every operation, optimistic commits included, is atomic;
/// stores under different names spread over the nodes.
pub struct RedisEngine {
    /// The location as given (with its password: never shown).
    url: String,
    loc: Location,
    config: Config,
    path: PathBuf,
    client: Client,
    pool: Mutex<Vec<Conn>>,
    prefix: String,
    /// `prefix` + `:t`: the key that routes the script to the store's slot.
    route: String,
    kind: Kind,
    max_size: AtomicU64,
    max_bulk: u64,
    script: redis::Script,
    hits: AtomicU64,
    misses: AtomicU64,
    recency: Mutex<Vec<String>>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("location", &self.loc.display)
            .finish_non_exhaustive()
    }
}

/// What a script's argument list is built from.
type Args = Vec<Vec<u8>>;

fn arg(a: &mut Args, v: impl AsRef<[u8]>) {
    a.push(v.as_ref().to_vec());
}

impl RedisEngine {
    /// Opens the store at `location` with `config` (its `max_size`, `max_value_size`,
    /// `read_only`); `kind` `None` opens an existing store of whatever kind it is,
    /// otherwise the store is created as `kind` if it does not exist.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`]: `location` is not a Redis location.
    /// - [`Error::Remote`]: the server cannot be reached within the timeout, or refuses
    ///   the credentials.
    /// - [`Error::WrongKind`]: the store is of another kind than `kind`.
    /// - [`Error::NotACache`]: no store is there and `kind` is `None` (or the config is
    ///   read-only).
    /// - [`Error::Engine`]: the server failed otherwise.
    pub fn open(location: &str, config: &Config, kind: Option<Kind>) -> Result<Self> {
        let loc = location::parse(location)?;
        let client = match loc.cluster {
            false => Client::One(
                redis::Client::open(loc.nodes[0].as_str()).map_err(|e| bad_url(&loc, &e))?,
            ),
            true => Client::Cluster(
                redis::cluster::ClusterClientBuilder::new(loc.nodes.iter().map(String::as_str))
                    .connection_timeout(loc.timeout)
                    .response_timeout(loc.timeout)
                    .retries(3)
                    .build()
                    .map_err(|e| bad_url(&loc, &e))?,
            ),
        };
        let prefix = format!("sqc{{{}}}", loc.namespace);
        let mut engine = RedisEngine {
            path: PathBuf::from(&loc.display),
            route: format!("{prefix}:t"),
            prefix,
            client,
            pool: Mutex::new(Vec::new()),
            kind: kind.unwrap_or(Kind::CACHE),
            max_size: AtomicU64::new(config.max_size()),
            max_bulk: DEFAULT_MAX_BULK,
            script: redis::Script::new(SCRIPT),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            recency: Mutex::new(Vec::new()),
            config: config.clone(),
            url: location.to_owned(),
            loc,
        };
        let create = match kind {
            Some(k) if !config.is_read_only() => k.name,
            _ => "",
        };
        let stored: Option<String> = engine.run(false, "open", |a| arg(a, create))?;
        let stored = stored.ok_or_else(|| Error::NotACache {
            path: engine.path.clone(),
            reason: format!(
                "no store named {:?} on this server yet (create it: open it with a kind, e.g. `sqcache set --create`)",
                engine.loc.namespace
            ),
        })?;
        let found = Kind::from_name(&stored).ok_or_else(|| Error::NotACache {
            path: engine.path.clone(),
            reason: format!("its kind {stored:?} is unknown (a newer format?)"),
        })?;
        if let Some(want) = kind
            && want != found
        {
            return Err(Error::WrongKind {
                path: engine.path.clone(),
                expected: want.name,
                found: stored,
            });
        }
        engine.kind = found;
        engine.max_bulk = engine.query_max_bulk();
        Ok(engine)
    }

    /// The location as given (its password hidden).
    pub fn location(&self) -> &str {
        &self.loc.display
    }

    /// The server's `proto-max-bulk-len` (the largest value it takes), or its default
    /// when the server does not say (a managed server that hides `CONFIG`).
    fn query_max_bulk(&self) -> u64 {
        let r: Result<Vec<String>> = self.with_conn(true, |c| {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("proto-max-bulk-len")
                .query(c)
        });
        r.ok()
            .and_then(|v| v.get(1).and_then(|s| s.parse().ok()))
            .unwrap_or(DEFAULT_MAX_BULK)
    }

    fn connect(&self) -> Result<Conn> {
        let t = self.loc.timeout;
        let c = match &self.client {
            Client::One(c) => {
                let conn = c
                    .get_connection_with_timeout(t)
                    .map_err(|e| self.error(e))?;
                conn.set_read_timeout(Some(t)).map_err(|e| self.error(e))?;
                conn.set_write_timeout(Some(t)).map_err(|e| self.error(e))?;
                Conn::One(conn)
            }
            Client::Cluster(c) => {
                let conn = c.get_connection().map_err(|e| self.error(e))?;
                conn.set_read_timeout(Some(t)).map_err(|e| self.error(e))?;
                conn.set_write_timeout(Some(t)).map_err(|e| self.error(e))?;
                Conn::Cluster(Box::new(conn))
            }
        };
        Ok(c)
    }

    /// Runs `f` on a pooled connection. A connection that failed is dropped, and with
    /// it every pooled one when the server went away (a restart); an operation that is
    /// safe to repeat (`retry`) is then tried once more on a new connection.
    fn with_conn<T>(
        &self,
        retry: bool,
        mut f: impl FnMut(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let pooled = self.pool.lock().pop();
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(conn.like()) {
            Ok(v) => {
                self.pool.lock().push(conn);
                Ok(v)
            }
            Err(e) if is_broken(&e) => {
                self.pool.lock().clear();
                if retry && was_pooled {
                    let mut conn = self.connect()?;
                    let v = f(conn.like()).map_err(|e| self.error(e))?;
                    self.pool.lock().push(conn);
                    return Ok(v);
                }
                Err(self.error(e))
            }
            Err(e) => {
                self.pool.lock().push(conn);
                Err(self.error(e))
            }
        }
    }

    /// One entry written by the script's `op` (`set` or `add`): its answer.
    fn put(
        &self,
        retry: bool,
        op: &str,
        ns: &Namespace,
        key: &str,
        value: &[u8],
        opts: &SetOptions,
    ) -> Result<i64> {
        self.writable()?;
        self.check_value(value.len())?;
        let exp = expire_arg(opts)?;
        self.run(retry, op, |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
            arg(a, value);
            arg(a, &exp);
            arg(a, tag_arg(opts));
            arg(a, self.bound());
        })
    }

    /// Runs the script's operation `op` with the arguments `build` adds.
    fn run<T: redis::FromRedisValue>(
        &self,
        retry: bool,
        op: &str,
        build: impl FnOnce(&mut Args),
    ) -> Result<T> {
        let mut args: Args = Vec::new();
        arg(&mut args, op);
        arg(&mut args, &self.prefix);
        build(&mut args);
        self.with_conn(retry, |c| {
            let mut inv = self.script.key(&self.route);
            for a in &args {
                inv.arg(a.as_slice());
            }
            inv.invoke(c)
        })
    }

    /// The engine's error for a failure of the server or of the connection.
    fn error(&self, e: RedisError) -> Error {
        let at = &self.loc.display;
        if e.code() == Some("OOM") {
            return Error::QuotaExceeded(format!(
                "the Redis server at {at} is out of memory (maxmemory); nothing was written: raise its maxmemory or lower this store's max_size ({e})"
            ));
        }
        if e.code() == Some("READONLY") {
            return Error::ReadOnly {
                path: self.path.clone(),
                reason: format!("the Redis node is a read-only replica ({e})"),
            };
        }
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        {
            return Error::Remote(format!(
                "the Redis server at {at} refused the credentials: give the right ones in the location (redis://USER:PASSWORD@HOST:PORT/DB) ({e})"
            ));
        }
        if e.is_timeout() {
            return Error::Remote(format!(
                "the Redis server at {at} did not answer within {:?} (raise it with ?timeout_ms=N) ({e})",
                self.loc.timeout
            ));
        }
        if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
            return Error::Remote(format!(
                "cannot reach the Redis server at {at}: is it running, and are the host and port right? ({e})"
            ));
        }
        if e.code() == Some("CLUSTERDOWN") || e.is_cluster_error() {
            return Error::Remote(format!(
                "the Redis Cluster at {at} cannot serve this store's slot now (a node failed?): {e}"
            ));
        }
        Error::Engine {
            path: self.path.clone(),
            source: Box::new(e),
        }
    }

    fn writable(&self) -> Result<()> {
        if self.config.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: "the store was opened read-only".into(),
            });
        }
        Ok(())
    }

    fn vkey(&self, ns: &Namespace, key: &str) -> Vec<u8> {
        format!("{}:v:{}:{key}", self.prefix, ns.id()).into_bytes()
    }

    /// The bound the scripts enforce (0: none; an index has no LRU).
    fn bound(&self) -> String {
        if self.kind.lru {
            self.max_size.load(Ordering::Relaxed).to_string()
        } else {
            "0".into()
        }
    }

    fn check_value(&self, len: usize) -> Result<()> {
        if len as u64 > self.max_bulk {
            return Err(Error::ValueTooLarge {
                len: len as u64,
                max: self.max_bulk,
            });
        }
        Ok(())
    }

    fn read(&self, ns: &Namespace, key: &str, found: bool) {
        if !self.kind.stats && !self.kind.lru {
            return;
        }
        if found {
            self.hits.fetch_add(1, Ordering::Relaxed);
            if self.kind.lru {
                let mut r = self.recency.lock();
                r.push(format!("{}:{key}", ns.id()));
                if r.len() >= RECENCY_BATCH {
                    let batch = std::mem::take(&mut *r);
                    drop(r);
                    self.send_recency(batch);
                }
            }
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn send_recency(&self, batch: Vec<String>) {
        if batch.is_empty() {
            return;
        }
        let r: Result<i64> = self.run(true, "recency", |a| {
            for m in &batch {
                arg(a, m);
            }
        });
        if let Err(e) = r {
            tracing::debug!(error = %e, "recording recency failed; LRU order is approximate");
        }
    }

    fn flush_recency(&self) {
        let batch = std::mem::take(&mut *self.recency.lock());
        self.send_recency(batch);
    }

    fn ns_arg(ns: &Namespace) -> String {
        ns.id().to_string()
    }
}

/// Whether the connection can no longer be used (the server went away, timed out).
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

fn bad_url(loc: &Location, e: &RedisError) -> Error {
    Error::InvalidArgument(format!(
        "{} is not a Redis location the client accepts: {e}",
        loc.display
    ))
}

/// Absolute expiry in Unix ms ('' for none).
fn expire_arg(opts: &SetOptions) -> Result<String> {
    match opts.expiry() {
        None => Ok(String::new()),
        Some(e) => expiry_ms(e).map(|ms| ms.to_string()),
    }
}

fn expiry_ms(e: Expiry) -> Result<i64> {
    let too_far = || Error::InvalidArgument(format!("expiry {e:?} is too far in the future"));
    let ms = match e {
        Expiry::After(d) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let at = now.checked_add(d).ok_or_else(too_far)?;
            i64::try_from(at.as_millis()).map_err(|_| too_far())?
        }
        Expiry::At(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).map_err(|_| too_far())?,
            // Before 1970: long expired (1 ms after the epoch is as expired).
            Err(_) => 1,
        },
    };
    if ms > MAX_EXPIRE_MS {
        return Err(too_far());
    }
    Ok(ms.max(1))
}

fn tag_arg(opts: &SetOptions) -> String {
    opts.tag_name().map(|t| format!("+{t}")).unwrap_or_default()
}

/// Parses "VERSION SIZE EXPIRE|- -|+TAG".
fn parse_meta(raw: &str) -> (Version, EntryInfo) {
    let mut it = raw.splitn(4, ' ');
    let ver = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let size = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let expire = it
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let tag = it
        .next()
        .and_then(|t| t.strip_prefix('+'))
        .map(str::to_owned);
    (Version(ver), EntryInfo::new(size, expire, tag, false))
}

fn entry_of(v: Option<(Vec<u8>, String)>) -> Option<(Vec<u8>, Version, EntryInfo)> {
    v.map(|(value, raw)| {
        let (ver, info) = parse_meta(&raw);
        (value, ver, info)
    })
}

fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

impl Engine for RedisEngine {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::new("redis");
        c.multi_process = true;
        c.check = true;
        c.atomic_batches = true;
        c.namespaces = true;
        c.versions = true;
        c.entry_info = true;
        c.metadata = true;
        c
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn namespace(&self, name: &str) -> Result<Namespace> {
        if name.is_empty() {
            return Ok(Namespace::DEFAULT);
        }
        let create = if self.config.is_read_only() { "0" } else { "1" };
        let id: Option<u64> = self.run(true, "ns", |a| {
            arg(a, name);
            arg(a, create);
        })?;
        match id {
            Some(id) => Ok(Namespace::new(id, name)),
            None => Err(Error::ReadOnly {
                path: self.path.clone(),
                reason: format!("namespace {name:?} does not exist and the store is read-only"),
            }),
        }
    }

    fn namespaces(&self) -> Result<Vec<Namespace>> {
        let key = format!("{}:ns", self.prefix);
        let all: Vec<(String, u64)> =
            self.with_conn(true, |c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let mut out = vec![Namespace::DEFAULT];
        let mut named: Vec<Namespace> = all
            .into_iter()
            .map(|(name, id)| Namespace::new(id, &name))
            .collect();
        named.sort_by_key(Namespace::id);
        out.extend(named);
        Ok(out)
    }

    fn get_with(&self, ns: &Namespace, key: &str, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.get(ns, key)? {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>> {
        let k = self.vkey(ns, key);
        let v: Option<Vec<u8>> = self.with_conn(true, |c| redis::cmd("GET").arg(&k).query(c))?;
        self.read(ns, key, v.is_some());
        Ok(v)
    }

    fn get_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        let e = self.entry(ns, key)?;
        self.read(ns, key, e.is_some());
        Ok(e.map(|(v, _, i)| (v, i)))
    }

    fn get_versioned(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let e = self.entry(ns, key)?;
        self.read(ns, key, e.is_some());
        Ok(e.map(|(v, ver, _)| (v, ver)))
    }

    fn get_many(&self, ns: &Namespace, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ks: Vec<Vec<u8>> = keys.iter().map(|k| self.vkey(ns, k)).collect();
        // One slot (the store's hash tag): one MGET, also on a cluster.
        let v: Vec<Option<Vec<u8>>> =
            self.with_conn(true, |c| redis::cmd("MGET").arg(&ks).query(c))?;
        for (k, v) in keys.iter().zip(&v) {
            self.read(ns, k, v.is_some());
        }
        Ok(v)
    }

    fn contains(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let k = self.vkey(ns, key);
        self.with_conn(true, |c| redis::cmd("EXISTS").arg(&k).query(c))
    }

    fn info(&self, ns: &Namespace, key: &str) -> Result<Option<EntryInfo>> {
        let r: Option<String> = self.run(true, "info", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
        })?;
        Ok(r.map(|raw| parse_meta(&raw).1))
    }

    fn len(&self, ns: &Namespace) -> Result<u64> {
        self.run(true, "len", |a| arg(a, Self::ns_arg(ns)))
    }

    fn size(&self, ns: &Namespace) -> Result<u64> {
        let (_, s): (u64, u64) = self.run(true, "totals", |a| arg(a, Self::ns_arg(ns)))?;
        Ok(s)
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
        let limit = limit.min(i32::MAX as usize);
        let keys: Vec<Vec<u8>> = self.run(true, "keys", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, prefix);
            arg(a, if after.is_some() { "1" } else { "0" });
            arg(a, after.unwrap_or(""));
            arg(a, limit.to_string());
        })?;
        Ok(keys
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    fn count_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.run(true, "count", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, prefix);
        })
    }

    fn set(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<()> {
        self.put(true, "set", ns, key, value, opts).map(|_| ())
    }

    fn set_many(&self, ns: &Namespace, entries: &[(&str, &[u8])], opts: &SetOptions) -> Result<()> {
        self.writable()?;
        if entries.is_empty() {
            return Ok(());
        }
        for (_, v) in entries {
            self.check_value(v.len())?;
        }
        let exp = expire_arg(opts)?;
        let _: i64 = self.run(true, "setmany", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, &exp);
            arg(a, tag_arg(opts));
            arg(a, self.bound());
            for (k, v) in entries {
                arg(a, k);
                arg(a, v);
            }
        })?;
        Ok(())
    }

    fn add(&self, ns: &Namespace, key: &str, value: &[u8], opts: &SetOptions) -> Result<bool> {
        self.put(false, "add", ns, key, value, opts).map(|r| r == 1)
    }

    fn delete(&self, ns: &Namespace, key: &str) -> Result<bool> {
        self.writable()?;
        let r: i64 = self.run(false, "del", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
        })?;
        Ok(r == 1)
    }

    fn pop_entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, EntryInfo)>> {
        self.writable()?;
        let r: Option<(Vec<u8>, String)> = self.run(false, "pop", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
        })?;
        Ok(entry_of(r).map(|(v, _, i)| (v, i)))
    }

    fn touch(&self, ns: &Namespace, key: &str, expire: Option<Duration>) -> Result<bool> {
        self.writable()?;
        let exp = match expire {
            Some(d) => expiry_ms(Expiry::After(d))?.to_string(),
            None => String::new(),
        };
        let r: i64 = self.run(true, "touch", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
            arg(a, &exp);
        })?;
        Ok(r == 1)
    }

    fn incr(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        self.writable()?;
        let overflow = || Error::CounterOverflow {
            key: key.to_owned(),
        };
        let Ok(d) = i64::try_from(delta) else {
            return self.incr_wide(ns, key, delta, default);
        };
        let init = default
            .checked_add(d)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let r: Vec<Value> = self.run(false, "incr", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
            arg(a, d.to_string());
            arg(a, &init);
            arg(a, self.bound());
        })?;
        match r.first().map(to_i64) {
            Some(0) => {
                let v: String = r
                    .get(1)
                    .map(redis::from_redis_value_ref)
                    .transpose()
                    .map_err(|e| self.error(e.into()))?
                    .unwrap_or_default();
                v.parse().map_err(|_| Error::NotACounter {
                    key: key.to_owned(),
                })
            }
            Some(1) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
            _ => Err(overflow()),
        }
    }

    fn clear(&self, ns: &Namespace) -> Result<u64> {
        self.writable()?;
        self.run(false, "clear", |a| arg(a, Self::ns_arg(ns)))
    }

    fn delete_prefix(&self, ns: &Namespace, prefix: &str) -> Result<u64> {
        self.writable()?;
        self.run(false, "delprefix", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, prefix);
        })
    }

    fn evict_tag(&self, ns: &Namespace, tag: &str) -> Result<u64> {
        self.writable()?;
        self.run(false, "evicttag", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, tag);
        })
    }

    fn expire(&self) -> Result<u64> {
        if !self.kind.expiry || self.config.is_read_only() {
            return Ok(0);
        }
        self.run(false, "expire", |_| {})
    }

    fn compare_and_swap(
        &self,
        ns: &Namespace,
        key: &str,
        expected: Option<Version>,
        new: Option<&[u8]>,
        opts: &SetOptions,
    ) -> Result<bool> {
        self.writable()?;
        if let Some(v) = new {
            self.check_value(v.len())?;
        }
        let exp = expire_arg(opts)?;
        let r: i64 = self.run(false, "cas", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
            arg(a, expected.map(|v| v.0.to_string()).unwrap_or_default());
            arg(a, if new.is_some() { "1" } else { "0" });
            arg(a, new.unwrap_or(b""));
            arg(a, &exp);
            arg(a, tag_arg(opts));
            arg(a, self.bound());
        })?;
        Ok(r == 1)
    }

    fn commit_optimistic(&self, reads: &[ReadCheck], writes: &[WriteOp]) -> Result<()> {
        if !writes.is_empty() {
            self.writable()?;
        }
        let mut exps = Vec::with_capacity(writes.len());
        for w in writes {
            if let WriteOp::Set { value, opts, .. } = w {
                self.check_value(value.len())?;
                exps.push(expire_arg(opts)?);
            }
        }
        let r: i64 = self.run(false, "commit", |a| {
            arg(a, self.bound());
            arg(a, reads.len().to_string());
            for r in reads {
                arg(a, Self::ns_arg(&r.ns));
                arg(a, &r.key);
                arg(a, r.version.map(|v| v.0.to_string()).unwrap_or_default());
            }
            let mut exps = exps.iter();
            for w in writes {
                match w {
                    WriteOp::Set {
                        ns,
                        key,
                        value,
                        opts,
                    } => {
                        arg(a, "S");
                        arg(a, Self::ns_arg(ns));
                        arg(a, key);
                        arg(a, value);
                        arg(a, exps.next().map(String::as_str).unwrap_or(""));
                        arg(a, tag_arg(opts));
                    }
                    WriteOp::Delete { ns, key } => {
                        arg(a, "D");
                        arg(a, Self::ns_arg(ns));
                        arg(a, key);
                    }
                }
            }
        })?;
        if r == 1 { Ok(()) } else { Err(Error::Conflict) }
    }

    fn begin(&self, _scope: Option<&str>) -> Result<Box<dyn EngineTx + '_>> {
        Err(Error::Unsupported(
            "the Redis engine has no open-ended transactions: use an optimistic transaction (Store::optimistic), checked and applied on the server in one step",
        ))
    }

    fn in_transaction(&self) -> bool {
        false
    }

    fn try_lock(&self, name: &str, owner: &str, expire: Duration) -> Result<bool> {
        self.writable()?;
        let ms = u64::try_from(expire.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, i64::MAX as u64);
        let r: i64 = self.run(false, "trylock", |a| {
            arg(a, name);
            arg(a, owner);
            arg(a, ms.to_string());
        })?;
        Ok(r == 1)
    }

    fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        self.writable()?;
        let _: i64 = self.run(true, "unlock", |a| {
            arg(a, name);
            arg(a, owner);
        })?;
        Ok(())
    }

    fn stats(&self) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn reset_stats(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }

    fn total_size(&self) -> Result<u64> {
        let (all, _): (u64, u64) = self.run(true, "totals", |a| arg(a, "0"))?;
        Ok(all)
    }

    fn volume(&self) -> Result<u64> {
        // The memory the server uses (all its stores): what can be measured; a store's
        // own share would need a walk over its keys (MEMORY USAGE each).
        let used: u64 = self.with_conn(true, |c| {
            let v: redis::InfoDict = redis::cmd("INFO").arg("memory").query(c)?;
            Ok(v.get("used_memory").unwrap_or(0))
        })?;
        Ok(used)
    }

    fn check(&self, fix: bool) -> Result<CheckReport> {
        if fix {
            self.writable()?;
        }
        let r: Vec<Value> = self.run(false, "check", |a| arg(a, if fix { "1" } else { "0" }))?;
        let totals_ok = r.first().map(to_i64) == Some(1);
        let dangling = r.get(1).map(to_i64).unwrap_or(0);
        let fixed = r.get(2).map(to_i64) == Some(1);
        let removed: Vec<String> = r
            .iter()
            .skip(3)
            .filter_map(|v| redis::from_redis_value_ref::<String>(v).ok())
            .collect();
        let mut report = CheckReport::all_ok();
        report.counters_consistent = totals_ok || fix;
        report.dangling_rows = u64::try_from(dangling).unwrap_or(0);
        report.fixed = fixed;
        report.removed_keys = removed;
        report.ok = (totals_ok && dangling == 0) || fix;
        Ok(report)
    }

    fn maintain(&self) -> Result<()> {
        if self.config.is_read_only() {
            return Ok(());
        }
        self.flush_recency();
        self.expire()?;
        self.evict()?;
        Ok(())
    }

    fn metadata(&self, name: &str) -> Result<Option<String>> {
        let key = format!("{}:md", self.prefix);
        self.with_conn(true, |c| redis::cmd("HGET").arg(&key).arg(name).query(c))
    }

    fn set_metadata(&self, name: &str, value: Option<&str>) -> Result<()> {
        self.writable()?;
        let key = format!("{}:md", self.prefix);
        self.with_conn(true, |c| match value {
            Some(v) => redis::cmd("HSET").arg(&key).arg(name).arg(v).exec(c),
            None => redis::cmd("HDEL").arg(&key).arg(name).exec(c),
        })
    }

    fn max_size(&self) -> u64 {
        self.max_size.load(Ordering::Relaxed)
    }

    fn set_max_size(&self, bytes: u64) -> Result<()> {
        self.max_size.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn evict(&self) -> Result<u64> {
        let bound = self.bound();
        if bound == "0" {
            return Ok(0);
        }
        self.writable()?;
        self.flush_recency();
        self.run(false, "evict", |a| arg(a, &bound))
    }

    fn reopen_dyn(&self) -> Result<Arc<dyn Engine>> {
        Ok(Arc::new(self.reopen()?))
    }
}

impl RedisEngine {
    /// The live entry at `key`: value, version and metadata, in one script call.
    fn entry(&self, ns: &Namespace, key: &str) -> Result<Option<(Vec<u8>, Version, EntryInfo)>> {
        let r: Option<(Vec<u8>, String)> = self.run(true, "entry", |a| {
            arg(a, Self::ns_arg(ns));
            arg(a, key);
        })?;
        Ok(entry_of(r))
    }

    /// `incr` by a delta beyond an `i64` (only `decr` by `i64::MIN` makes one): a
    /// compare-and-swap loop, as `INCRBY` takes an `i64`.
    fn incr_wide(&self, ns: &Namespace, key: &str, delta: i128, default: i64) -> Result<i64> {
        let overflow = || Error::CounterOverflow {
            key: key.to_owned(),
        };
        loop {
            let (base, expected, info) = match self.entry(ns, key)? {
                Some((v, ver, info)) => {
                    let n =
                        sciqlop_cache::counter::decode(&v).ok_or_else(|| Error::NotACounter {
                            key: key.to_owned(),
                        })?;
                    (n, Some(ver), Some(info))
                }
                None => (default, None, None),
            };
            let new = i64::try_from(i128::from(base) + delta).map_err(|_| overflow())?;
            let opts = info.map_or_else(SetOptions::new, |i| SetOptions::keeping(&i));
            let bytes = sciqlop_cache::counter::encode(new);
            if self.compare_and_swap(ns, key, expected, Some(&bytes), &opts)? {
                return Ok(new);
            }
        }
    }
}

impl Reopen for RedisEngine {
    fn reopen(&self) -> Result<Self> {
        let e = RedisEngine::open(&self.url, &self.config, Some(self.kind))?;
        e.max_size.store(self.max_size(), Ordering::Relaxed);
        Ok(e)
    }
}
