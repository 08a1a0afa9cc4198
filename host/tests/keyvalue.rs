//! wasi:keyvalue 0.2.0-draft and 0.2.0-draft2 served from the plugin scope: guest
//! fixtures kv-draft, kv-draft2 and kv-mixed (guest-examples/), built by
//! scripts/build-guests.sh.

use std::time::Duration;

use sciqlop_cache_host::{HostError, PluginHost, PluginPolicy};

mod common;
use common::{host, policy, wasm};

fn run(h: &PluginHost, plugin: &str, a: &[&str]) -> String {
    let args: Vec<String> = a.iter().map(|s| s.to_string()).collect();
    match h.run(plugin, &args) {
        Ok(s) => s,
        Err(e) => panic!("{plugin} {a:?} failed: {e}"),
    }
}

const DRAFTS: [&str; 2] = ["kv-draft", "kv-draft2"];

#[test]
fn store_and_batch_functions_of_both_drafts() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    for g in DRAFTS {
        h.load_file(g, &wasm(g), PluginPolicy::default())
            .expect("load");
        assert_eq!(run(&h, g, &["open", "s"]), "ok:opened", "{g}");
        assert_eq!(run(&h, g, &["basics", "s"]), "ok:basics", "{g}");
        assert_eq!(run(&h, g, &["batch", "s"]), "ok:batch", "{g}");
        assert_eq!(run(&h, g, &["set", "s", "k", "v"]), "ok:set", "{g}");
        assert_eq!(run(&h, g, &["get", "s", "k"]), "ok:v", "{g}");
        assert_eq!(run(&h, g, &["get", "s", "missing"]), "ok:<none>", "{g}");
        // Written through wasi:keyvalue, stored as the plugin's store `s`.
        let scope = h.scope(g).expect("scope");
        assert_eq!(
            scope.store("s").expect("store").get("k").expect("get"),
            Some(b"v".to_vec()),
            "{g}"
        );
    }
}

#[test]
fn cursor_pages_through_more_keys_than_one_page() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let n = sciqlop_cache_host::keyvalue::KV_PAGE as usize * 2 + 88;
    for g in DRAFTS {
        h.load_file(g, &wasm(g), PluginPolicy::default())
            .expect("load");
        assert_eq!(
            run(&h, g, &["fill", "p", &n.to_string()]),
            format!("ok:filled {n}")
        );
        assert_eq!(
            run(&h, g, &["list", "p"]),
            format!("ok:keys={n} pages=3 sorted=true"),
            "{g}"
        );
        assert_eq!(
            run(&h, g, &["list", "empty"]),
            "ok:keys=0 pages=1 sorted=true"
        );
    }
}

#[test]
fn increment_shares_the_counter_encoding_and_reports_bad_values() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    for g in DRAFTS {
        h.load_file(g, &wasm(g), PluginPolicy::default())
            .expect("load");
        assert_eq!(run(&h, g, &["incr", "c", "n", "5"]), "ok:5", "{g}");
        assert_eq!(run(&h, g, &["incr", "c", "n", "2"]), "ok:7", "{g}");
        assert_eq!(run(&h, g, &["get", "c", "n"]), "ok:7", "{g}");
        assert_eq!(run(&h, g, &["set", "c", "bad", "seven"]), "ok:set");
        let e = run(&h, g, &["incr", "c", "bad", "1"]);
        assert!(e.starts_with("err:other:not-a-counter"), "{g}: {e}");
        assert_eq!(run(&h, g, &["get", "c", "bad"]), "ok:seven", "{g}");
        let max = i64::MAX.to_string();
        assert_eq!(run(&h, g, &["set", "c", "max", &max]), "ok:set");
        let e = run(&h, g, &["incr", "c", "max", "1"]);
        assert!(e.starts_with("err:other:overflow"), "{g}: {e}");
    }
    // draft (u64): negative counters and deltas above i64::MAX are clear errors.
    let g = "kv-draft";
    assert_eq!(run(&h, g, &["set", "c", "neg", "-5"]), "ok:set");
    let e = run(&h, g, &["incr", "c", "neg", "1"]);
    assert!(e.starts_with("err:other:invalid-argument"), "{e}");
    assert_eq!(run(&h, g, &["get", "c", "neg"]), "ok:-5");
    let e = run(&h, g, &["incr", "c", "n", &u64::MAX.to_string()]);
    assert!(e.starts_with("err:other:invalid-argument"), "{e}");
    assert_eq!(run(&h, g, &["get", "c", "n"]), "ok:7");
    // draft2 (s64): negative deltas work.
    assert_eq!(run(&h, "kv-draft2", &["incr", "c", "n", "-10"]), "ok:-3");
    assert_eq!(run(&h, "kv-draft2", &["get", "c", "n"]), "ok:-3");
}

