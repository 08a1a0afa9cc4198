//! Bad disks and bad files: each gives a clear error (a typed `Error`, never a panic),
//! nothing else is lost, and `check(true)` repairs what can be repaired.
//!
//! - read-only directory (as an unprivileged user: a child drops to uid 65534 when the
//!   tests run as root), and a read-only file system (a tmpfs remounted read-only, when
//!   mounting is allowed);
//! - value files deleted, truncated or extended behind the store's back, and the whole
//!   `data/` directory removed;
//! - the database file replaced by garbage, truncated, or with its pages overwritten;
//! - a full disk: a file size limit (`RLIMIT_FSIZE`) in a child, and a full tmpfs (when
//!   mounting is allowed), after which freeing space lets the store work again.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sciqlop_cache::{Cache, Error};
use sciqlop_cache_tests::{
    DB_FILE, SMALL_THRESHOLD, chmod_tree, describe, file_backed_rows, file_rows, is_root, payload,
    temp_files, value_files,
};

fn open(dir: &Path) -> Cache {
    try_open(dir).expect("open the store")
}

fn try_open(dir: &Path) -> Result<Cache, Error> {
    Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .maintenance_interval(Duration::ZERO)
        .open(dir)
}

/// Writes `n` keys, roughly a third file-backed; returns key → version.
fn populate(cache: &Cache, n: usize) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let k = format!("key{i:03}");
        cache.set(&k, payload(&k, i as u64)).expect("populate");
        m.insert(k, i as u64);
    }
    m
}

fn assert_intact(cache: &Cache, expect: &BTreeMap<String, u64>, what: &str) {
    for (k, v) in expect {
        let got = cache
            .get(k)
            .unwrap_or_else(|e| panic!("{what}: get({k}) failed: {e}"));
        assert_eq!(
            got.as_deref(),
            Some(&payload(k, *v)[..]),
            "{what}: {k} is {} instead of version {v}",
            describe(k, got.as_deref())
        );
    }
}

