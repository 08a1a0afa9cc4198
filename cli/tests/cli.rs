//! The `sqcache` binary, driven as a user would, including bad input.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and asserts success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = sqcache(args);
    assert!(
        o.status.success(),
        "sqcache {args:?} failed ({:?}): {}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs and asserts the exit code and a one-line error on stderr; returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let o = sqcache_cmd(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "sqcache {args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    if code == 1 {
        assert_eq!(err.trim_end().lines().count(), 1, "one sentence: {err}");
    }
    err
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(&a)).expect("valid JSON")
}

#[test]
fn round_trip_on_a_cache() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().join("c");
    let d = s(&d);
    ok(&["set", d, "greeting", "hello", "--create"]);
    assert_eq!(ok(&["get", d, "greeting"]), "hello");
    ok(&[
        "set",
        d,
        "session/1",
        "tok",
        "--expire",
        "10m",
        "--tag",
        "session",
    ]);
    ok(&["set", d, "session/2", "tok", "--tag", "session"]);
    assert_eq!(ok(&["incr", d, "hits"]), "1\n");
    assert_eq!(ok(&["incr", d, "hits", "41"]), "42\n");
    assert_eq!(ok(&["incr", d, "hits", "-2"]), "40\n");
    assert_eq!(ok(&["ls", d]), "greeting\nhits\nsession/1\nsession/2\n");
    assert_eq!(
        ok(&["ls", d, "--prefix", "session/", "--limit", "1"]),
        "session/1\n"
    );
    let st = json(&["stats", d]);
    assert_eq!(st["kind"], "cache");
    assert_eq!(st["entries"], 4);
    assert!(ok(&["stats", d]).contains("entries: 4"));
    assert_eq!(json(&["evict-tag", d, "session"])["removed"], 2);
    ok(&["set", d, "short", "x", "--expire", "1ms"]);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ok(&["expire", d]), "removed 1 expired entries\n");
    ok(&["touch", d, "greeting", "--expire", "1h"]);
    ok(&["del", d, "greeting"]);
    fails(&["get", d, "greeting"], 1);
    assert!(json(&["volume", d])["volume"].as_u64().expect("number") > 0);
    assert!(ok(&["volume", d]).contains("bytes"));
    assert_eq!(ok(&["clear", d, "--yes"]), "removed 1 entries\n");
    assert_eq!(json(&["stats", d])["entries"], 0);
}

#[test]
fn values_from_files_and_stdin() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().join("c");
    let d = s(&d);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let input = tmp.path().join("in.bin");
    std::fs::write(&input, &big).expect("write");
    ok(&["set", d, "big", "-i", s(&input), "--create"]);
    let out = tmp.path().join("out.bin");
    ok(&["get", d, "big", "-o", s(&out)]);
    assert_eq!(std::fs::read(&out).expect("read"), big);
    let o = sqcache(&["get", d, "big"]);
    assert_eq!(o.stdout, big, "raw bytes on stdout");
    let mut child = sqcache_cmd(&["set", d, "piped"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"\x00\xffbinary")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let v = json(&["get", d, "piped"]);
    assert_eq!(v["value_hex"], "00ff62696e617279");
    assert_eq!(json(&["get", d, "big"])["size"], 100_000);
}

