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