fn assert_clean(cache: &Cache, dir: &Path, what: &str) {
    let r = cache.check(false).expect("check(false)");
    assert!(r.ok, "{what}: check(false): {r:?}");
    assert_eq!(
        value_files(dir).len() as u64,
        file_backed_rows(dir),
        "{what}: value files vs file-backed rows"
    );
    assert!(temp_files(dir).is_empty(), "{what}: temporary files left");
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_no_panic(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: child failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Read-only directory / file system

#[test]
fn read_only_directory_as_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    // The unprivileged child must be able to reach the store.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    let dir = tmp.path().join("store");
    let expect = {
        let cache = open(&dir);
        populate(&cache, 30)
    };
    chmod_tree(&dir, 0o555, 0o444);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disk_worker"));
    cmd.arg("ro")
        .arg(&dir)
        .arg(dir.join("new-sub-store"))
        .args(expect.keys());
    if is_root() {
        // Root ignores permissions: run the child as `nobody`.
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run the read-only child");
    chmod_tree(&dir, 0o755, 0o644);
    assert_no_panic(&out, "read-only child");
    let l = lines(&out);
    println!("read-only directory, child reported:\n  {}", l.join("\n  "));
    let open_line = l.first().expect("child printed nothing");
    // Opened for reading (the store is at rest: no WAL index can be made, so it is read
    // immutable): every value readable, every write refused naming the database.
    assert_eq!(
        open_line, "OPEN ok",
        "a read-only store must open for reading: {l:?}"
    );
    for (k, v) in &expect {
        let want = format!("GET {k} {}", describe(k, Some(&payload(k, *v))));
        assert!(l.contains(&want), "read-only store: expected {want:?}");
    }
    let db = dir.join(DB_FILE);
    for w in ["SET", "SETFILE"] {
        assert!(
            l.iter().any(|x| x.starts_with(&format!("{w} err ReadOnly"))
                && x.contains(&*db.to_string_lossy())
                && x.contains("no write permission")),
            "a write to a read-only store must fail with Error::ReadOnly naming the database and the cause: {l:?}"
        );
    }
    assert!(
        l.iter().any(|x| x == "CHECK true"),
        "check must run on a read-only store: {l:?}"
    );
    assert!(
        l.iter().any(|x| x.starts_with("NEW err ReadOnly")),
        "creating a store in a read-only directory must fail with Error::ReadOnly: {l:?}"
    );
    // Nothing lost; the store works again once writable.
    let cache = open(&dir);
    assert_intact(&cache, &expect, "after the read-only episode");
    cache
        .set("after", b"ok")
        .expect("write after restoring permissions");
    assert_clean(&cache, &dir, "after the read-only episode");
}

/// An unprivileged reader has a store at rest open (read without SQLite's locks, as it
/// cannot make the WAL index); then the owner writes. The reader must move to reading
/// with locks and see the new values: never a stale answer forever, never torn data.
#[test]
fn read_only_reader_sees_a_writer_that_comes_later() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    let dir = tmp.path().join("store");
    {
        let cache = open(&dir);
        cache.set("k", b"v1").expect("set");
    }
    assert!(
        !dir.join(format!("{DB_FILE}-wal")).exists(),
        "the store is at rest"
    );
    if is_root() {
        // Writable by root only: `nobody` reads.
        chmod_tree(&dir, 0o755, 0o644);
    } else {
        chmod_tree(&dir, 0o555, 0o444);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disk_worker"));
    cmd.arg("watch").arg(&dir).arg("k").arg("v3");
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the watcher");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = Vec::new();
    let mut next = |what: &str| -> String {
        let mut line = String::new();
        out.read_line(&mut line).expect("read the watcher");
        let line = line.trim_end().to_owned();
        assert!(!line.is_empty(), "watcher ended before {what}: {seen:?}");
        seen.push(line.clone());
        line
    };
    assert_eq!(next("opening"), "OPEN ok");
    assert_eq!(next("the first read"), "SEEN v1");
    if !is_root() {
        chmod_tree(&dir, 0o755, 0o644);
    }
    // The owner opens the store and writes while the reader reads.
    let cache = open(&dir);
    cache.set("k", b"v2").expect("set v2");
    std::thread::sleep(Duration::from_millis(100));
    cache.set("k", b"v3").expect("set v3");
    let mut lines = Vec::new();
    loop {
        let l = next("seeing v3");
        let done = l == "DONE" || l == "TIMEOUT";
        lines.push(l);
        if done {
            break;
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "watcher failed: {lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("DONE"), "{lines:?}");
    for l in &lines {
        assert!(
            l.starts_with("SEEN v") || l == "DONE" || l.starts_with("GET err StoreChanged"),
            "unexpected answer from the read-only reader: {l} in {lines:?}"
        );
    }
    drop(cache);
}

/// A tmpfs mounted for the test; unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mount(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn read_only_file_system() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mount = match Mount::tmpfs(&tmp.path().join("mnt"), "16m") {
        Ok(m) => m,
        Err(reason) => panic!("cannot mount a tmpfs (the suite runs as root): {reason}"),
    };
    let dir = mount.0.join("store");
    let expect = {
        let cache = open(&dir);
        populate(&cache, 30)
    };
    mount.remount("ro");
    {
        let cache = try_open(&dir).expect("a store on a read-only file system opens for reading");
        assert_intact(&cache, &expect, "read-only file system");
        let e = cache.set("k", b"v").expect_err("write on a read-only fs");
        assert!(
            matches!(e, Error::ReadOnly { .. }) && e.to_string().contains("read-only file system"),
            "{e:?}"
        );
        let e = cache
            .set("big", vec![1u8; 1 << 16])
            .expect_err("file write on a read-only fs");
        assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
        let report = cache.check(false).expect("check on a read-only fs");
        assert!(report.ok, "{report:?}");
        let e = cache
            .check(true)
            .expect_err("check --fix on a read-only fs");
        assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
        cache
            .maintain()
            .expect("upkeep on a read-only store does nothing");
    }
    let e = try_open(&mount.0.join("new")).expect_err("new store on a read-only fs");
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    mount.remount("rw");
    let cache = open(&dir);
    assert_intact(&cache, &expect, "after remounting read-write");
    assert_clean(&cache, &dir, "after remounting read-write");
}

// ---------------------------------------------------------------------------------------
// Value files damaged behind the store's back

#[test]
fn value_files_deleted_truncated_or_extended() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let cache = open(&dir);
    let mut expect = populate(&cache, 40);
    let files = file_rows(&dir);
    assert!(
        files.len() >= 6,
        "need file-backed values, got {}",
        files.len()
    );
    let mut it = files.iter();
    let (deleted, f1) = it.next().expect("file");
    let (truncated, f2) = it.next().expect("file");
    let (extended, f3) = it.next().expect("file");
    let data = dir.join("data");
    std::fs::remove_file(data.join(f1)).expect("delete value file");
    let len = std::fs::metadata(data.join(f2)).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(data.join(f2))
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate value file");
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join(f3))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"junk"))
        .expect("extend value file");
    let damaged = [deleted.clone(), truncated.clone(), extended.clone()];

    let e = cache.get(deleted).expect_err("missing file");
    assert!(matches!(e, Error::ValueFileMissing { .. }), "{e:?}");
    assert!(
        e.to_string().contains("sqcache check --fix"),
        "message says how to repair: {e}"
    );
    let e = cache.get(truncated).expect_err("truncated file");
    assert!(
        matches!(e, Error::ValueFileTruncated { expected, actual, .. } if actual == expected / 2),
        "{e:?}"
    );
    let e = cache.get(extended).expect_err("extended file");
    assert!(
        matches!(e, Error::ValueFileTruncated { expected, actual, .. } if actual > expected),
        "{e:?}"
    );
    let e = cache
        .pop(deleted)
        .expect_err("pop of a lost value is an error, not a miss");
    assert!(matches!(e, Error::ValueFileMissing { .. }), "{e:?}");
    // Everything else is intact.
    let others: BTreeMap<String, u64> = expect
        .iter()
        .filter(|(k, _)| !damaged.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_intact(&cache, &others, "next to damaged files");

    let r = cache.check(false).expect("check");
    assert!(
        !r.ok && r.dangling_rows == 3,
        "check(false) finds the 3 damaged rows: {r:?}"
    );
    let r = cache.check(true).expect("check(true)");
    assert!(r.ok && r.fixed, "{r:?}");
    for k in &damaged {
        assert_eq!(
            cache.get(k).expect("get after repair"),
            None,
            "{k} removed by repair"
        );
        expect.remove(k);
    }
    assert_intact(&cache, &expect, "after repair");
    assert_eq!(cache.len().expect("len"), expect.len() as u64);
    let size: u64 = expect
        .iter()
        .map(|(k, v)| payload(k, *v).len() as u64)
        .sum();
    assert_eq!(cache.size().expect("size"), size, "size after repair");
    assert_clean(&cache, &dir, "after repair");
    // The keys can be written again.
    for k in &damaged {
        cache.set(k, payload(k, 99)).expect("rewrite");
        expect.insert(k.clone(), 99);
    }
    drop(cache);
    let cache = open(&dir);
    assert_intact(&cache, &expect, "after reopen");
    assert_clean(&cache, &dir, "after reopen");
}

