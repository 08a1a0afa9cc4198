//! The `sciqlop-cache-host` binary: a plugin's cache survives a real process restart,
//! and the config file's grants apply.

use std::process::Command;

mod common;

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
    let memo = common::guests().join("memoize.wasm");
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
