//! Integration tests: build the guests from source (scripts/build-guests.sh, which
//! installs the wasm32-wasip2 target when missing) and run them in the host.

use std::time::{Duration, Instant};

use sciqlop_cache_host::{HostError, Limits, PluginHost, PluginPolicy};

mod common;
use common::{host, policy, wasm};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn run(h: &PluginHost, plugin: &str, a: &[&str]) -> String {
    match h.run(plugin, &args(a)) {
        Ok(s) => s,
        Err(e) => panic!("{plugin} {a:?} failed: {e}"),
    }
}

#[test]
fn memoize_persists_across_host_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let mut h = host(root.path());
        h.load_file("memo", &wasm("memoize"), PluginPolicy::default())
            .expect("load");
        let first = run(&h, "memo", &["primes", "100000"]);
        assert!(
            first.contains("9592") && first.contains("computed"),
            "{first}"
        );
        let again = run(&h, "memo", &["primes", "100000"]);
        assert!(
            again.contains("9592") && again.contains("cached"),
            "{again}"
        );
    }
    let mut h = host(root.path());
    h.load_file("memo", &wasm("memoize"), PluginPolicy::default())
        .expect("load");
    let after_restart = run(&h, "memo", &["primes", "100000"]);
    assert!(after_restart.contains("cached"), "{after_restart}");
    // A TTL of 0 s expires at once: recomputed.
    run(&h, "memo", &["primes", "5000", "0"]);
    let expired = run(&h, "memo", &["primes", "5000", "0"]);
    assert!(expired.contains("computed"), "{expired}");
    let forgot = run(&h, "memo", &["forget-all"]);
    assert!(forgot.starts_with("forgot "), "{forgot}");
    let recomputed = run(&h, "memo", &["primes", "100000"]);
    assert!(recomputed.contains("computed"), "{recomputed}");
}

#[test]
fn same_store_name_is_private_to_each_plugin() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("alice", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    h.load_file("bob", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    let bob_before = run(&h, "bob", &["stat", "shared"]);
    assert_eq!(
        run(&h, "alice", &["set", "shared", "secret", "alice-data"]),
        "ok:set"
    );
    assert_eq!(
        run(&h, "alice", &["fill", "shared", "20", "100"]),
        "ok:len=21 size=".to_owned() + &size_of(&h, "alice")
    );
    assert_eq!(run(&h, "bob", &["get", "shared", "secret"]), "ok:<none>");
    assert_eq!(run(&h, "bob", &["keys", "shared"]), "ok:");
    assert_eq!(
        run(&h, "bob", &["stat", "shared"]).split(" hits").next(),
        bob_before.split(" hits").next()
    );
    assert_eq!(
        run(&h, "bob", &["set", "shared", "secret", "bob-data"]),
        "ok:set"
    );
    assert_eq!(
        run(&h, "alice", &["get", "shared", "secret"]),
        "ok:alice-data"
    );
    assert_eq!(run(&h, "bob", &["get", "shared", "secret"]), "ok:bob-data");
    assert_eq!(run(&h, "bob", &["keys", "shared"]), "ok:secret");
    // Each plugin's data lives in its own directory.
    assert!(root.path().join("plugins/alice").is_dir());
    assert!(root.path().join("plugins/bob").is_dir());
}

fn size_of(h: &PluginHost, plugin: &str) -> String {
    let s = run(h, plugin, &["stat", "shared"]);
    s.split("size=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ungranted_store_names_are_denied() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| p.stores = vec!["allowed".into()]);
    h.load_file("p", &wasm("adversarial"), p).expect("load");
    assert_eq!(run(&h, "p", &["open", "allowed"]), "ok:opened");
    assert_eq!(run(&h, "p", &["open", "other"]), "err:access-denied");
    assert_eq!(run(&h, "p", &["open", "../escape"]), "err:invalid-argument");
    assert_eq!(run(&h, "p", &["open", ".."]), "err:invalid-argument");
    assert!(!root.path().join("escape").exists());
}

#[test]
fn quotas_are_typed_errors_and_the_host_survives() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| {
        p.limits.max_bytes = 4096;
        p.limits.max_value_size = 2048;
        p.limits.max_key_len = 32;
    });
    h.load_file("q", &wasm("adversarial"), p).expect("load");
    // Larger than the value limit.
    assert_eq!(
        run(&h, "q", &["set-size", "s", "big", "3000"]),
        "err:too-large"
    );
    // Within the value limit but not within... an entry can never exceed max_bytes here;
    // use a plugin whose value limit exceeds its byte quota.
    let p2 = policy(|p| {
        p.limits.max_bytes = 4096;
        p.limits.max_value_size = 1 << 20;
    });
    h.load_file("q2", &wasm("adversarial"), p2).expect("load");
    assert_eq!(
        run(&h, "q2", &["set-size", "s", "big", "10000"]),
        "err:quota-exceeded"
    );
    assert_eq!(run(&h, "q", &["set-key-len", "s", "33"]), "err:invalid-key");
    assert_eq!(run(&h, "q", &["set-key-len", "s", "32"]), "ok:set");
    // Host alive, plugin still works.
    assert_eq!(run(&h, "q", &["set", "s", "k", "v"]), "ok:set");
    assert_eq!(run(&h, "q2", &["get", "s", "big"]), "ok:<none>");
}