#[test]
fn overwriting_or_deleting_a_key_whose_file_is_lost_works() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let cache = open(&dir);
    cache.set("a", vec![1u8; 500]).expect("set");
    cache.set("b", vec![2u8; 500]).expect("set");
    for f in value_files(&dir) {
        std::fs::remove_file(f).expect("rm");
    }
    cache.set("a", b"replaced").expect("set over a lost file");
    assert_eq!(
        cache.get("a").expect("get").as_deref(),
        Some(&b"replaced"[..])
    );
    assert!(
        cache
            .delete("b")
            .expect("delete of a row whose file is lost")
    );
    assert_eq!(cache.len().expect("len"), 1);
    assert_clean(&cache, &dir, "after overwrite/delete");
}

#[test]
fn data_directory_removed_behind_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let cache = open(&dir);
    cache.set("inline", b"small").expect("set");
    cache.set("file", vec![3u8; 500]).expect("set");
    std::fs::remove_dir_all(dir.join("data")).expect("rm data/");
    // Inline values are unaffected.
    assert_eq!(
        cache.get("inline").expect("get").as_deref(),
        Some(&b"small"[..])
    );
    let e = cache.get("file").expect_err("lost file");
    assert!(matches!(e, Error::ValueFileMissing { .. }), "{e:?}");
    // A new file-backed write either works (directories recreated) or fails clearly.
    match cache.set("file2", vec![4u8; 500]) {
        Ok(()) => assert_eq!(cache.get("file2").expect("get"), Some(vec![4u8; 500])),
        Err(e) => println!("set after data/ removal: {e}"),
    }
    let r = cache
        .check(true)
        .unwrap_or_else(|e| panic!("check(true) must repair a store whose data/ is gone: {e}"));
    assert!(r.ok, "{r:?}");
    assert_eq!(cache.get("file").expect("get"), None);
    cache
        .set("file3", vec![5u8; 500])
        .expect("file-backed write after repair");
    assert_eq!(cache.get("file3").expect("get"), Some(vec![5u8; 500]));
    assert_eq!(
        cache.get("inline").expect("get").as_deref(),
        Some(&b"small"[..])
    );
    assert_clean(&cache, &dir, "after repair of data/");
}

