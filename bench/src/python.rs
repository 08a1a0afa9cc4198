//! The diskcache side: a venv with diskcache 5.6.3 and bench/diskcache_bench.py.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::workloads::Plan;

/// The diskcache version the targets were measured with.
pub const DISKCACHE: &str = "diskcache==5.6.3";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Default venv location: target/bench-venv in the workspace.
pub fn default_venv() -> PathBuf {
    workspace_root().join("target").join("bench-venv")
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

/// Creates the venv (once) and installs diskcache into it; returns its python.
pub fn ensure_venv(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let ok = python.exists()
        && Command::new(&python)
            .args([
                "-c",
                "import diskcache, sys; sys.exit(diskcache.__version__ != '5.6.3')",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Ok(python);
    }
    eprintln!("creating {} with {DISKCACHE}", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(venv)).context(
        "python3 -m venv failed: install python3-venv (apt-get install -y python3-venv)",
    )?;
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", DISKCACHE]))?;
    Ok(python)
}

/// Runs the diskcache driver for `workloads`, writing `csv`.
pub fn run_diskcache(
    venv: &Path,
    plan: &Plan,
    workloads: &[&str],
    work: &Path,
    csv: &Path,
) -> Result<()> {
    let python = ensure_venv(venv)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("diskcache_bench.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script);
    for w in workloads {
        cmd.args(["--workload", w]);
    }
    cmd.arg("--work-dir").arg(work).arg("--csv").arg(csv);
    cmd.args(plan.python_args());
    run(&mut cmd)
}
