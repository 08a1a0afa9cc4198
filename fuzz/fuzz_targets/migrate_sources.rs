//! The migration readers (`sciqlop-cache-migrate`: Python diskcache and the original
//! sciqlop-cache) over source directories built from the input: SQLite databases with
//! arbitrary rows (any SQLite type in any column: keys, raw flags, modes, times, tags,
//! pickles, encoded keys, file references), value files with arbitrary names and
//! contents, one store or numbered shards.
//!
//! Checked: opening gives a source or a typed error; listing gives every row once;
//! `read_batch` gives one outcome per id asked for, in order, each naming that id (also
//! for ids that do not exist); a raw diskcache row reads as the typed item stored; a
//! value file reference never leaves the shard directory; `remove_unchanged` removes
//! exactly the entries it counts as removed; never a panic.

#![no_main]

use std::collections::HashSet;
use std::path::{Component, Path};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;
use sciqlop_cache_migrate::diskcache::DiskcacheSource;
use sciqlop_cache_migrate::original::OriginalSource;
use sciqlop_cache_migrate::{EntryId, Item, Read, ReadOptions, Source};

#[derive(Arbitrary, Debug, Clone)]
enum Sql {
    Null,
    Int(i64),
    Small(u8),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// A name from a small pool of file references (see `FILES`).
    File(u8),
    /// A pickle of an int (what the original's `incr` writes), or a pickle-like blob.
    Pickle(u8, i64),
    /// An encoded key of the original (`\0` + type code + text).
    Encoded(u8, String),
}

const FILES: [&str; 12] = [
    "ab/cd.val",
    "ab/ef.val",
    "x.val",
    "../outside.val",
    "/etc/hostname",
    "",
    "ab",
    "ab/../x.val",
    "./x.val",
    "missing/file.val",
    "ab//cd.val",
    "00/cache.db",
];

impl Sql {
    fn value(&self, shard_dir: &Path) -> Value {
        match self {
            Sql::Null => Value::Null,
            Sql::Int(i) => Value::Integer(*i),
            Sql::Small(i) => Value::Integer(i64::from(*i % 6)),
            Sql::Real(f) => Value::Real(*f),
            Sql::Text(s) => Value::Text(s.clone()),
            Sql::Blob(b) => Value::Blob(b.clone()),
            Sql::File(i) => {
                let name = FILES[*i as usize % FILES.len()];
                if *i >= 128 {
                    // An absolute path inside (or beside) the shard directory.
                    Value::Text(shard_dir.join(name).display().to_string())
                } else {
                    Value::Text(name.to_owned())
                }
            }
            Sql::Pickle(proto, n) => {
                let mut p = vec![0x80, 2 + proto % 5];
                match proto % 4 {
                    0 => p.extend([b'K', *n as u8]),
                    1 => p.extend([b'M', *n as u8, (*n >> 8) as u8]),
                    2 => {
                        p.push(b'J');
                        p.extend((*n as i32).to_le_bytes());
                    }
                    _ => {
                        let len = (*proto as usize / 4) % 10;
                        p.extend([0x8a, len as u8]);
                        p.extend(&n.to_le_bytes()[..len.min(8)]);
                    }
                }
                p.push(b'.');
                Value::Blob(p)
            }
            Sql::Encoded(code, text) => {
                let c = ['i', 'f', 'b', 'p', 'x'][*code as usize % 5];
                Value::Text(format!("\0{c}{text}"))
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Row {
    shard: u8,
    key: Sql,
    raw: Sql,
    store_time: Sql,
    expire: Sql,
    access: Sql,
    tag: Sql,
    size: Sql,
    mode: Sql,
    filename: Sql,
    value: Sql,
}

#[derive(Arbitrary, Debug)]
struct File {
    shard: u8,
    name: u8,
    bytes: Vec<u8>,
    dir: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    original: bool,
    /// 0: one store in the directory itself; n: n numbered shard directories.
    shards: u8,
    /// Column types declared (SQLite then converts what it stores) or none (anything).
    typed: bool,
    /// The original: a cache (expire, last_use, tag) or an index.
    cache: bool,
    meta: Vec<(u8, Sql)>,
    rows: Vec<Row>,
    files: Vec<File>,
    expired_before: Option<f64>,
    max_value_size: Option<u64>,
    bogus_ids: Vec<(u8, i64)>,
    str_keys: Vec<String>,
    remove: bool,
    writable: bool,
}

fn safe_relative(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn diskcache_schema(typed: bool) -> &'static str {
    if typed {
        "CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value);
         CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER,
           store_time REAL, expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0,
           tag BLOB, size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB);"
    } else {
        "CREATE TABLE Settings (key, value);
         CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key, raw, store_time, expire_time,
           access_time, access_count, tag, size, mode, filename, value);"
    }
}

fn original_schema(typed: bool, cache: bool) -> &'static str {
    match (typed, cache) {
        (true, true) => {
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value);
             CREATE TABLE cache (key TEXT PRIMARY KEY NOT NULL, path TEXT, value BLOB,
               size INTEGER, expire REAL, last_use REAL, tag TEXT) WITHOUT ROWID;"
        }
        (true, false) => {
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value);
             CREATE TABLE cache (key TEXT PRIMARY KEY NOT NULL, path TEXT, value BLOB,
               size INTEGER) WITHOUT ROWID;"
        }
        (false, true) => {
            "CREATE TABLE meta (key, value);
             CREATE TABLE cache (key PRIMARY KEY, path, value, size, expire, last_use, tag)
               WITHOUT ROWID;"
        }
        (false, false) => "CREATE TABLE cache (key PRIMARY KEY, path, value, size) WITHOUT ROWID;",
    }
}

