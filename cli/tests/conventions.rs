//! A user's first hour: read-only stores (as an unprivileged user), opening and reading
//! while another process holds the write lock, waits that say so and end at
//! `--timeout`, and the tool's conventions (JSON errors, NUL-separated listing, several
//! keys per `del`, entry metadata, closed pipes, clear refusals of bad values).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use sciqlop_cache_tests::{chmod_tree, is_root};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = sqcache(args);
    assert!(o.status.success(), "sqcache {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// `sqcache ARGS` as `nobody` when the tests run as root (root ignores permissions).
fn as_user(args: &[&str]) -> Output {
    let mut c = sqcache_cmd(args);
    if is_root() {
        c.uid(65534).gid(65534);
    }
    c.output().expect("sqcache runs")
}

/// A temporary directory others can enter (the unprivileged runs must reach stores).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

#[test]
fn a_store_this_user_cannot_write_is_read() {
    let t = open_tempdir();
    let dir = t.path().join("store");
    let d = s(&dir);
    ok(&["set", "--create", d, "small", "hello", "--tag", "t1"]);
    let big = t.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 100_000]).expect("write");
    ok(&["set", d, "big", "-i", s(&big)]);
    chmod_tree(&dir, 0o555, 0o444);
    let out = as_user(&["get", d, "small"]);
    assert!(out.status.success(), "get: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello");
    let out = as_user(&["get", d, "big"]);
    assert!(out.status.success(), "get big: {}", text(&out.stderr));
    assert_eq!(out.stdout, vec![7u8; 100_000]);
    for args in [
        vec!["stats", d],
        vec!["ls", d],
        vec!["check", d],
        vec!["info", d, "small"],
    ] {
        let out = as_user(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let out = as_user(&["set", d, "k", "v"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("sciqlop-cache.db is not writable")
            && err.contains("no write permission")
            && err.contains("read-only"),
        "{err}"
    );
    let out = as_user(&["check", "--fix", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Nothing was made beside the store by the reads.
    chmod_tree(&dir, 0o755, 0o644);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("-wal") || n.ends_with("-shm")),
        "{names:?}"
    );
    // --read-only on a writable store refuses writes too.
    let o = sqcache(&["--read-only", "set", d, "k", "v"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("opened read-only"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(ok(&["--read-only", "get", d, "small"]), "hello");
}

#[test]
fn a_read_only_mount_is_read() {
    let t = open_tempdir();
    let src = t.path().join("src");
    let d = s(&src);
    ok(&["set", "--create", d, "k", "v"]);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    // A read-only bind mount in a private mount namespace (as root, or as an ordinary
    // user through a user namespace): it disappears with the process.
    let script = format!(
        "mount --bind -o ro '{d}' '{m}' && '{bin}' get '{m}' k && ! '{bin}' set '{m}' k2 v",
        m = s(&mnt),
        bin = env!("CARGO_BIN_EXE_sqcache"),
    );
    let mut c = Command::new("unshare");
    if is_root() {
        c.arg("-m");
    } else {
        c.arg("-rm");
    }
    let out = c
        .args(["sh", "-c", &script])
        .output()
        .expect("unshare runs");
    assert!(
        out.status.success(),
        "read-only mount: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "v");
    assert!(
        text(&out.stderr).contains("read-only file system"),
        "{}",
        text(&out.stderr)
    );
}

/// Holds `BEGIN IMMEDIATE` on the store's database (as another program would) until
/// dropped; sqcache runs in its own process.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn hold(dir: &Path) -> WriteLock {
        let c = rusqlite::Connection::open(dir.join("sciqlop-cache.db")).expect("open");
        c.execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'kind';")
            .expect("take the write lock");
        WriteLock(c)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

#[test]
fn readers_do_not_wait_for_a_writer_and_waits_say_so() {
    let t = open_tempdir();
    let dir = t.path().join("store");
    let d = s(&dir);
    ok(&["set", "--create", d, "k", "v"]);
    // A value file queued for removal by another program's delete: removing it is a
    // write, which opening must not wait for.
    let db = rusqlite::Connection::open(dir.join("sciqlop-cache.db")).expect("open");
    db.execute("INSERT INTO discarded(file) VALUES ('00/queued.val')", [])
        .expect("queue a file");
    let lock = WriteLock::hold(&dir);
    for args in [
        vec!["get", d, "k"],
        vec!["ls", d],
        vec!["stats", d],
        vec!["info", d, "k"],
        vec!["volume", d],
    ] {
        // The lock is held throughout: a command that waited for it would fail at the
        // timeout (and say it waits), so success means it did not wait.
        let mut a = vec!["--timeout", "3s"];
        a.extend_from_slice(&args);
        let o = sqcache(&a);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        assert!(
            !text(&o.stderr).contains("waiting"),
            "{args:?} waited: {}",
            text(&o.stderr)
        );
    }
    // A write must wait: it says so after a moment and gives up at --timeout.
    let o = sqcache(&["--timeout", "2s", "set", d, "k", "w"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("waiting for another process's lock"), "{err}");
    assert!(err.contains("--timeout 2s"), "{err}");
    drop(lock);
    assert_eq!(ok(&["get", d, "k"]), "v");
    let queued: i64 = db
        .query_row("SELECT count(*) FROM discarded", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        queued, 0,
        "an open that finds the lock free drains the queue"
    );
    ok(&["set", d, "k", "w"]);
    assert_eq!(ok(&["get", d, "k"]), "w");
}

#[test]
fn conventions() {
    let t = open_tempdir();
    let dir = t.path().join("store");
    let d = s(&dir);
    // A missing store: the commands that can make one say how.
    let o = sqcache(&["set", d, "k", "v"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--create"), "{}", text(&o.stderr));
    ok(&[
        "set", "--create", d, "a", "1", "--expire", "1h", "--tag", "t",
    ]);
    ok(&["set", d, "b", "2"]);
    ok(&["set", d, "line\nbreak", "3"]);
    // Expiry and tag, in text and JSON, with one shape for values.
    let info = ok(&["info", d, "a"]);
    assert!(
        info.contains("tag:     t") && info.contains("expires: 20"),
        "{info}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "get", d, "a"])).expect("json");
    assert_eq!(v["value"], "1");
    assert_eq!(v["tag"], "t");
    assert!(v["expire"]["unix"].as_f64().is_some(), "{v}");
    let v: serde_json::Value = serde_json::from_str(&ok(&["--json", "get", d, "b"])).expect("json");
    assert!(v["expire"].is_null() && v["tag"].is_null(), "{v}");
    // Bad expiries are refused with the right advice.
    for bad in ["-5s", "0s"] {
        let o = sqcache(&["set", d, "x", "1", "--expire", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = text(&o.stderr);
        assert!(
            err.contains("negative") || err.contains("zero"),
            "{bad}: {err}"
        );
        assert!(!err.contains("-- -5s"), "{err}");
    }
    // NUL-separated listing keeps keys with newlines whole.
    let o = sqcache(&["ls", "-0", d]);
    assert_eq!(o.stdout, b"a\0b\0line\nbreak\0");
    // `get -o -` is stdout.
    assert_eq!(ok(&["get", "-o", "-", d, "b"]), "2");
    assert!(!Path::new("-").exists());
    // Several keys per del; the absent ones are named.
    ok(&["set", d, "c", "4"]);
    let o = sqcache(&["del", d, "b", "zz", "c"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("\"zz\""), "{}", text(&o.stderr));
    assert!(ok(&["ls", d]).lines().all(|k| k != "b" && k != "c"));
    // JSON errors under --json: one document on stdout, the exit code kept.
    let o = sqcache(&["--json", "get", d, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json error");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{v}"
    );
    let o = sqcache(&["--json", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json usage error");
    assert_eq!(v["exit_code"], 2);
    // A closed pipe is a quiet success (more keys than a pipe buffers).
    {
        let c = sciqlop_cache::Cache::open(&dir).expect("open");
        let keys: Vec<String> = (0..200)
            .map(|i| format!("many-{i:04}-{}", "k".repeat(1000)))
            .collect();
        let entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"x"[..])).collect();
        c.set_many(entries).expect("set_many");
    }
    for json in [false, true] {
        let mut args = vec!["ls", d];
        if json {
            args.insert(0, "--json");
        }
        let mut child = sqcache_cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut first = [0u8; 1];
        child
            .stdout
            .as_mut()
            .expect("stdout")
            .read_exact(&mut first)
            .expect("read");
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read");
        let status = child.wait().expect("wait");
        assert!(
            status.success() && err.is_empty(),
            "json={json}: {status} {err}"
        );
    }
    // --shards with --create chooses a new fanout's shard count.
    let f = t.path().join("fan");
    ok(&[
        "set",
        "--create",
        "--kind",
        "fanout-cache",
        "--shards",
        "3",
        s(&f),
        "k",
        "v",
    ]);
    assert!(ok(&["stats", s(&f)]).contains("shards:  3"));
    // A file given to migrate is not "missing".
    let file = t.path().join("afile");
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(b"x"))
        .expect("file");
    let o = sqcache(&["migrate", s(&file), s(&t.path().join("dst"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not a directory"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn check_reports_a_damaged_database_and_salvage_copies_the_rest() {
    let t = open_tempdir();
    let dir = t.path().join("store");
    {
        let c = sciqlop_cache::Cache::open(&dir).expect("open");
        for i in 0..400 {
            c.set(&format!("key{i:04}"), "x".repeat(150)).expect("set");
        }
    }
    sciqlop_cache_tests::damage_two_leaves(&dir.join("sciqlop-cache.db"), &[b"key01", &[b'x'; 20]]);
    let d = s(&dir);
    for fix in [false, true] {
        let mut args = vec!["check", d];
        if fix {
            args.push("--fix");
        }
        let o = sqcache(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let out = text(&o.stdout);
        assert!(out.contains("sqlite integrity:    FAILED"), "{out}");
        assert!(
            text(&o.stderr).contains("sqcache salvage"),
            "{}",
            text(&o.stderr)
        );
    }
    let o = sqcache(&["--json", "check", d]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON report");
    assert_eq!(v["ok"], false);
    assert!(
        v["sqlite_errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    let dst = t.path().join("saved");
    let o = sqcache(&["--json", "salvage", d, s(&dst)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON report");
    let copied = v["copied"].as_u64().expect("copied");
    assert!(copied > 200 && copied < 400, "{v}");
    let lost = v["lost_ranges"].as_array().expect("lost ranges");
    assert!(!lost.is_empty(), "{v}");
    assert!(ok(&["check", s(&dst)]).contains("ok:                  yes"));
    assert_eq!(ok(&["ls", s(&dst)]).lines().count() as u64, copied);
}
