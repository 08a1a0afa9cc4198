//! Shared test helpers: diskcache fixtures made by the real diskcache (through
//! scripts/diskcache-fixtures.sh, which installs it in a venv), and the sqcache binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;

/// One entry of the standard fixtures, as written by diskcache-fixtures.py.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub store: String,
    pub key_repr: String,
    pub expect: String,
    pub key: Option<String>,
    pub value_hex: Option<String>,
    pub pickle_hex: Option<String>,
    pub tag: Option<String>,
    pub expire_time: Option<f64>,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_owned()
}

/// Runs scripts/diskcache-fixtures.sh with `args`; panics with its stderr on failure.
pub fn fixtures_script(args: &[&str]) -> String {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/diskcache-fixtures.sh"))
        .args(args)
        .env("SQCACHE_PY_VENV", &venv)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "diskcache-fixtures.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard fixtures, made once per test binary; tests copy what they modify.
pub fn standard() -> &'static (PathBuf, Vec<Record>) {
    static FIX: OnceLock<(tempfile::TempDir, PathBuf, Vec<Record>)> = OnceLock::new();
    let f = FIX.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("fx");
        fixtures_script(&["standard", out.to_str().expect("utf-8 path")]);
        let manifest = std::fs::read(out.join("manifest.json")).expect("manifest");
        let records: Vec<Record> = serde_json::from_slice(&manifest).expect("manifest parses");
        (dir, out, records)
    });
    // Leak-free: the TempDir lives in the static for the whole test run.
    static VIEW: OnceLock<(PathBuf, Vec<Record>)> = OnceLock::new();
    VIEW.get_or_init(|| (f.1.clone(), f.2.clone()))
}

/// A private copy of standard fixture store `name` (cache, fanout, index).
pub fn copy_of(name: &str, into: &Path) -> PathBuf {
    let (root, _) = standard();
    let dst = into.join(name);
    copy_dir(&root.join(name), &dst);
    dst
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}

pub fn records(store: &str) -> Vec<Record> {
    standard()
        .1
        .iter()
        .filter(|r| r.store == store)
        .cloned()
        .collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Key and value of entry `i` of a `bulk` fixture (same as bulk_value in the script).
pub fn bulk_entry(i: u64) -> (String, Vec<u8>) {
    let v = if i.is_multiple_of(10) {
        (i * 3).to_string().into_bytes()
    } else if i % 10 == 1 {
        format!("text-{i}").into_bytes()
    } else if i % 1000 == 7 {
        format!("{i},").repeat(10000).into_bytes()
    } else {
        format!("bytes-{i}-").repeat(8).into_bytes()
    };
    (format!("key-{i:06}"), v)
}

/// Rows in a diskcache database.
pub fn diskcache_rows(dir: &Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join("cache.db")).expect("open cache.db");
    c.query_row("SELECT count(*) FROM Cache", [], |r| r.get(0))
        .expect("count")
}

/// Runs the sqcache binary.
pub fn sqcache(args: &[&str]) -> Output {
    sqcache_cmd(args).output().expect("sqcache runs")
}

pub fn sqcache_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sqcache"));
    c.args(args);
    c
}