#[test]
fn a_batch_larger_than_the_byte_quota_is_refused_whole() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| {
        p.limits.max_bytes = 24_576;
        p.limits.max_value_size = 4096;
    });
    h.load_file("b", &wasm("adversarial"), p).expect("load");
    // Ten entries of 4 KiB (each within the limits): 40 KiB in one call, over the quota.
    let out = run(&h, "b", &["batch-max", "s", "10", "4096"]);
    assert!(out.starts_with("set-many err:quota-exceeded"), "{out}");
    let scope = h.scope("b").expect("scope");
    assert_eq!(
        scope.store("s").expect("store").get("b:0").expect("get"),
        None,
        "nothing of it written"
    );
    // A batch within the quota is taken.
    let out = run(&h, "b", &["batch-max", "s", "4", "4096"]);
    assert!(out.starts_with("set-many ok:set"), "{out}");
}

#[test]
fn byte_quota_evicts_least_recently_used() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| p.limits.max_bytes = 20_000);
    h.load_file("lru", &wasm("adversarial"), p).expect("load");
    let out = run(&h, "lru", &["fill", "s", "100", "1000"]);
    assert!(out.starts_with("ok:len="), "{out}");
    // Eviction down to the quota is the cache's upkeep, which runs in the background
    // after a write goes over it (and may not have caught up yet on a loaded machine):
    // run it now.
    let scope = h.scope("lru").expect("scope");
    scope.cache().maintain().expect("maintain");
    let len = scope.store("s").expect("store").len().expect("len");
    assert!(len < 100 && len > 0, "{len} entries left after the upkeep");
    assert!(
        scope.cache().size().expect("size") <= 20_000,
        "the upkeep brings the plugin's bytes within its quota"
    );
    // The newest entry survived, the oldest did not.
    assert_ne!(run(&h, "lru", &["get", "s", "fill:00000099"]), "ok:<none>");
    assert_eq!(run(&h, "lru", &["get", "s", "fill:00000000"]), "ok:<none>");
}

#[test]
fn infinite_loop_is_stopped_within_the_bound() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| p.limits.timeout = Duration::from_millis(100));
    h.load_file("spin", &wasm("adversarial"), p).expect("load");
    h.load_file("other", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    let start = Instant::now();
    let err = h
        .run("spin", &args(&["spin"]))
        .expect_err("must be stopped");
    let took = start.elapsed();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(run(&h, "spin", &["noop"]), "ok:noop");
    assert_eq!(run(&h, "other", &["set", "s", "k", "v"]), "ok:set");
}

#[test]
fn memory_bomb_is_stopped() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| p.limits.max_memory = 16 << 20);
    h.load_file("bomb", &wasm("adversarial"), p).expect("load");
    let err = h
        .run("bomb", &args(&["bomb"]))
        .expect_err("must be stopped");
    assert!(matches!(err, HostError::MemoryLimit { .. }), "{err}");
    assert_eq!(run(&h, "bomb", &["noop"]), "ok:noop");
}

#[test]
fn trap_mid_transaction_leaves_no_partial_writes() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("t", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    let err = h
        .run("t", &args(&["trap-in-tx", "s"]))
        .expect_err("must trap");
    assert!(matches!(err, HostError::Trap { .. }), "{err}");
    assert_eq!(run(&h, "t", &["get", "s", "a"]), "ok:<none>");
    assert_eq!(run(&h, "t", &["get", "s", "n"]), "ok:<none>");
    assert_eq!(run(&h, "t", &["keys", "s"]), "ok:");
    // Dropping a transaction without commit discards it too.
    assert_eq!(run(&h, "t", &["drop-tx", "s"]), "ok:dropped");
    assert_eq!(run(&h, "t", &["get", "s", "a"]), "ok:<none>");
}

#[test]
fn transaction_conflict_writes_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("c", &wasm("adversarial"), PluginPolicy::default())
        .expect("load");
    assert_eq!(
        run(&h, "c", &["conflict", "s"]),
        "read 1, commit err:conflict"
    );
    assert_eq!(run(&h, "c", &["get", "s", "c"]), "ok:2");
    assert_eq!(run(&h, "c", &["get", "s", "d"]), "ok:<none>");
}

