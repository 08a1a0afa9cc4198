//! Plugin scopes on Redis (real servers started here by
//! `sciqlop_cache_redis::testing`): two `sciqlop-cache-host` processes running a plugin
//! against one Redis-backed scope see each other's writes, counters and transactions
//! stay exact across them, and the `wasi:keyvalue` components run unchanged on a
//! SQLite-backed, a Redis-backed and a Redis Cluster-backed scope.

use std::path::Path;
use std::process::{Command, Output};

use sciqlop_cache_host::{HostError, PluginHost, PluginPolicy};
use sciqlop_cache_redis::testing::{Cluster, Server};
use sciqlop_cache_redis::{OpenRedis, RedisCache};

mod common;
use common::{host, wasm};

fn host_bin(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"));
    c.args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A configuration file giving plugin `name` the component `wasm` and the scope at
/// `location`; no root anywhere (the data is on the server).
fn config(dir: &Path, name: &str, wasm: &Path, location: &str) -> String {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[plugins.{name}]\npath = {wasm:?}\nlocation = {location:?}\n"),
    )
    .expect("write config");
    cfg.to_str().expect("utf-8 path").to_owned()
}

/// Runs `run --config CFG --plugin NAME --repeat N -- ARGS` in two host processes at
/// once; their outputs.
fn two_processes(cfg: &str, name: &str, repeat: u32, args: [&[&str]; 2]) -> [String; 2] {
    let n = repeat.to_string();
    let spawn = |a: &[&str]| {
        let mut all = vec![
            "run", "--config", cfg, "--plugin", name, "--repeat", &n, "--",
        ];
        all.extend_from_slice(a);
        host_bin(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the host")
    };
    let children = [spawn(args[0]), spawn(args[1])];
    children.map(|c| {
        let o = c.wait_with_output().expect("host process");
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
}

fn run_once(cfg: &str, name: &str, args: &[&str]) -> String {
    let mut all = vec!["run", "--config", cfg, "--plugin", name, "--"];
    all.extend_from_slice(args);
    let o = host_bin(&all).output().expect("run the host");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn two_host_processes_serve_one_plugin_scope_on_redis() {
    let server = Server::start().expect("redis-server");
    let dir = tempfile::tempdir().expect("tempdir");

    // Counters (a command plugin): each process counts its own name and a shared one.
    let cfg = config(
        dir.path(),
        "counter",
        &wasm("counter-cmd"),
        &server.url("shared-counter"),
    );
    let [a, b] = two_processes(&cfg, "counter", 40, [&["shared", "a"], &["shared", "b"]]);
    assert!(a.contains("a: 40") && b.contains("b: 40"), "{a}\n{b}");
    // Each process's writes are seen by the other, and the shared counter is exact.
    let seen = run_once(&cfg, "counter", &["a", "b", "shared"]);
    assert_eq!(seen, "a: 41\nb: 41\nshared: 81\n");
    // The data is where the location says, not under any root: the plugin's store
    // `counters` is a namespace of the Redis store `shared-counter`.
    let native = RedisCache::open(&server.url("shared-counter")).expect("open natively");
    let counters = native.namespace("counters").expect("namespace");
    assert_eq!(counters.get_counter("shared").expect("get"), Some(81));

    // Transactions (the rate limiter: a window counter and a job total move together,
    // a denied hit is rolled back): 2 x 12 hits against a limit of 15 from two
    // processes at once admit exactly 15, whatever the interleaving, and the total
    // agrees. The window (4e9 s) keeps the test inside one window.
    let cfg = config(
        dir.path(),
        "ratelimit",
        &wasm("ratelimit"),
        &server.url("shared-ratelimit"),
    );
    let hit: &[&str] = &["hit", "alice", "15", "4000000000"];
    let [a, b] = two_processes(&cfg, "ratelimit", 12, [hit, hit]);
    let allowed = a.matches("allowed").count() + b.matches("allowed").count();
    let denied = a.matches("denied").count() + b.matches("denied").count();
    assert_eq!((allowed, denied), (15, 9), "{a}\n{b}");
    assert_eq!(run_once(&cfg, "ratelimit", &["total", "alice"]), "15\n");
}

#[test]
fn a_location_without_a_namespace_gets_the_plugin_name() {
    let server = Server::start().expect("redis-server");
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let location = format!("redis://127.0.0.1:{}/0", server.port());
    for name in ["one", "two"] {
        let p = PluginPolicy {
            location: Some(location.clone()),
            ..PluginPolicy::default()
        };
        h.load_file(name, &wasm("counter-cmd"), p).expect("load");
        h.run(name, &["n".into()]).expect("run");
    }
    h.run("one", &["n".into()]).expect("run");
    // Two key spaces on one server: each plugin counts its own runs.
    for (name, runs) in [("one", 2), ("two", 1)] {
        let c = RedisCache::open(&server.url(name)).expect("open natively");
        let n = c.namespace("counters").expect("namespace");
        assert_eq!(n.get_counter("n").expect("get"), Some(runs), "{name}");
    }
    // Nothing was written under the root.
    assert!(!root.path().join("plugins").exists());
}

#[test]
fn an_unreachable_server_fails_the_load_naming_the_location() {
    let server = Server::start().expect("redis-server");
    let location = server.url("gone");
    drop(server);
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = PluginPolicy {
        location: Some(format!("{location}&timeout_ms=500")),
        ..PluginPolicy::default()
    };
    let e = h
        .load_file("gone", &wasm("counter-cmd"), p)
        .expect_err("no server");
    let msg = e.to_string();
    assert!(
        matches!(e, HostError::Cache { .. })
            && msg.contains("plugin gone")
            && msg.contains("cannot reach the Redis server at redis://127.0.0.1:"),
        "{msg}"
    );
}

fn run(h: &PluginHost, plugin: &str, a: &[&str]) -> String {
    let args: Vec<String> = a.iter().map(|s| s.to_string()).collect();
    match h.run(plugin, &args) {
        Ok(s) => s,
        Err(e) => panic!("{plugin} {a:?} failed: {e}"),
    }
}

/// Each `wasi:keyvalue` fixture's calls and the answers every scope must give (those
/// of host/tests/keyvalue.rs on SQLite).
fn keyvalue_script(g: &str) -> Vec<(Vec<&'static str>, String)> {
    let n = sciqlop_cache_host::keyvalue::KV_PAGE as usize * 2 + 88;
    let n: &'static str = Box::leak(n.to_string().into_boxed_str());
    let mut s: Vec<(Vec<&'static str>, String)> = vec![
        (vec!["open", "s"], "ok:opened".into()),
        (vec!["basics", "s"], "ok:basics".into()),
        (vec!["batch", "s"], "ok:batch".into()),
        (vec!["set", "s", "k", "v"], "ok:set".into()),
        (vec!["get", "s", "k"], "ok:v".into()),
        (vec!["get", "s", "missing"], "ok:<none>".into()),
        (vec!["set", "", "k", "from-empty"], "ok:set".into()),
        (vec!["get", "default", "k"], "ok:from-empty".into()),
        (vec!["fill", "p", n], format!("ok:filled {n}")),
        (
            vec!["list", "p"],
            format!("ok:keys={n} pages=3 sorted=true"),
        ),
        (
            vec!["list", "empty"],
            "ok:keys=0 pages=1 sorted=true".into(),
        ),
        (vec!["incr", "c", "n", "5"], "ok:5".into()),
        (vec!["incr", "c", "n", "2"], "ok:7".into()),
        (vec!["get", "c", "n"], "ok:7".into()),
        (vec!["set", "c", "bad", "seven"], "ok:set".into()),
        (vec!["get", "c", "bad"], "ok:seven".into()),
    ];
    if g == "kv-draft" {
        s.push((vec!["set", "c", "neg", "-5"], "ok:set".into()));
        s.push((vec!["get", "c", "neg"], "ok:-5".into()));
    } else {
        s.extend([
            (vec!["incr", "c", "n", "-10"], "ok:-3".into()),
            (vec!["cas", "s", "fresh", "v"], "ok:swapped".into()),
            (
                vec!["cas-aba", "s", "ab"],
                "ok:first=cas-failed fresh=A retry=ok:swapped now=D".into(),
            ),
            (
                vec!["cas-insert", "s", "new"],
                "ok:first=cas-failed fresh=other retry=ok:swapped now=mine2".into(),
            ),
        ]);
    }
    s
}

/// Calls whose answer starts with the given text (the rest names the server's detail).
fn keyvalue_errors(g: &str) -> Vec<(Vec<&'static str>, &'static str)> {
    let mut s = vec![
        (vec!["incr", "c", "bad", "1"], "err:other:not-a-counter"),
        (vec!["incr", "c", "max", "1"], "err:other:overflow"),
    ];
    if g == "kv-draft" {
        s.push((vec!["incr", "c", "neg", "1"], "err:other:invalid-argument"));
    }
    s
}

#[test]
fn keyvalue_components_run_unchanged_on_sqlite_and_redis_scopes() {
    let server = Server::start().expect("redis-server");
    let cluster = Cluster::start().expect("redis cluster");
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let max = i64::MAX.to_string();
    for g in ["kv-draft", "kv-draft2"] {
        let scopes = [
            ("sqlite", None),
            ("redis", Some(server.url(g))),
            ("cluster", Some(cluster.url(g))),
        ];
        for (backend, location) in scopes {
            let name = format!("{g}-{backend}");
            let p = PluginPolicy {
                location,
                ..PluginPolicy::default()
            };
            // The same component file on every scope.
            h.load_file(&name, &wasm(g), p).expect("load");
            for (args, want) in keyvalue_script(g) {
                assert_eq!(run(&h, &name, &args), want, "{name} {args:?}");
            }
            assert_eq!(run(&h, &name, &["set", "c", "max", &max]), "ok:set");
            for (args, want) in keyvalue_errors(g) {
                let got = run(&h, &name, &args);
                assert!(got.starts_with(want), "{name} {args:?}: {got}");
            }
            // Written through wasi:keyvalue, kept as the plugin's store `s`.
            let scope = h.scope(&name).expect("scope");
            assert_eq!(
                scope.store("s").expect("store").get("k").expect("get"),
                Some(b"v".to_vec()),
                "{name}"
            );
        }
    }
}