#[test]
fn bad_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing");
    let e = fails(&["stats", s(&missing)], 1);
    assert!(e.contains("does not exist"), "{e}");
    assert!(!missing.exists(), "nothing is created");
    // A directory that is not a cache.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), "x").expect("write");
    let e = fails(&["ls", s(&other)], 1);
    assert!(e.contains("is not a sciqlop-cache store"), "{e}");
    // A database that is not ours.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("sciqlop-cache.db"), vec![7u8; 4096]).expect("write");
    fails(&["stats", s(&foreign)], 1);
    // A diskcache directory.
    let dc = copy_of("index", tmp.path());
    let e = fails(&["stats", s(&dc)], 1);
    assert!(e.contains("sqcache migrate"), "{e}");

    let d = tmp.path().join("c");
    let d = s(&d);
    ok(&["set", d, "k", "v", "--create"]);
    let e = fails(&["set", d, "k", "v", "--expire", "soon"], 2);
    assert!(e.contains("duration"), "{e}");
    let e = fails(&["get", d, "unknown"], 1);
    assert!(e.contains("not found"), "{e}");
    fails(&["del", d, "unknown"], 1);
    fails(&["touch", d, "unknown"], 1);
    let e = fails(&["incr", d, "k"], 1);
    assert!(e.contains("not a counter"), "{e}");
    fails(&["frobnicate", d], 2);
    fails(&["get", d], 2);
    fails(&["set", d, "k", "v", "-i", "file"], 2);
    // set without a value and with no stdin data reads an empty stdin: allowed.
    // clear refuses to run unattended without --yes.
    let e = fails(&["clear", d], 2);
    assert!(e.contains("--yes"), "{e}");
    assert_eq!(ok(&["get", d, "k"]), "v", "nothing was cleared");
    fails(&["--kind", "index", "stats", d], 1);
    fails(&["--kind", "fanout-cache", "stats", d], 1);
}

#[test]
fn index_and_fanout_directories() {
    let tmp = tempfile::tempdir().expect("tmp");
    let idx = tmp.path().join("idx");
    let idx = s(&idx);
    ok(&["--kind", "index", "set", idx, "a", "1", "--create"]);
    assert_eq!(json(&["stats", idx])["kind"], "index");
    let e = fails(&["set", idx, "b", "2", "--expire", "1h"], 1);
    assert!(e.contains("no expiry"), "{e}");
    fails(&["evict-tag", idx, "t"], 1);
    assert_eq!(ok(&["incr", idx, "a"]), "2\n");

    let fan = tmp.path().join("fan");
    let fan = s(&fan);
    ok(&["--kind", "fanout-cache", "set", fan, "a", "1", "--create"]);
    for i in 0..50 {
        ok(&[
            "set",
            fan,
            &format!("k{i:02}"),
            &i.to_string(),
            "--tag",
            "t",
        ]);
    }
    let st = json(&["stats", fan]);
    assert_eq!(st["kind"], "fanout-cache");
    assert_eq!(st["shards"], 8);
    assert_eq!(st["entries"], 51);
    let keys = json(&["ls", fan, "--prefix", "k", "--limit", "3"]);
    assert_eq!(keys, serde_json::json!(["k00", "k01", "k02"]));
    assert_eq!(ok(&["get", fan, "k07"]), "7");
    assert_eq!(json(&["check", fan])["ok"], true);
    assert_eq!(json(&["evict-tag", fan, "t"])["removed"], 50);
    assert_eq!(ok(&["clear", fan, "-y"]), "removed 1 entries\n");
}

#[test]
fn check_and_fix() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("c");
    let d = s(&dir);
    ok(&["set", d, "small", "v", "--create"]);
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![1u8; 50_000]).expect("write");
    ok(&["set", d, "big", "-i", s(&big)]);
    assert!(ok(&["check", d]).contains("ok:                  yes"));
    // Lose the value file behind the store's back.
    let mut files = Vec::new();
    find_files(&dir.join("data"), &mut files);
    assert_eq!(files.len(), 1);
    std::fs::remove_file(&files[0]).expect("rm");
    let o = sqcache(&["check", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("rows without file:   1"),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("check --fix"), "{}", stderr(&o));
    let r = json(&["check", d, "--fix"]);
    assert_eq!(r["ok"], true);
    assert_eq!(r["fixed"], true);
    assert_eq!(json(&["check", d])["dangling_rows"], 0);
    fails(&["get", d, "big"], 1);
}

/// Value files (`*.val`) under `dir`.
fn find_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            find_files(&e.path(), out);
        } else if e.path().extension().is_some_and(|x| x == "val") {
            out.push(e.path());
        }
    }
}

