//! Opening and using a store whose files were damaged: a store (or a fanout of shards)
//! is made once with inline and file-backed values, tags, a namespace and metadata;
//! each input copies it and damages the copy (bit flips, overwrites, truncation,
//! extension, deletion and swapping of the database, its value files and the fanout
//! marker), then opens it and uses it.
//!
//! Checked: every call returns a value or a typed error, never a panic, never a hang
//! (libFuzzer's `-timeout`); `check(false)` reports rather than fails; after
//! `check(true)` reports the store fixed, `check(false)` finds it clean; while the
//! database itself is intact, a file-backed value (verified on read) is never returned
//! with wrong bytes.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sciqlop_cache::{Cache, FanoutCache, SetOptions};

#[derive(Arbitrary, Debug)]
enum Damage {
    Flip {
        file: u8,
        offset: u32,
        bit: u8,
    },
    Write {
        file: u8,
        offset: u32,
        bytes: Vec<u8>,
    },
    Truncate {
        file: u8,
        len: u32,
    },
    Extend {
        file: u8,
        bytes: Vec<u8>,
    },
    Delete {
        file: u8,
    },
    Swap {
        a: u8,
        b: u8,
    },
    Marker(String),
}

#[derive(Arbitrary, Debug)]
enum Use {
    Get(u8),
    Set(u8, Vec<u8>),
    Big(u8, u16),
    Delete(u8),
    Incr(u8),
    EvictTag(bool),
    Keys,
    Len,
    Expire,
    Namespace(u8),
    Metadata,
    Transaction(u8, u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    fanout: bool,
    damage: Vec<Damage>,
    uses: Vec<Use>,
}

struct Template {
    dir: PathBuf,
    values: BTreeMap<String, Vec<u8>>,
}

const FILE_THRESHOLD: usize = 256;

fn value_of(i: usize) -> Vec<u8> {
    if i % 3 == 0 {
        vec![(i % 251) as u8; FILE_THRESHOLD * 2 + i]
    } else {
        format!("value {i}").into_bytes()
    }
}

fn fill(set: impl Fn(&str, &[u8], &SetOptions), n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut values = BTreeMap::new();
    for i in 0..n {
        let key = format!("key{i:02}");
        let v = value_of(i);
        let opts = match i % 4 {
            0 => SetOptions::new().tag("t"),
            1 => SetOptions::new().expire(Duration::from_secs(86_400)),
            _ => SetOptions::new(),
        };
        set(&key, &v, &opts);
        values.insert(key, v);
    }
    values
}

fn templates() -> &'static [Template; 2] {
    static T: OnceLock<(tempfile::TempDir, [Template; 2])> = OnceLock::new();
    &T.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let single = tmp.path().join("single");
        let cache = Cache::builder()
            .file_threshold(FILE_THRESHOLD)
            .maintenance_interval(Duration::ZERO)
            .open(&single)
            .expect("open");
        let values = fill(|k, v, o| cache.set_with(k, v, o).expect("set"), 24);
        cache.set_metadata("m", Some("x")).expect("meta");
        cache
            .namespace("ns")
            .expect("ns")
            .set("n", b"in ns")
            .expect("set");
        drop(cache);
        let fan = tmp.path().join("fanout");
        let f = FanoutCache::builder()
            .shards(3)
            .file_threshold(FILE_THRESHOLD)
            .maintenance_interval(Duration::ZERO)
            .open(&fan)
            .expect("fanout");
        let fvalues = fill(|k, v, o| f.set_with(k, v, o).expect("set"), 24);
        drop(f);
        let t = [
            Template {
                dir: single,
                values,
            },
            Template {
                dir: fan,
                values: fvalues,
            },
        ];
        (tmp, t)
    })
    .1
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).expect("copy");
        }
    }
}

fn is_db(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".db"))
}

