//! Shared by the host's integration tests: the guest components, built from source once
//! per test process by scripts/build-guests.sh (which installs the wasm32-wasip2 target
//! when missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sciqlop_cache_host::{HostConfig, PluginHost, PluginPolicy};

/// Directory of the built guest components.
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-guests.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("running scripts/build-guests.sh");
        assert!(
            out.status.success(),
            "building the guests failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(dir.trim())
    })
}

#[allow(dead_code)] // not every test crate uses it
/// Path of the component built from crate `name` (binaries keep its dashes, cdylib
/// files use underscores).
pub fn wasm(name: &str) -> PathBuf {
    let exact = guests().join(format!("{name}.wasm"));
    if exact.exists() {
        return exact;
    }
    guests().join(format!("{}.wasm", name.replace('-', "_")))
}

/// A host rooted at `root` whose plugins' output is captured, not printed.
#[allow(dead_code)]
pub fn host(root: &Path) -> PluginHost {
    let mut cfg = HostConfig::new(root);
    cfg.inherit_stdio = false;
    PluginHost::new(cfg).expect("host")
}

/// The default policy, changed by `f`.
#[allow(dead_code)]
pub fn policy(f: impl FnOnce(&mut PluginPolicy)) -> PluginPolicy {
    let mut p = PluginPolicy::default();
    f(&mut p);
    p
}
