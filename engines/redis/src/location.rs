//! Locations of Redis stores: `redis://[[USER]:PASSWORD@]HOST:PORT[/DB][?OPTIONS]` and
//! `redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][/][?OPTIONS]`.
//!
//! Options (`&`-separated):
//! - `namespace=NAME`: the store inside the server (default `default`); several stores
//!   share one server under different names. Every key of a store starts with
//!   `sqc{NAME}:`.
//! - `timeout_ms=N`: the longest wait for the server, connecting or answering (default
//!   10000); past it an operation fails with [`Error::Remote`](sciqlop_cache::Error::Remote).

use std::time::Duration;

use sciqlop_cache::{Error, Result};

/// The URL schemes of the Redis engine.
pub const SCHEMES: &[&str] = &["redis", "redis+cluster"];

/// Default store name inside a server.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Default longest wait for the server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The nodes' URLs for the `redis` crate (one for a standalone server), with the
    /// credentials and the database.
    pub nodes: Vec<String>,
    /// Redis Cluster (client-side routing) rather than one server.
    pub cluster: bool,
    /// The store's name inside the server.
    pub namespace: String,
    /// The longest wait for the server.
    pub timeout: Duration,
    /// The location as shown in messages: the password replaced by `***`.
    pub display: String,
}

fn invalid(location: &str, why: &str) -> Error {
    Error::InvalidArgument(format!(
        "{} is not a Redis location: {why} (use redis://HOST:PORT/DB?namespace=NAME or redis+cluster://HOST:PORT,HOST:PORT?namespace=NAME)",
        redact(location)
    ))
}

/// `location` with any password replaced by `***`.
pub fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => location.to_owned(),
    }
}

/// Parses a `redis://` or `redis+cluster://` location.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming what is wrong: another scheme, no host, an unknown
/// option, a namespace with `{`, `}` or nothing in it, a timeout that is not a number.
pub fn parse(location: &str) -> Result<Location> {
    let (scheme, rest) = location
        .split_once("://")
        .ok_or_else(|| invalid(location, "no scheme"))?;
    let cluster = match scheme {
        "redis" => false,
        "redis+cluster" => true,
        _ => {
            return Err(invalid(
                location,
                "the scheme is not redis or redis+cluster",
            ));
        }
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut namespace = DEFAULT_NAMESPACE.to_owned();
    let mut timeout = DEFAULT_TIMEOUT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "namespace" => namespace = v.to_owned(),
            "timeout_ms" => {
                let ms: u64 = v
                    .parse()
                    .map_err(|_| invalid(location, "timeout_ms is not a number of milliseconds"))?;
                timeout = Duration::from_millis(ms.max(1));
            }
            _ => {
                return Err(invalid(
                    location,
                    &format!("unknown option {k:?} (known: namespace, timeout_ms)"),
                ));
            }
        }
    }
    if namespace.is_empty() || namespace.contains(['{', '}']) {
        return Err(invalid(
            location,
            "the namespace must be a non-empty name without { or }",
        ));
    }
    let (cred, hosts) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (hosts, db) = match hosts.split_once('/') {
        Some((h, d)) => (h, d),
        None => (hosts, ""),
    };
    if cluster && !db.is_empty() && db != "0" {
        return Err(invalid(location, "a Redis Cluster has only database 0"));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(invalid(location, "the database is not a number"));
    }
    let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        return Err(invalid(location, "no host"));
    }
    if !cluster && hosts.len() > 1 {
        return Err(invalid(
            location,
            "several hosts: use redis+cluster:// for a Redis Cluster",
        ));
    }
    let cred = cred.map(|c| format!("{c}@")).unwrap_or_default();
    let db = if db.is_empty() {
        String::new()
    } else {
        format!("/{db}")
    };
    let nodes = hosts
        .iter()
        .map(|h| format!("redis://{cred}{h}{db}"))
        .collect();
    let display = redact(location);
    Ok(Location {
        nodes,
        cluster,
        namespace,
        timeout,
        display,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let l = parse("redis://127.0.0.1:6390/2?namespace=a").expect("parse");
        assert_eq!(l.nodes, ["redis://127.0.0.1:6390/2"]);
        assert_eq!(l.namespace, "a");
        assert!(!l.cluster);
        let l = parse("redis+cluster://:pw@h:1,h:2?timeout_ms=50").expect("parse");
        assert_eq!(l.nodes, ["redis://:pw@h:1", "redis://:pw@h:2"]);
        assert_eq!(l.timeout, Duration::from_millis(50));
        assert_eq!(l.namespace, DEFAULT_NAMESPACE);
        assert_eq!(l.display, "redis+cluster://:***@h:1,h:2?timeout_ms=50");
        for bad in [
            "redis://",
            "http://h:1",
            "redis://h:1?namespace=",
            "redis://h:1?namespace={x}",
            "redis://h:1?nope=1",
            "redis://h:1,h:2",
            "redis://h:1/x",
            "redis+cluster://h:1/3",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
