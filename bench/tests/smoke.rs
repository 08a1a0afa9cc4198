//! Smoke test: a quick run of every Rust workload writes CSV rows for every
//! implementation, the merged CSV and the markdown table (no timing is asserted).

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
}