#[test]
fn cas_is_a_real_compare_and_swap() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let g = "kv-draft2";
    h.load_file(g, &wasm(g), PluginPolicy::default())
        .expect("load");
    assert_eq!(run(&h, g, &["cas", "s", "fresh", "v"]), "ok:swapped");
    assert_eq!(run(&h, g, &["get", "s", "fresh"]), "ok:v");
    assert_eq!(
        run(&h, g, &["cas-aba", "s", "k"]),
        "ok:first=cas-failed fresh=A retry=ok:swapped now=D"
    );
    assert_eq!(
        run(&h, g, &["cas-insert", "s", "new"]),
        "ok:first=cas-failed fresh=other retry=ok:swapped now=mine2"
    );
}

#[test]
fn cas_conflict_between_two_instances() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    let g = "kv-draft2";
    // The instances wait for each other through the store; the bound only guards
    // against a hang.
    let p = policy(|p| p.limits.timeout = Duration::from_secs(120));
    h.load_file(g, &wasm(g), p).expect("load");
    assert_eq!(run(&h, g, &["set", "race", "k", "A"]), "ok:set");
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&h, g, &["cas-wait", "race", "k", "X"]));
        let b = s.spawn(|| run(&h, g, &["aba", "race", "k"]));
        (
            a.join().expect("first instance"),
            b.join().expect("second instance"),
        )
    });
    assert_eq!(second, "ok:aba");
    assert_eq!(
        first,
        "ok:seen=A first=cas-failed fresh=A retry=ok:swapped now=X"
    );
}

#[test]
fn ungranted_buckets_are_denied() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    for g in DRAFTS {
        let p = policy(|p| p.stores = vec!["allowed".into()]);
        h.load_file(g, &wasm(g), p).expect("load");
        assert_eq!(run(&h, g, &["open", "allowed"]), "ok:opened", "{g}");
        assert_eq!(run(&h, g, &["open", "other"]), "err:access-denied", "{g}");
        assert_eq!(run(&h, g, &["get", "other", "k"]), "err:access-denied");
        assert_eq!(run(&h, g, &["open", "../escape"]), "err:no-such-store");
    }
    assert!(!root.path().join("escape").exists());
}

#[test]
fn quotas_apply_to_wasi_keyvalue() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    for g in DRAFTS {
        let small = format!("{g}-small");
        let p = policy(|p| {
            p.limits.max_bytes = 4096;
            p.limits.max_value_size = 2048;
            p.limits.max_key_len = 32;
        });
        h.load_file(&small, &wasm(g), p).expect("load");
        let e = run(&h, &small, &["set-size", "s", "big", "3000"]);
        assert!(e.starts_with("err:other:too-large"), "{g}: {e}");
        let long = "k".repeat(33);
        let e = run(&h, &small, &["set", "s", &long, "v"]);
        assert!(e.starts_with("err:other:invalid-key"), "{g}: {e}");
        let e = run(&h, &small, &["fill", "s", "20000"]);
        assert!(e.starts_with("err:other:quota-exceeded"), "{g}: {e}");

        let tight = format!("{g}-tight");
        let p = policy(|p| {
            p.limits.max_bytes = 4096;
            p.limits.max_value_size = 1 << 20;
        });
        h.load_file(&tight, &wasm(g), p).expect("load");
        let e = run(&h, &tight, &["set-size", "s", "big", "10000"]);
        assert!(e.starts_with("err:other:quota-exceeded"), "{g}: {e}");
        // The host and the plugin carry on.
        assert_eq!(run(&h, &tight, &["set", "s", "k", "v"]), "ok:set");
    }
}

