//! The example configuration file shipped with the crate parses and grants what it says.

use std::path::Path;

use sciqlop_cache_host::ConfigFile;

#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins.example.toml");
    let cfg = ConfigFile::load(&path).expect("example config");
    let memo = cfg.policy("memoize");
    assert!(memo.grants("memo"));
    assert!(!memo.grants("sessions"));
    assert_eq!(memo.limits.max_bytes, 1_048_576);
    assert_eq!(cfg.policy("ratelimit").limits.timeout.as_millis(), 1000);
    let p = cfg.plugin_path("memoize").expect("path");
    assert!(p.ends_with("memoize.wasm"));
}

#[test]
fn host_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<sciqlop_cache_host::PluginHost>();
    assert_send_sync::<sciqlop_cache_host::PluginScope>();
}

/// Found by the `host_config` fuzz target: a key length limit near `usize::MAX` in the
/// configuration file overflowed (a panic in debug builds) when the plugin's namespace
/// was opened. It opens, and keys are still checked against the configured limit.
#[test]
fn a_huge_key_length_limit_opens_the_namespace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = ConfigFile::parse(
        "[plugins.p]\nmax_key_len = 18446744073709551615\n",
        tmp.path(),
    )
    .expect("parse");
    let policy = cfg.policy("p");
    assert_eq!(policy.limits.max_key_len, usize::MAX);
    let scope = sciqlop_cache_host::PluginScope::open(tmp.path(), "p", policy).expect("open");
    let store = scope.store("default").expect("store");
    store.set("k", b"v").expect("set");
    assert_eq!(store.get("k").expect("get").as_deref(), Some(&b"v"[..]));
}
