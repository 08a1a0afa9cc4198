//! `sqcache` on a Redis store (a real server started here): every command that names a
//! store takes a `redis://` location, and what it writes is what the API reads.

use std::process::Command;

use sciqlop_cache_redis::testing::Server;
use sciqlop_cache_redis::{OpenRedis, RedisCache};

fn sqcache(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sqcache"))
        .args(args)
        .output()
        .expect("run sqcache");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (ok, out, err) = sqcache(args);
    assert!(ok, "sqcache {args:?} failed: {err}");
    out
}

#[test]
fn every_command_on_a_redis_location() {
    let server = Server::start().expect("redis-server");
    let url = server.url("cli");
    let u = url.as_str();
    let (okay, _, err) = sqcache(&["get", u, "key"]);
    assert!(!okay && err.contains("no store named \"cli\""), "{err}");
    ok(&[
        "set", "--create", u, "key", "hello", "--tag", "t", "--expire", "1h",
    ]);
    assert_eq!(ok(&["get", u, "key"]), "hello");
    ok(&["set", u, "n", "41"]);
    assert_eq!(ok(&["incr", u, "n"]).trim(), "42");
    assert_eq!(ok(&["ls", u]), "key\nn\n");
    assert!(ok(&["info", u, "key"]).contains("tag:     t"));
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "stats", u])).expect("json");
    assert_eq!(stats["entries"], 2);
    assert_eq!(stats["size"], 7);
    // A server store's check and stats speak of the server, not of SQLite or files.
    let check = ok(&["check", u]);
    assert!(
        check.contains("engine:              redis")
            && check.contains("lost values:         0")
            && !check.contains("sqlite")
            && !check.contains("file"),
        "{check}"
    );
    let text = ok(&["stats", u]);
    assert!(
        text.contains("of server memory") && !text.contains("on disk"),
        "{text}"
    );
    ok(&["touch", u, "n", "--expire", "10m"]);
    assert!(ok(&["evict-tag", u, "t"]).contains("removed 1"));
    ok(&["expire", u]);
    // What the tool wrote, the API reads (and the other way round).
    let cache = RedisCache::open(u).expect("open");
    assert_eq!(cache.get_counter("n").expect("get"), Some(42));
    cache.set("from-api", b"x").expect("set");
    assert_eq!(ok(&["get", u, "from-api"]), "x");
    ok(&["del", u, "from-api"]);
    let (okay, _, _) = sqcache(&["del", u, "from-api"]);
    assert!(!okay, "del of an absent key succeeded");
    ok(&["clear", "--yes", u]);
    assert_eq!(ok(&["ls", u]), "");
    // A server that is not there: a one-line error, exit 1.
    drop(cache);
    let port = server.port();
    drop(server);
    let (okay, _, err) = sqcache(&["ls", &format!("redis://127.0.0.1:{port}/0")]);
    assert!(
        !okay && err.contains("cannot reach the Redis server"),
        "{err}"
    );
}
