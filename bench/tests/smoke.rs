//! Smoke test: a quick run of every Rust workload writes CSV rows for every
//! implementation, the merged CSV and the markdown table (no timing is asserted); the
//! plugin workload is skipped, not fatal, in `all` when the guest is missing.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn quick_run_writes_rows_for_every_implementation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_sqbench"))
        .args(["all", "--quick", "--skip-python", "--out"])
        .arg(&out)
        .status()
        .expect("running sqbench");
    assert!(status.success(), "sqbench failed: {status}");

    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("impl,workload,param,op,n,mean_us,p50_us,p99_us,mb_per_s")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.splitn(9, ',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 9), "every row has 9 columns");
    let seen = |workload: &str| -> BTreeSet<&str> {
        rows.iter()
            .filter(|r| r[1] == workload)
            .map(|r| r[0])
            .collect()
    };
    let all = [
        "sciqlop-cache",
        "sciqlop-index",
        "sciqlop-fanout",
        "rusqlite-raw",
        "cacache",
    ];
    for workload in ["scaling", "valuesize", "batch"] {
        assert_eq!(seen(workload), BTreeSet::from(all), "{workload}");
    }
    for workload in ["concurrency-threads", "concurrency-procs"] {
        assert_eq!(
            seen(workload),
            BTreeSet::from(["sciqlop-cache", "sciqlop-fanout"]),
            "{workload}"
        );
    }
    // Measured rows carry numbers; cacache's batch rows are n/a with a reason.
    for r in &rows {
        if r[0] == "cacache" && r[1] == "batch" {
            assert!(r[8].starts_with("n/a: "), "{r:?}");
        } else {
            let mean: f64 = r[5].parse().expect("mean_us is a number");
            assert!(mean > 0.0, "{r:?}");
            assert!(r[4].parse::<u64>().expect("n") > 0, "{r:?}");
        }
    }
    let table = std::fs::read_to_string(out.join("table.md")).expect("table.md");
    assert!(table.contains("## Headline"));
    assert!(table.contains("| sciqlop-cache |") || table.contains(" sciqlop-cache |"));
    // The plugin workload runs when the guest components can be built; else it is
    // skipped, and the table says why.
    let plugin = seen("plugin");
    if plugin.is_empty() {
        assert!(table.contains("Plugin workload: skipped"), "{table}");
    } else {
        assert_eq!(plugin, BTreeSet::from(["plugin-guest", "plugin-native"]));
        assert!(table.contains("## Plugin boundary"), "{table}");
    }
}

/// Without the guest component, `all` skips the plugin workload with a warning and a
/// note in the report; `plugin` alone fails.
#[test]
fn missing_guest_skips_plugin_in_all_and_fails_plugin_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let missing = dir.path().join("no-guests");
    let run = |cmd: &str| {
        Command::new(env!("CARGO_BIN_EXE_sqbench"))
            .args([cmd, "--quick", "--skip-python"])
            // Only the plugin implementations: the other workloads have nothing to run.
            .args(["--impls", "plugin-guest,plugin-native", "--guest-dir"])
            .arg(&missing)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("running sqbench")
    };
    let all = run("all");
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert!(all.status.success(), "sqbench all failed: {stderr}");
    assert!(
        stderr.contains("warning: skipping the plugin workload"),
        "{stderr}"
    );
    let table = std::fs::read_to_string(out.join("table.md")).expect("table.md");
    assert!(table.contains("Plugin workload: skipped"), "{table}");
    assert!(!table.contains("## Plugin boundary"), "{table}");

    let alone = run("plugin");
    assert!(
        !alone.status.success(),
        "sqbench plugin succeeded without a guest"
    );
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("adversarial.wasm"),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
}