fuzz_target!(|input: Input| {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("src");
    std::fs::create_dir(&root).expect("mkdir");
    // Something outside the source that a file reference could try to reach.
    std::fs::write(tmp.path().join("outside.val"), b"outside").expect("write");
    let n = (input.shards % 4) as usize;
    let dirs: Vec<_> = if n == 0 {
        vec![root.clone()]
    } else {
        (0..n).map(|i| root.join(format!("{i:02}"))).collect()
    };
    let db_name = if input.original {
        "sciqlop-cache.db"
    } else {
        "cache.db"
    };
    let mut conns = Vec::new();
    for d in &dirs {
        std::fs::create_dir_all(d).expect("mkdir");
        let c = rusqlite::Connection::open(d.join(db_name)).expect("db");
        let schema = if input.original {
            original_schema(input.typed, input.cache)
        } else {
            diskcache_schema(input.typed)
        };
        c.execute_batch(schema).expect("schema");
        conns.push(c);
    }
    for (k, v) in input.meta.iter().take(8) {
        let key = [
            "serializer",
            "encoded_keys",
            "max_size",
            "eviction_policy",
            "x",
        ][*k as usize % 5];
        let v = v.value(&dirs[0]);
        let sql = if input.original {
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"
        } else {
            "INSERT OR REPLACE INTO Settings (key, value) VALUES (?1, ?2)"
        };
        let _ = conns[0].execute(sql, rusqlite::params![key, v]);
    }
    let mut inserted = vec![0usize; dirs.len()];
    for row in input.rows.iter().take(64) {
        let s = row.shard as usize % dirs.len();
        let d = &dirs[s];
        let r = if input.original {
            let sql = if input.cache {
                "INSERT INTO cache (key, path, value, size, expire, last_use, tag) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            } else {
                "INSERT INTO cache (key, path, value, size) VALUES (?1, ?2, ?3, ?4)"
            };
            let mut st = conns[s].prepare(sql).expect("prepare");
            let p = [
                row.key.value(d),
                row.filename.value(d),
                row.value.value(d),
                row.size.value(d),
                row.expire.value(d),
                row.access.value(d),
                row.tag.value(d),
            ];
            let k = if input.cache { 7 } else { 4 };
            st.execute(rusqlite::params_from_iter(&p[..k]))
        } else {
            conns[s].execute(
                "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, tag, size, \
                 mode, filename, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    row.key.value(d),
                    row.raw.value(d),
                    row.store_time.value(d),
                    row.expire.value(d),
                    row.access.value(d),
                    row.tag.value(d),
                    row.size.value(d),
                    row.mode.value(d),
                    row.filename.value(d),
                    row.value.value(d),
                ],
            )
        };
        if r.is_ok() {
            inserted[s] += 1;
        }
    }
    drop(conns);
    for f in input.files.iter().take(16) {
        let d = &dirs[f.shard as usize % dirs.len()];
        let name = FILES[f.name as usize % FILES.len()];
        if !safe_relative(name) || name.ends_with(".db") {
            continue;
        }
        let path = d.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if f.dir {
            let _ = std::fs::create_dir_all(&path);
        } else {
            let _ = std::fs::write(&path, &f.bytes);
        }
    }

    let opts = ReadOptions {
        expired_before: input.expired_before,
        max_value_size: input.max_value_size,
    };
    let source: Box<dyn Source> = if input.original {
        match OriginalSource::open(&root, input.writable) {
            Ok(s) => {
                let _ = (s.is_fanout(), s.is_cache(), s.max_size());
                Box::new(s)
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    } else {
        match DiskcacheSource::open(&root, input.writable) {
            Ok(s) => {
                let _ = (s.is_fanout(), s.is_index());
                Box::new(s)
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    };
    assert_eq!(source.shard_names().len(), dirs.len());
    let _ = source.serializer();
    let listed = match source.list() {
        Ok(l) => l,
        Err(e) => {
            // Typed: a row the reader cannot list (e.g. a key of the wrong type).
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(
        listed.len(),
        inserted.iter().sum::<usize>(),
        "every row listed once"
    );
    let ids: HashSet<EntryId> = listed.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), listed.len(), "ids are unique");
    for k in input.str_keys.iter().take(4) {
        let _ = source.has_str_key(k);
    }
    let mut ask: Vec<EntryId> = listed.iter().map(|l| l.id).collect();
    for (s, r) in input.bogus_ids.iter().take(4) {
        ask.push(EntryId {
            shard: *s as usize,
            row: *r,
        });
    }
    let reads = match source.read_batch(&ask, &opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(reads.len(), ask.len(), "one outcome per id");
    let mut entries = Vec::new();
    for (id, r) in ask.iter().zip(&reads) {
        let got = match r {
            Read::Entry(e) => e.id,
            Read::Expired { id, .. } | Read::TooLarge { id, .. } => *id,
            Read::Vanished(id) => *id,
            Read::Unsupported { id, .. } | Read::Failed { id, .. } => *id,
        };
        assert_eq!(&got, id, "outcome for another id");
        if let Read::Entry(e) = r {
            assert!(
                ids.contains(&e.id),
                "an entry for an id never listed: {:?}",
                e.id
            );
            let _ = (e.key.display("key"), e.value.display("value"), e.key.kind());
            // A value read from a file outside the source would be "outside".
            if let Item::Bytes(b) | Item::Pickle(b) = &e.value {
                assert_ne!(b.as_slice(), b"outside", "read a file outside the source");
            }
            if let Item::Str(s) = &e.value {
                assert_ne!(s, "outside", "read a file outside the source");
            }
            if let Some(t) = input.expired_before
                && let Some(x) = e.expire_at
            {
                assert!(x > t, "expired entry read");
            }
            entries.push(e.as_ref().clone());
        }
    }
    if input.remove && input.writable {
        let refs: Vec<_> = entries.iter().collect();
        match source.remove_unchanged(&refs) {
            Ok(removed) => {
                assert_eq!(removed.removed + removed.changed, refs.len() as u64);
                // Unchanged since read: all of them go.
                assert_eq!(removed.changed, 0, "{removed:?}");
                let after = source.list().expect("list after remove");
                assert_eq!(after.len() as u64, listed.len() as u64 - removed.removed);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
