//! The implementations under test, behind one small key-value interface.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;

use sciqlop_cache::{AnyStore, Cache, Config, Engine, FanoutCache, Kind, SqliteEngine, Store};

/// Names of the Rust implementations, in report order.
pub const RUST_IMPLS: &[&str] = &[
    "sciqlop-cache",
    "sciqlop-index",
    "sciqlop-fanout",
    "rusqlite-raw",
    "cacache",
];

/// What every implementation can do. `batch_set` returns `Ok(false)` when the
/// implementation has no transactions (the workload is then reported as n/a).
pub trait Kv: Send + Sync {
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn delete(&self, key: &str) -> Result<bool>;
    /// Writes all `items` in one transaction.
    fn batch_set(&self, keys: &[String], value: &mut dyn FnMut(usize) -> Vec<u8>) -> Result<()>;
    /// Why `batch_set` cannot run, if it cannot.
    fn batch_unsupported(&self) -> Option<&'static str> {
        None
    }
}

/// Opens implementation `name` in the (empty or existing) directory `dir`.
pub fn open(name: &str, dir: &Path) -> Result<Box<dyn Kv>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(match name {
        "sciqlop-cache" | "sciqlop-cache-unfair" | "sciqlop-index" | "sciqlop-fanout" => {
            Box::new(sciqlop(name, dir)?)
        }
        "rusqlite-raw" => Box::new(RawSqlite::open(dir)?),
        "cacache" => Box::new(Cacache {
            dir: dir.to_owned(),
        }),
        other => bail!("unknown implementation {other:?}"),
    })
}

/// This project's stores, each on an engine chosen at run time (the core's own
/// `dyn Engine` seam, as the CLI uses it): a cache (`-unfair`: without the writers'
/// turnstile, for comparisons), an index, or a fanout of caches.
fn sciqlop(name: &str, dir: &Path) -> Result<AnyStore> {
    let config = match name {
        "sciqlop-cache-unfair" => Cache::builder().fair_writers(false).config().clone(),
        _ => Config::default(),
    };
    let engine: Arc<dyn Engine> = match name {
        "sciqlop-cache" | "sciqlop-cache-unfair" => {
            Arc::new(SqliteEngine::open(dir, config.clone(), Some(Kind::CACHE))?)
        }
        "sciqlop-index" => Arc::new(SqliteEngine::open(dir, config.clone(), Some(Kind::INDEX))?),
        _ => FanoutCache::open(dir)?.engine().clone(),
    };
    Ok(AnyStore::from_engine(engine, &config)?)
}

impl Kv for AnyStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(Store::set(self, key, value)?)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(Store::get(self, key)?)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        Ok(Store::delete(self, key)?)
    }
    /// The batch API: one transaction (one per shard in a fanout), with one prepared
    /// statement for the batch, as raw SQLite's.
    fn batch_set(&self, keys: &[String], value: &mut dyn FnMut(usize) -> Vec<u8>) -> Result<()> {
        let values: Vec<Vec<u8>> = (0..keys.len()).map(&mut *value).collect();
        self.set_many(keys.iter().map(String::as_str).zip(values.iter()))?;
        Ok(())
    }
}

/// Plain rusqlite: the same upsert/select with the pragmas of the core's engine. The
/// floor our engine adds overhead to.
pub struct RawSqlite {
    conn: Mutex<Connection>,
}

const UPSERT: &str = "INSERT INTO kv(key, value) VALUES (?1, ?2) \
                      ON CONFLICT(key) DO UPDATE SET value = excluded.value";

impl RawSqlite {
    pub fn open(dir: &Path) -> Result<Self> {
        let conn = Connection::open(dir.join("raw.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -16384;
             PRAGMA mmap_size = 268435456;
             CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(RawSqlite {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Kv for RawSqlite {
    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.conn()
            .prepare_cached(UPSERT)?
            .execute(params![key, value])?;
        Ok(())
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM kv WHERE key = ?1")?
            .execute([key])?
            > 0)
    }
    fn batch_set(&self, keys: &[String], value: &mut dyn FnMut(usize) -> Vec<u8>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(UPSERT)?;
            for (i, k) in keys.iter().enumerate() {
                st.execute(params![k, value(i)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// cacache through its synchronous API (`*_sync`): content-addressed files plus an
/// append-only index per key bucket.
pub struct Cacache {
    dir: PathBuf,
}

impl Kv for Cacache {
    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        cacache::write_sync(&self.dir, key, value)?;
        Ok(())
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match cacache::read_sync(&self.dir, key) {
            Ok(v) => Ok(Some(v)),
            Err(cacache::Error::EntryNotFound(..)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn delete(&self, key: &str) -> Result<bool> {
        // remove_sync appends a tombstone to the key's index bucket; it does not say
        // whether the key existed (and leaves the content for garbage collection).
        cacache::remove_sync(&self.dir, key)?;
        Ok(true)
    }
    fn batch_set(&self, _: &[String], _: &mut dyn FnMut(usize) -> Vec<u8>) -> Result<()> {
        bail!("cacache has no transactions")
    }
    fn batch_unsupported(&self) -> Option<&'static str> {
        Some("no transactions in cacache's API")
    }
}