#[test]
fn one_guest_mixes_wasi_keyvalue_and_sciqlop_cache() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    h.load_file("mix", &wasm("kv-mixed"), PluginPolicy::default())
        .expect("load");
    assert_eq!(run(&h, "mix", &["mix", "m"]), "ok:mixed");
    let scope = h.scope("mix").expect("scope");
    let m = scope.store("m").expect("store");
    assert_eq!(m.get("v").expect("get"), Some(b"C".to_vec()));
    assert_eq!(m.get("n").expect("get"), Some(b"5".to_vec()));

    // Bucket handles count against the same cap as store handles.
    let p = policy(|p| p.limits.max_handles = 2);
    h.load_file("capped", &wasm("kv-mixed"), p).expect("load");
    let err = h
        .run("capped", &["mix".to_owned(), "m".to_owned()])
        .expect_err("third handle refused");
    match err {
        HostError::Plugin { message, .. } => {
            assert!(message.contains("quota-exceeded"), "{message}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn buckets_named_as_other_hosts_do_open_the_default_store() {
    // wasmtime's test programs open "", Spin's components "default": one store.
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = host(root.path());
    for (i, g) in DRAFTS.iter().enumerate() {
        let plugin = format!("p{i}");
        h.load_file(&plugin, &wasm(g), PluginPolicy::default())
            .expect("load");
        assert_eq!(run(&h, &plugin, &["set", "", "k", "from-empty"]), "ok:set");
        assert_eq!(run(&h, &plugin, &["get", "default", "k"]), "ok:from-empty");
        assert_eq!(
            run(&h, &plugin, &["set", "default", "k2", "from-default"]),
            "ok:set"
        );
        assert_eq!(run(&h, &plugin, &["get", "", "k2"]), "ok:from-default");
        let scope = h.scope(&plugin).expect("scope");
        // The store `default` is the cache's default namespace: what other programs
        // opening the plugin's directory see.
        assert_eq!(
            scope.cache().get("k").expect("get"),
            Some(b"from-empty".to_vec())
        );
        assert_eq!(
            scope
                .store("default")
                .expect("store")
                .get("k2")
                .expect("get"),
            Some(b"from-default".to_vec())
        );
    }
    // The grant is that of `default`.
    let only_memo = policy(|p| p.stores = vec!["memo".to_owned()]);
    h.load_file("denied", &wasm("kv-draft2"), only_memo)
        .expect("load");
    assert_eq!(run(&h, "denied", &["open", ""]), "err:access-denied");
}

/// Two or more host processes on one root: compare-and-swap uses the versions the core
/// keeps in the store, so increments by CAS (retried on conflict) are exact.
#[test]
fn cas_is_exact_across_host_processes() {
    const PROCS: usize = 8;
    const EACH: u64 = 1000;
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("host.toml");
    // Debug builds under load: the bound only guards against a hang.
    std::fs::write(&cfg, "[defaults]\ntimeout_ms = 600000\n").expect("config");
    let plugin = format!("cas={}", wasm("kv-draft2").display());
    let each = EACH.to_string();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"))
                .args(["run", "--root"])
                .arg(root.path().join("root"))
                .arg("--config")
                .arg(&cfg)
                .args([
                    "--plugin",
                    &plugin,
                    "--",
                    "cas-count",
                    "default",
                    "n",
                    &each,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a host process")
        })
        .collect();
    let (mut swapped, mut conflicts) = (0u64, 0u64);
    for child in children {
        let out = child.wait_with_output().expect("host process");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |name: &str| -> u64 {
            stdout
                .split_whitespace()
                .find_map(|w| w.trim_start_matches("ok:").strip_prefix(name))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {stdout:?}"))
        };
        swapped += field("swapped=");
        conflicts += field("conflicts=");
    }
    assert_eq!(swapped, PROCS as u64 * EACH);
    let mut h = host(&root.path().join("root"));
    h.load_file("cas", &wasm("kv-draft2"), PluginPolicy::default())
        .expect("load");
    assert_eq!(
        run(&h, "cas", &["get", "default", "n"]),
        format!("ok:{swapped}"),
        "the counter is the number of successful swaps ({conflicts} conflicts retried)"
    );
}

/// A→B→A by another host process between `new` and `swap` fails the swap: the change is
/// seen through the core's versions, not through bytes (which are the same again).
#[test]
fn cas_sees_an_aba_change_by_another_host_process() {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = root.path().join("host.toml");
    std::fs::write(&cfg, "[defaults]\ntimeout_ms = 120000\n").expect("config");
    let plugin = format!("cas={}", wasm("kv-draft2").display());
    let host_process = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"))
            .args(["run", "--root"])
            .arg(root.path().join("root"))
            .arg("--config")
            .arg(&cfg)
            .args(["--plugin", &plugin, "--"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a host process")
    };
    let output = |c: std::process::Child| {
        let out = c.wait_with_output().expect("host process");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    assert_eq!(output(host_process(&["set", "race", "k", "A"])), "ok:set");
    let waiting = host_process(&["cas-wait", "race", "k", "X"]);
    let aba = host_process(&["aba", "race", "k"]);
    assert_eq!(output(aba), "ok:aba");
    assert_eq!(
        output(waiting),
        "ok:seen=A first=cas-failed fresh=A retry=ok:swapped now=X"
    );
}