#[test]
fn migrate_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = copy_of("cache", tmp.path());
    let dst = tmp.path().join("dst");
    let o = sqcache(&["--json", "migrate", s(&src), s(&dst)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "",
        "no progress bar when stderr is not a terminal"
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(r["migrated"], 62);
    assert_eq!(r["skipped"].as_array().expect("list").len(), 11);
    assert!(r["elapsed"].as_f64().is_some());
    let reasons: Vec<&str> = r["skipped"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons.contains(&"key-collision") && reasons.contains(&"pickled-key"));
    assert_eq!(ok(&["get", s(&dst), "float-big"]), "1e+16");
    // Human output, into an index: entries with expiry or tags are skipped and listed.
    let dst2 = tmp.path().join("dst2");
    let out = ok(&["migrate", "--type", "index", s(&src), s(&dst2)]);
    assert!(out.starts_with("migrated 38 of 73 entries"), "{out}");
    assert!(out.contains("tag-in-index"), "{out}");
    assert!(out.contains("… and 15 more"), "{out}");
    assert_eq!(json(&["stats", s(&dst2)])["kind"], "index");
    // Bad usage.
    fails(&["migrate", s(&src)], 2);
    fails(&["migrate", "--type", "blob", s(&src), s(&dst)], 2);
    let e = fails(&["migrate", s(&tmp.path().join("nope")), s(&dst)], 1);
    assert!(e.contains("does not exist"), "{e}");
    let e = fails(&["migrate", s(&dst), s(&tmp.path().join("x"))], 1);
    assert!(e.contains("not a diskcache directory"), "{e}");
}

/// Kills a `migrate --drop` mid-way, checks nothing is lost, re-runs it to the end.
#[test]
fn interrupted_drop_migration() {
    const N: u64 = 20_000;
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("bulk");
    fixtures_script(&["bulk", s(&src), &N.to_string()]);
    let dst = tmp.path().join("dst");
    let mut child = sqcache_cmd(&["migrate", "--drop", "--batch-size", "20", s(&src), s(&dst)])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until a fair part has moved (diskcache's own table shrinks), then kill.
    let start = Instant::now();
    loop {
        let n: i64 = rusqlite::Connection::open(src.join("cache.db"))
            .and_then(|c| c.query_row("SELECT count(*) FROM Cache", [], |r| r.get(0)))
            .unwrap_or(N as i64);
        if n <= (N - 3000) as i64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "migration too slow"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let left = diskcache_rows(&src) as u64;
    assert!(left > 0 && left < N, "killed mid-way ({left} left)");
    // Nothing lost: every entry is in the source or in the destination.
    {
        let cache = sciqlop_cache::Cache::open(&dst).expect("open");
        let c = rusqlite::Connection::open(src.join("cache.db")).expect("open");
        let mut in_src = c
            .prepare("SELECT count(*) FROM Cache WHERE key = ?1")
            .expect("prepare");
        for i in 0..N {
            let (k, v) = bulk_entry(i);
            let there: i64 = in_src.query_row([&k], |r| r.get(0)).expect("count");
            if there == 0 {
                assert_eq!(cache.get(&k).expect("get"), Some(v), "{k} lost");
            }
        }
    }
    // Re-run to the end.
    let out = ok(&["--json", "migrate", "--drop", s(&src), s(&dst)]);
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["errors"].as_array().expect("list").len(), 0);
    assert_eq!(diskcache_rows(&src), 0);
    let cache = sciqlop_cache::Cache::open(&dst).expect("open");
    assert_eq!(cache.len().expect("len"), N);
    for i in 0..N {
        let (k, v) = bulk_entry(i);
        assert_eq!(cache.get(&k).expect("get"), Some(v), "{k}");
    }
    let mut files = Vec::new();
    find_files(&src, &mut files);
    // A kill between the source commit and the file removal may leave the files of
    // one batch (at most one file-backed entry per 20) behind, never more.
    let val_files = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "val"))
        .count();
    assert!(val_files <= 1, "value files left in the source: {files:?}");
}