#[test]
fn handle_loop_hits_the_cap() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let p = policy(|p| p.limits.max_handles = 8);
    h.load_file("h", &wasm("adversarial"), p).expect("load");
    assert_eq!(
        run(&h, "h", &["handles", "s"]),
        "opened 8 then err:quota-exceeded"
    );
    // Handles do not leak into the next invocation.
    assert_eq!(
        run(&h, "h", &["handles", "s"]),
        "opened 8 then err:quota-exceeded"
    );
}

#[test]
fn sessions_expire_and_evict_by_tag() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("sessions", &wasm("sessions"), PluginPolicy::default())
        .expect("load");
    let t1 = run(&h, "sessions", &["login", "ada"]);
    let t2 = run(&h, "sessions", &["login", "ada"]);
    let t3 = run(&h, "sessions", &["login", "bob"]);
    assert_ne!(t1, t2);
    assert_eq!(run(&h, "sessions", &["check", &t1]), "valid: ada");
    assert_eq!(run(&h, "sessions", &["count"]), "3");
    assert_eq!(
        run(&h, "sessions", &["logout-all", "ada"]),
        "ended 2 sessions of ada"
    );
    assert_eq!(run(&h, "sessions", &["check", &t1]), "invalid");
    assert_eq!(run(&h, "sessions", &["check", &t2]), "invalid");
    assert_eq!(run(&h, "sessions", &["check", &t3]), "valid: bob");
    assert_eq!(run(&h, "sessions", &["logout", &t3]), "logged out");
    assert_eq!(run(&h, "sessions", &["check", &t3]), "invalid");
    // A zero TTL expires at once.
    let t4 = run(&h, "sessions", &["login", "eve", "0"]);
    assert_eq!(run(&h, "sessions", &["check", &t4]), "invalid");
}

#[test]
fn rate_limiter_counts_in_a_transaction() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("rl", &wasm("ratelimit"), PluginPolicy::default())
        .expect("load");
    for i in 1..=3 {
        let out = run(&h, "rl", &["hit", "client", "3", "3600"]);
        assert!(out.starts_with(&format!("allowed {i}/3")), "{out}");
    }
    let denied = run(&h, "rl", &["hit", "client", "3", "3600"]);
    assert!(denied.starts_with("denied"), "{denied}");
    // The denied hit was rolled back: the total counts admitted jobs only.
    assert_eq!(run(&h, "rl", &["total", "client"]), "3");
    assert_eq!(run(&h, "rl", &["total", "someone-else"]), "0");
}

#[test]
fn unknown_plugin_and_bad_component_are_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    assert!(matches!(
        h.run("nope", &[]),
        Err(HostError::UnknownPlugin(_))
    ));
    assert!(matches!(
        h.load("bad", b"not wasm", PluginPolicy::default()),
        Err(HostError::Compile { .. })
    ));
    assert!(matches!(
        h.load_file("../bad", &wasm("adversarial"), PluginPolicy::default()),
        Err(HostError::InvalidName(_))
    ));
    let too_much = PluginPolicy {
        limits: Limits {
            max_memory: usize::MAX,
            ..Limits::default()
        },
        ..PluginPolicy::default()
    };
    assert!(matches!(
        h.load_file("greedy", &wasm("adversarial"), too_much),
        Err(HostError::Config(_))
    ));
}

#[test]
fn command_world_program_uses_its_scoped_cache() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("counter", &wasm("counter-cmd"), PluginPolicy::default())
        .expect("load");
    let denied = policy(|p| p.stores = vec!["other".into()]);
    h.load_file("counter-denied", &wasm("counter-cmd"), denied)
        .expect("load");
    assert_eq!(run(&h, "counter", &["apples", "pears", "apples"]), "");
    assert_eq!(run(&h, "counter", &["apples"]), "");
    // Read natively: the plugin's store "counters" is the namespace "counters" of its
    // cache, with the plugin's own keys.
    let scope = h.scope("counter").expect("scope");
    let counters = scope.cache().namespace("counters").expect("namespace");
    assert_eq!(counters.get_counter("apples").expect("get"), Some(3));
    assert_eq!(counters.get_counter("pears").expect("get"), Some(1));
    assert_eq!(counters.len().expect("len"), 2);
    assert_eq!(
        scope.cache().len().expect("len"),
        0,
        "nothing in the default store"
    );
    // `main` exits with a failure status when the store is not granted (wasi:cli/exit
    // of WASI 0.2 carries only success or failure, reported as 1).
    let err = h
        .run("counter-denied", &args(&["apples"]))
        .expect_err("denied");
    assert!(matches!(err, HostError::Exit { code: 1, .. }), "{err}");
    let denied_scope = h.scope("counter-denied").expect("scope");
    assert_eq!(denied_scope.cache().len().expect("len"), 0);
}
