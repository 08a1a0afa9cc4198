//! Choosing an engine at run time from a location: a directory (a store or a fanout,
//! detected from disk) or a URL whose scheme an engine registered (`redis://…`).

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::Engine;
use crate::options::Config;
use crate::policy::Kind;
use crate::{Error, Result};

/// Opens engines for the locations of its URL schemes (e.g. a Redis engine for
/// `redis://` and `redis+cluster://`). Register one with [`register`].
pub trait EngineFactory: Send + Sync {
    /// The URL schemes it opens (without `://`).
    fn schemes(&self) -> &[&str];
    /// Opens the store at `location` (a URL of one of its schemes) with `config`; `kind`
    /// `None` opens an existing store of whatever kind it is.
    ///
    /// # Errors
    ///
    /// What the engine reports, with the variants the built-in engines use:
    ///
    /// - [`Error::InvalidArgument`]: `location` is not a valid location for the engine.
    /// - [`Error::WrongKind`]: the store is of another kind than `kind`.
    /// - [`Error::NotACache`]: what is at `location` is not a store, or no store is
    ///   there and `kind` is `None` (or the config is read-only).
    /// - [`Error::ReadOnly`]: the store would have to be created or changed where it
    ///   cannot be written.
    /// - [`Error::Remote`], [`Error::Engine`]: the engine (a server) failed or cannot
    ///   be reached.
    fn open(&self, location: &str, config: &Config, kind: Option<Kind>) -> Result<Arc<dyn Engine>>;
}

static FACTORIES: RwLock<Vec<Arc<dyn EngineFactory>>> = RwLock::new(Vec::new());

/// Makes `factory`'s schemes openable by [`open_location`] (and so by
/// [`Builder::open_location`](crate::Builder::open_location) and the tools built on it).
/// A later registration of a scheme wins.
pub fn register(factory: Arc<dyn EngineFactory>) {
    FACTORIES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(factory);
}

/// The scheme of a URL-like location (`redis` of `redis://h:1/0`), if it has one.
pub fn scheme_of(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once("://")?;
    let ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some(scheme)
}

/// Opens the engine of `location`: a URL of a registered scheme, or a directory
/// (`file://` optional) holding a store or a fanout (a missing directory becomes a new
/// store of `kind`).
///
/// # Errors
///
/// - [`Error::InvalidArgument`]: the scheme of `location` is not registered (or, in a
///   build without the SQLite engine, `location` is a directory).
/// - For a directory, those of [`Builder::open`](crate::Builder::open): e.g.
///   [`Error::NotADirectory`], [`Error::WrongKind`], [`Error::NotACache`] (also for a
///   missing directory when `kind` is `None`, and for shard directories without a
///   fanout marker), [`Error::ReadOnly`], [`Error::Busy`].
/// - For a URL, those of its factory's [`open`](EngineFactory::open).
pub fn open_location(
    location: &str,
    config: &Config,
    kind: Option<Kind>,
) -> Result<Arc<dyn Engine>> {
    match scheme_of(location) {
        Some("file") => open_dir(Path::new(&location["file://".len()..]), config, kind),
        Some(scheme) => {
            let factory = FACTORIES
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .rev()
                .find(|f| f.schemes().contains(&scheme))
                .cloned();
            match factory {
                Some(f) => f.open(location, config, kind),
                None => Err(Error::InvalidArgument(format!(
                    "no engine for {scheme}:// locations is registered (build with the engine's crate and call its `register()`)"
                ))),
            }
        }
        None => open_dir(Path::new(location), config, kind),
    }
}

#[cfg(feature = "sqlite")]
fn open_dir(dir: &Path, config: &Config, kind: Option<Kind>) -> Result<Arc<dyn Engine>> {
    use crate::engine::sqlite::SqliteEngine;
    use crate::fanout::{FanoutEngine, looks_like_fanout};
    if !looks_like_fanout(dir) {
        return Ok(Arc::new(SqliteEngine::open(dir, config.clone(), kind)?));
    }
    let count = crate::fanout::shard_count_on_disk(dir)?.ok_or_else(|| Error::NotACache {
        path: dir.to_owned(),
        reason: format!(
            "shard directories without a {} (open it as a fanout once to rebuild it)",
            crate::fanout::MARKER
        ),
    })?;
    let mut shard_config = config.clone();
    shard_config.max_size = config.max_size.div_ceil(u64::from(count));
    let shards = (0..count)
        .map(|i| SqliteEngine::open(&dir.join(format!("{i:03}")), shard_config.clone(), kind))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(FanoutEngine::new(dir, shards)?))
}

#[cfg(not(feature = "sqlite"))]
fn open_dir(dir: &Path, _config: &Config, _kind: Option<Kind>) -> Result<Arc<dyn Engine>> {
    Err(Error::InvalidArgument(format!(
        "{} is a directory, and this build has no SQLite engine",
        dir.display()
    )))
}
