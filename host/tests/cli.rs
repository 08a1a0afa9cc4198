//! The `sciqlop-cache-host` binary: a plugin's cache survives a real process restart,
//! and the config file's grants apply.

use std::path::{Path, PathBuf};
use std::process::Command;

fn guests() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-guests.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running scripts/build-guests.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn host(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sciqlop-cache-host"))
        .args(args)
        .output()
        .expect("running sciqlop-cache-host");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cache_survives_process_restart_and_config_grants_apply() {
    let memo = guests().join("memoize.wasm");
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_str().expect("utf-8 path");
    let plugin = format!("memo={}", memo.display());
    let (ok, first, err) = host(&[
        "run", "--root", r, "--plugin", &plugin, "--", "primes", "50000",
    ]);
    assert!(
        ok && first.contains("5133") && first.contains("computed"),
        "{first}{err}"
    );
    let (ok, second, err) = host(&[
        "run", "--root", r, "--plugin", &plugin, "--", "primes", "50000",
    ]);
    assert!(ok && second.contains("cached"), "{second}{err}");
    let (ok, keys, err) = host(&["keys", "--root", r, "--plugin", "memo"]);
    assert!(
        ok && keys.contains("memo/primes-below:50000\t5133"),
        "{keys}{err}"
    );

    // A config file that grants the plugin another store only.
    let cfg = root.path().join("host.toml");
    std::fs::write(
        &cfg,
        format!("[plugins.memo]\npath = {:?}\nstores = [\"other\"]\n", memo),
    )
    .expect("write config");
    let c = cfg.to_str().expect("utf-8 path");
    let (ok, out, err) = host(&[
        "run", "--root", r, "--config", c, "--plugin", "memo", "--", "primes", "10",
    ]);
    assert!(
        !ok && err.contains("access to store \"memo\" denied"),
        "{out}{err}"
    );
}