// ---------------------------------------------------------------------------------------
// Database file damaged

fn fresh_store(tmp: &Path, name: &str) -> (PathBuf, BTreeMap<String, u64>) {
    let dir = tmp.join(name);
    let cache = open(&dir);
    let m = populate(&cache, 200);
    drop(cache);
    (dir, m)
}

/// A way of damaging a database file.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn database_replaced_by_garbage_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = fastrand::Rng::with_seed(7);
    let cases: Vec<(&str, Damage)> = vec![
        (
            "random bytes",
            Box::new(|db: &Path| {
                let mut rng = fastrand::Rng::with_seed(1);
                std::fs::write(db, (0..65536).map(|_| rng.u8(..)).collect::<Vec<u8>>())
                    .expect("write");
            }),
        ),
        (
            "text file",
            Box::new(|db: &Path| std::fs::write(db, "hello, I am not a database\n").expect("w")),
        ),
        (
            "truncated to half",
            Box::new(|db: &Path| {
                let len = std::fs::metadata(db).expect("meta").len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(db)
                    .and_then(|f| f.set_len(len / 2))
                    .expect("truncate");
            }),
        ),
        (
            "header destroyed",
            Box::new(|db: &Path| {
                let mut b = std::fs::read(db).expect("read");
                b[..100].fill(0xAB);
                std::fs::write(db, b).expect("write");
            }),
        ),
    ];
    for (i, (what, damage)) in cases.iter().enumerate() {
        let (dir, _) = fresh_store(tmp.path(), &format!("s{i}"));
        let db = dir.join(DB_FILE);
        damage(&db);
        match try_open(&dir) {
            Err(e) => {
                assert!(
                    matches!(e, Error::NotACache { .. } | Error::Corrupt { .. }),
                    "{what}: expected NotACache or Corrupt, got {e:?}"
                );
                assert!(
                    e.to_string().contains(&*db.to_string_lossy()),
                    "{what}: the message names the database file: {e}"
                );
                println!("{what}: {e}");
            }
            Ok(cache) => {
                // SQLite may accept a damaged file at open; then operations and check
                // must report the damage, not panic or invent values.
                let r = cache.check(false);
                println!("{what}: opened; check(false) = {r:?}");
                assert!(
                    !matches!(r, Ok(ref r) if r.ok),
                    "{what}: a damaged database checks ok"
                );
            }
        }
    }
    // Overwritten pages in the middle of the file (header intact).
    let (dir, expect) = fresh_store(tmp.path(), "pages");
    let db = dir.join(DB_FILE);
    let mut b = std::fs::read(&db).expect("read");
    let page = 4096;
    assert!(b.len() > 4 * page, "database of {} bytes", b.len());
    for p in 2..(b.len() / page) {
        if p % 2 == 0 {
            for x in &mut b[p * page..(p + 1) * page] {
                *x = rng.u8(..);
            }
        }
    }
    std::fs::write(&db, b).expect("write");
    match try_open(&dir) {
        Err(e) => println!("overwritten pages: open fails: {e}"),
        Ok(cache) => {
            let mut errors = 0;
            for (k, v) in &expect {
                match cache.get(k) {
                    Ok(None) => {}
                    Ok(Some(got)) => assert_eq!(
                        got,
                        payload(k, *v),
                        "a corrupted database returned bytes never written for {k}"
                    ),
                    Err(_) => errors += 1,
                }
            }
            let r = cache.check(false);
            println!("overwritten pages: {errors} read errors; check(false) = {r:?}");
            assert!(
                !matches!(r, Ok(ref r) if r.ok && r.sqlite_integrity_ok),
                "check(false) does not notice overwritten pages"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Full disk

#[test]
fn full_disk_by_file_size_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    drop(open(&dir));
    let limit: u64 = 512 * 1024;
    let out = Command::new(env!("CARGO_BIN_EXE_disk_worker"))
        .arg("fill")
        .arg(&dir)
        .arg(limit.to_string())
        .output()
        .expect("run the fill child");
    assert_no_panic(&out, "file-size-limited child");
    let l = lines(&out);
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    for line in &l {
        let t: Vec<&str> = line.splitn(3, ' ').collect();
        match t[..] {
            ["OK", k, v] => {
                acked.insert(k.to_owned(), v.parse().expect("version"));
            }
            ["FAILED", k, _] => failed.push(k.to_owned()),
            _ => println!("  child: {line}"),
        }
    }
    println!(
        "file size limit {limit} B: {} writes acknowledged before the limit",
        acked.len()
    );
    let huge = l.iter().find(|x| x.starts_with("HUGE")).expect("HUGE line");
    assert!(
        huge.starts_with("HUGE err Io") && huge.contains("value file"),
        "a value larger than the file size limit must fail with an I/O error naming the file: {huge}"
    );
    let full = l
        .iter()
        .find(|x| x.starts_with("FULL"))
        .expect("the database never hit the limit");
    assert!(
        full.starts_with("FULL err Io") || full.starts_with("FULL err Engine"),
        "a write on a full disk must fail with a clear error: {full}"
    );
    assert!(acked.len() > 10, "some writes fit before the limit");
    assert!(
        l.contains(&"READ 0".to_owned()),
        "reads work on a full disk: {l:?}"
    );
    assert!(
        l.contains(&"CHECK true".to_owned()),
        "check(false) in the process that hit the limit (no file left behind): {l:?}"
    );

    let cache = open(&dir);
    assert_intact(&cache, &acked, "after the disk-full episode");
    for k in &failed {
        assert_eq!(
            cache.get(k).expect("get"),
            None,
            "{k}: a write that returned Err must not be stored"
        );
    }
    assert_eq!(cache.get("huge").expect("get"), None);
    assert_eq!(cache.len().expect("len"), acked.len() as u64);
    let r = cache.check(true).expect("check(true)");
    assert!(r.ok && r.dangling_rows == 0, "{r:?}");
    assert_clean(&cache, &dir, "after the disk-full episode");
    cache
        .set("later", vec![1u8; 1000])
        .expect("write after space is back");
}

#[test]
fn full_tmpfs_then_space_freed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mount = match Mount::tmpfs(&tmp.path().join("mnt"), "3m") {
        Ok(m) => m,
        Err(reason) => panic!("cannot mount a tmpfs (the suite runs as root): {reason}"),
    };
    let ballast = mount.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).expect("ballast");
    let dir = mount.0.join("store");
    let cache = open(&dir);
    let mut acked = BTreeMap::new();
    let mut err = None;
    for i in 0..100_000u64 {
        let k = format!("f{i:06}");
        match cache.set(&k, payload(&k, i)) {
            Ok(()) => {
                acked.insert(k, i);
            }
            Err(e) => {
                assert_eq!(cache.get(&k).expect("get"), None, "failed write visible");
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the tmpfs never filled up");
    println!("full tmpfs after {} writes: {err}", acked.len());
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
            || matches!(err, Error::Engine { .. }),
        "disk full must be a clear error: {err:?}"
    );
    assert_intact(&cache, &acked, "reads on a full disk");
    std::fs::remove_file(&ballast).expect("free space");
    for j in 0..5u64 {
        let k = format!("after{j}");
        cache
            .set(&k, payload(&k, j))
            .unwrap_or_else(|e| panic!("write after space was freed: {e}"));
        acked.insert(k, j);
    }
    assert_intact(&cache, &acked, "after space was freed");
    let r = cache.check(true).expect("check(true)");
    assert!(r.ok && r.dangling_rows == 0, "{r:?}");
    assert_clean(&cache, &dir, "after space was freed");
    drop(cache);
    let cache = open(&dir);
    assert_intact(&cache, &acked, "after reopen");
}

/// Issue #21 item 11: on a full disk the cache could not free space (`delete`, `clear`
/// and `incr` failed with `StorageFull`, so nothing, eviction included, could help).
/// Space-freeing writes now release the store's reserve and retry, `clear` falls back to
/// batches, and the background thread of a cache evicts on `StorageFull`.
#[test]
fn a_full_disk_can_always_be_freed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mount = Mount::tmpfs(&tmp.path().join("mnt"), "4m")
        .unwrap_or_else(|reason| panic!("cannot mount a tmpfs (the suite runs as root): {reason}"));
    let dir = mount.0.join("store");
    let cache = Cache::builder()
        .file_threshold(SMALL_THRESHOLD)
        .open(&dir)
        .expect("open");
    let fill = |cache: &Cache, from: u64| -> (Vec<String>, Error) {
        let mut keys = Vec::new();
        for i in from..from + 1_000_000 {
            let k = format!("f{i:07}");
            match cache.set(&k, payload(&k, i)) {
                Ok(()) => keys.push(k),
                Err(e) => return (keys, e),
            }
        }
        panic!("the tmpfs never filled up");
    };
    let (keys, err) = fill(&cache, 0);
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    println!("full after {} sets: {err}", keys.len());
    // Deleting, touching, counting and releasing locks work on the full disk.
    // (The newest keys: the background eviction may already be at work on the oldest.)
    let newest = &keys[keys.len() - 1];
    assert!(cache.delete(newest).expect("delete on a full disk"));
    cache.incr("counter", 1, 0).expect("incr on a full disk");
    assert!(
        cache
            .touch(&keys[keys.len() - 2], None)
            .expect("touch on a full disk")
    );
    // The background thread evicts least-recently-used entries (at least 1 MiB or a
    // tenth of the values): writes work again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cache.len().expect("len") >= keys.len() as u64 - 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cache never evicted after the disk filled up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !cache.contains(&keys[0]).expect("contains"),
        "the oldest went first"
    );
    let (more, _) = fill(&cache, 1_000_000);
    assert!(
        more.len() > 10,
        "only {} sets fitted after the eviction",
        more.len()
    );
    // Fill it again, then clear it whole.
    let (_, err) = fill(&cache, 2_000_000);
    assert!(matches!(&err, Error::Io { .. }), "{err:?}");
    cache.clear().expect("clear on a full disk");
    assert_eq!(cache.len().expect("len"), 0);
    let r = cache.check(true).expect("check(true)");
    assert!(r.sqlite_integrity_ok, "{r:?}");
    assert!(cache.check(false).expect("check").ok);
    drop(cache);

    // An index never evicts, but it can always be emptied.
    let idx_dir = mount.0.join("index");
    std::fs::remove_dir_all(&dir).expect("remove the cache");
    let index = sciqlop_cache::Index::builder()
        .file_threshold(SMALL_THRESHOLD)
        .open(&idx_dir)
        .expect("open index");
    let mut n = 0u64;
    let err = loop {
        let k = format!("i{n:07}");
        if let Err(e) = index.set(&k, payload(&k, n)) {
            break e;
        }
        n += 1;
    };
    assert!(matches!(&err, Error::Io { .. }), "{err:?}");
    assert!(index.delete("i0000000").expect("delete"));
    index.clear().expect("clear a full index");
    assert_eq!(index.len().expect("len"), 0);
    index.set("again", b"v").expect("set after clear");
}