fn damage(dir: &Path, d: &Damage) -> bool {
    let mut all = Vec::new();
    files(dir, &mut all);
    if all.is_empty() {
        return false;
    }
    let pick = |i: u8| all[i as usize % all.len()].clone();
    let rw = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).open(p);
    use std::io::{Read, Seek, SeekFrom, Write};
    match d {
        Damage::Flip { file, offset, bit } => {
            let p = pick(*file);
            if let Ok(mut f) = rw(&p) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len > 0 {
                    let at = u64::from(*offset) % len;
                    let mut b = [0u8];
                    let _ = f
                        .seek(SeekFrom::Start(at))
                        .and_then(|_| f.read_exact(&mut b));
                    b[0] ^= 1 << (bit % 8);
                    let _ = f.seek(SeekFrom::Start(at)).and_then(|_| f.write_all(&b));
                }
            }
            is_db(&p)
        }
        Damage::Write {
            file,
            offset,
            bytes,
        } => {
            let p = pick(*file);
            if let Ok(mut f) = rw(&p) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0).max(1);
                let at = u64::from(*offset) % len;
                let _ = f.seek(SeekFrom::Start(at)).and_then(|_| f.write_all(bytes));
            }
            is_db(&p)
        }
        Damage::Truncate { file, len } => {
            let p = pick(*file);
            if let Ok(f) = rw(&p) {
                let l = f.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = f.set_len(u64::from(*len) % (l + 1));
            }
            is_db(&p)
        }
        Damage::Extend { file, bytes } => {
            let p = pick(*file);
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&p) {
                let _ = f.write_all(bytes);
            }
            is_db(&p)
        }
        Damage::Delete { file } => {
            let p = pick(*file);
            let _ = std::fs::remove_file(&p);
            is_db(&p)
        }
        Damage::Swap { a, b } => {
            let (pa, pb) = (pick(*a), pick(*b));
            let tmp = dir.join(".swap");
            let _ = std::fs::rename(&pa, &tmp);
            let _ = std::fs::rename(&pb, &pa);
            let _ = std::fs::rename(&tmp, &pb);
            is_db(&pa) || is_db(&pb)
        }
        Damage::Marker(text) => {
            let _ = std::fs::write(dir.join("sciqlop-fanout.toml"), text);
            false
        }
    }
}

fuzz_target!(|input: Input| {
    let t = &templates()[input.fanout as usize];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    copy_dir(&t.dir, &dir);
    let mut db_damaged = false;
    for d in input.damage.iter().take(8) {
        db_damaged |= damage(&dir, d);
    }
    let path = dir.to_str().expect("utf-8 path");
    let store = match Cache::builder()
        .file_threshold(FILE_THRESHOLD)
        .maintenance_interval(Duration::ZERO)
        .busy_timeout(Duration::from_millis(200))
        .verify_values(true)
        .open_location(path)
    {
        Ok(s) => s,
        Err(e) => {
            // Typed, and its message names something.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let keys: Vec<&String> = t.values.keys().collect();
    let key = |i: u8| keys[i as usize % keys.len()].as_str();
    let mut written: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for u in input.uses.iter().take(16) {
        match u {
            Use::Get(i) => {
                let k = key(*i);
                if let Ok(Some(v)) = store.get(k) {
                    let want = match written.get(k) {
                        Some(w) => w.clone(),
                        None => Some(t.values[k].clone()),
                    };
                    if !db_damaged && v.len() > FILE_THRESHOLD && written.get(k).is_none() {
                        assert_eq!(Some(v), want, "{k}: a damaged value file read back");
                    }
                }
            }
            Use::Set(i, v) => {
                let k = key(*i);
                if store.set(k, v).is_ok() {
                    written.insert(k.to_owned(), Some(v.clone()));
                }
            }
            Use::Big(i, n) => {
                let k = key(*i);
                let v = vec![*i; FILE_THRESHOLD + *n as usize % 4096];
                if store.set(k, &v).is_ok() {
                    written.insert(k.to_owned(), Some(v));
                }
            }
            Use::Delete(i) => {
                let k = key(*i);
                if store.delete(k).is_ok() {
                    written.insert(k.to_owned(), None);
                }
            }
            Use::Incr(i) => {
                let _ = store.incr(key(*i), 1, 0);
                written.insert(key(*i).to_owned(), None);
            }
            Use::EvictTag(all) => {
                let _ = store.evict_tag(if *all { "t" } else { "none" });
                for k in keys.iter().step_by(4) {
                    written.insert((*k).clone(), None);
                }
            }
            Use::Keys => {
                let _ = store.keys_page("", None, 1000);
                let _ = store.keys_page("key1", Some("key10"), 3);
            }
            Use::Len => {
                let _ = (store.len(), store.stats());
            }
            Use::Expire => {
                let _ = store.expire();
            }
            Use::Namespace(i) => {
                if let Ok(ns) = store.namespace("ns") {
                    let _ = ns.get("n");
                    let _ = ns.set(key(*i), b"x");
                    let _ = ns.len();
                }
            }
            Use::Metadata => {
                let _ = store.metadata("m");
                let _ = store.set_metadata("m2", Some("y"));
            }
            Use::Transaction(a, b) => {
                let r = store.transact(|c| {
                    let v = c.get(key(*a))?;
                    c.set(key(*b), v.unwrap_or_default())?;
                    Ok::<_, sciqlop_cache::Error>(())
                });
                let _ = r;
                written.insert(key(*b).to_owned(), None);
            }
        }
    }
    let report = match store.check(false) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = report;
    let fixed = match store.check(true) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    if fixed.ok {
        let again = store.check(false).expect("check after a fix");
        assert!(
            again.ok,
            "check(true) said fixed, check(false) then: {again:?}\n(fixed: {fixed:?})"
        );
    }
    // Whatever check reported, the store can still be read and written.
    let _ = store.get(key(0));
    let _ = store.set("after-check", b"v");
    let _ = store.len();
});
