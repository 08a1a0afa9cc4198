//! The soak test's own check (`src/bin/soak.rs`, run by `scripts/soak.sh`): a write lost
//! behind its back must make it fail. With `SOAK_SABOTAGE=1` its supervisor deletes the
//! newest acknowledged value of every worker it kills; a short run must then report
//! that value missing and exit with status 1.

use std::process::Command;

#[test]
fn the_soak_reports_a_lost_acknowledged_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .arg("6s")
        .env("SOAK_SABOTAGE", "1")
        .env("SOAK_KEYS", "64")
        .env("SOAK_MAX_SIZE", (256u64 << 20).to_string())
        .env("SOAK_DIR", tmp.path())
        .output()
        .expect("run the soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(1), "the soak must fail: {stdout}");
    assert!(
        stdout.contains("FAILURES") && stdout.contains("missing"),
        "the lost write is named: {stdout}"
    );
}
