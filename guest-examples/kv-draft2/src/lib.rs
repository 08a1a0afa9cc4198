//! Test fixture: a component written against `wasi:keyvalue@0.2.0-draft2` only (what
//! Spin serves), exercising every function, compare-and-swap included.
//!
//! `run(args)` answers `ok:...` or `err:<variant>[:message]`. Modes:
//! `open B`, `basics B`, `fill B N`, `list B`, `set B K V`, `set-size B K N`, `get B K`,
//! `incr B K DELTA`, `batch B`, `cas B K V`, `cas-aba B K`, `cas-insert B K`,
//! `cas-wait B K V` / `aba B K` (two instances racing: see host/tests/keyvalue.rs),
//! `cas-count B K N` (N compare-and-swap increments, retried on conflict).

wit_bindgen::generate!({
    inline: r#"
        package sciqlop:kv-draft2-guest;
        world guest {
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            import wasi:keyvalue/batch@0.2.0-draft2;
            export run: func(args: list<string>) -> result<string, string>;
        }
    "#,
    path: "../../wit",
    world: "sciqlop:kv-draft2-guest/guest",
    generate_all,
});

use wasi::keyvalue0_2_0_draft2::{atomics, batch, store};

struct Component;

fn err(e: &store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "err:no-such-store".into(),
        store::Error::AccessDenied => "err:access-denied".into(),
        store::Error::Other(m) => format!("err:other:{m}"),
    }
}

fn out<T>(r: Result<T, store::Error>, f: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("ok:{}", f(v)),
        Err(e) => err(&e),
    }
}

fn text(v: Option<Vec<u8>>) -> String {
    match v {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        None => "<none>".into(),
    }
}

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {i}"))
}

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn kv<T>(r: Result<T, store::Error>) -> Result<T, String> {
    r.map_err(|e| err(&e))
}

fn basics(b: &store::Bucket) -> Result<String, String> {
    check(kv(b.get("a"))?.is_none(), "get of a missing key is none")?;
    check(!kv(b.exists("a"))?, "missing key does not exist")?;
    kv(b.set("a", b"one"))?;
    check(kv(b.get("a"))? == Some(b"one".to_vec()), "get after set")?;
    check(kv(b.exists("a"))?, "exists after set")?;
    kv(b.set("a", b"two"))?;
    check(kv(b.get("a"))? == Some(b"two".to_vec()), "set overwrites")?;
    kv(b.delete("a"))?;
    kv(b.delete("a"))?; // deleting a missing key is a no-op
    check(!kv(b.exists("a"))?, "gone after delete")?;
    Ok("ok:basics".into())
}

fn list(b: &store::Bucket) -> Result<String, String> {
    let mut all: Vec<String> = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = kv(b.list_keys(cursor.as_deref()))?;
        pages += 1;
        all.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        check(pages <= 100_000, "cursor terminates")?;
    }
    let sorted = all.windows(2).all(|w| w[0] < w[1]);
    Ok(format!(
        "ok:keys={} pages={pages} sorted={sorted}",
        all.len()
    ))
}

fn batch_mode(b: &store::Bucket) -> Result<String, String> {
    kv(batch::set_many(
        b,
        &[("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())],
    ))?;
    let got = kv(batch::get_many(b, &["x".into(), "nope".into(), "y".into()]))?;
    check(
        got == vec![
            Some(("x".to_string(), b"1".to_vec())),
            None,
            Some(("y".to_string(), b"2".to_vec())),
        ],
        "get-many returns pairs in order, none for missing",
    )?;
    kv(batch::delete_many(b, &["x".into(), "nope".into()]))?;
    let got = kv(batch::get_many(b, &["x".into(), "y".into()]))?;
    check(
        got == vec![None, Some(("y".to_string(), b"2".to_vec()))],
        "delete-many removes only what it names",
    )?;
    Ok("ok:batch".into())
}

fn swap_out(r: Result<(), atomics::CasError>) -> String {
    match r {
        Ok(()) => "ok:swapped".into(),
        Err(atomics::CasError::CasFailed(_)) => "err:cas-failed".into(),
        Err(atomics::CasError::StoreError(e)) => err(&e),
    }
}

/// Swaps, expecting a conflict; then retries once with the fresh handle.
fn swap_retry(cas: atomics::Cas, value: &[u8], retry: &[u8]) -> Result<String, String> {
    match atomics::swap(cas, value) {
        Ok(()) => Ok("first=swapped".into()),
        Err(atomics::CasError::StoreError(e)) => Err(err(&e)),
        Err(atomics::CasError::CasFailed(fresh)) => {
            let seen = text(kv(fresh.current())?);
            let again = swap_out(atomics::swap(fresh, retry));
            Ok(format!("first=cas-failed fresh={seen} retry={again}"))
        }
    }
}

/// A→B→A between `new` and `swap` must fail: the key was written.
fn cas_aba(b: &store::Bucket, key: &str) -> Result<String, String> {
    kv(b.set(key, b"A"))?;
    let cas = kv(atomics::Cas::new(b, key))?;
    check(kv(cas.current())? == Some(b"A".to_vec()), "current is A")?;
    kv(b.set(key, b"B"))?;
    kv(b.set(key, b"A"))?;
    let r = swap_retry(cas, b"C", b"D")?;
    Ok(format!("ok:{r} now={}", text(kv(b.get(key))?)))
}

/// A swap on an absent key only inserts: a concurrent insert makes it fail.
fn cas_insert(b: &store::Bucket, key: &str) -> Result<String, String> {
    let cas = kv(atomics::Cas::new(b, key))?;
    check(
        kv(cas.current())?.is_none(),
        "current of a missing key is none",
    )?;
    kv(b.set(key, b"other"))?;
    let r = swap_retry(cas, b"mine", b"mine2")?;
    Ok(format!("ok:{r} now={}", text(kv(b.get(key))?)))
}

/// `n` increments of the decimal counter at `key`, each a compare-and-swap retried with
/// the fresh handle until it succeeds; answers `ok:swapped=N conflicts=C`.
fn cas_count(b: &store::Bucket, key: &str, n: u64) -> Result<String, String> {
    let (mut swapped, mut conflicts) = (0u64, 0u64);
    let mut cas = kv(atomics::Cas::new(b, key))?;
    while swapped < n {
        let current = match kv(cas.current())? {
            None => 0,
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("the counter is not a decimal number")?,
        };
        match atomics::swap(cas, (current + 1).to_string().as_bytes()) {
            Ok(()) => {
                swapped += 1;
                cas = kv(atomics::Cas::new(b, key))?;
            }
            Err(atomics::CasError::CasFailed(fresh)) => {
                conflicts += 1;
                cas = fresh;
            }
            Err(atomics::CasError::StoreError(e)) => return Err(err(&e)),
        }
    }
    Ok(format!("ok:swapped={swapped} conflicts={conflicts}"))
}

/// First instance of the race: takes a CAS handle, says `ready`, waits for `go` (written
/// by the other instance after an A→B→A change), then swaps.
fn cas_wait(b: &store::Bucket, key: &str, value: &str) -> Result<String, String> {
    let cas = kv(atomics::Cas::new(b, key))?;
    let seen = text(kv(cas.current())?);
    kv(b.set("ready", b"1"))?;
    // Bounded by the plugin's time limit.
    while kv(b.get("go"))?.is_none() {}
    let r = swap_retry(cas, value.as_bytes(), value.as_bytes())?;
    Ok(format!("ok:seen={seen} {r} now={}", text(kv(b.get(key))?)))
}

/// Second instance: waits for `ready`, changes the key A→B→A, says `go`.
fn aba(b: &store::Bucket, key: &str) -> Result<String, String> {
    while kv(b.get("ready"))?.is_none() {}
    let old = kv(b.get(key))?.unwrap_or_default();
    kv(b.set(key, b"B"))?;
    kv(b.set(key, &old))?;
    kv(b.set("go", b"1"))?;
    Ok("ok:aba".into())
}

impl Guest for Component {
    fn run(args: Vec<String>) -> Result<String, String> {
        let mode = arg(&args, 0)?;
        let bucket = store::open(arg(&args, 1)?);
        if mode == "open" {
            return Ok(out(bucket, |_| "opened".into()));
        }
        let b = match bucket {
            Ok(b) => b,
            Err(e) => return Ok(err(&e)),
        };
        Ok(match mode {
            "basics" => basics(&b)?,
            "fill" => {
                let n: usize = arg(&args, 2)?.parse().map_err(|_| "bad count")?;
                let entries: Vec<(String, Vec<u8>)> = (0..n)
                    .map(|i| (format!("k{i:06}"), i.to_string().into_bytes()))
                    .collect();
                out(batch::set_many(&b, &entries), |()| format!("filled {n}"))
            }
            "list" => list(&b)?,
            "set" => out(b.set(arg(&args, 2)?, arg(&args, 3)?.as_bytes()), |()| {
                "set".into()
            }),
            "set-size" => {
                let n: usize = arg(&args, 3)?.parse().map_err(|_| "bad size")?;
                out(b.set(arg(&args, 2)?, &vec![b'x'; n]), |()| "set".into())
            }
            "get" => out(b.get(arg(&args, 2)?), text),
            "incr" => {
                let d: i64 = arg(&args, 3)?.parse().map_err(|_| "bad delta")?;
                out(atomics::increment(&b, arg(&args, 2)?, d), |v| v.to_string())
            }
            "batch" => batch_mode(&b)?,
            "cas" => {
                let cas = kv(atomics::Cas::new(&b, arg(&args, 2)?))?;
                swap_out(atomics::swap(cas, arg(&args, 3)?.as_bytes()))
            }
            "cas-aba" => cas_aba(&b, arg(&args, 2)?)?,
            "cas-insert" => cas_insert(&b, arg(&args, 2)?)?,
            "cas-wait" => cas_wait(&b, arg(&args, 2)?, arg(&args, 3)?)?,
            "aba" => aba(&b, arg(&args, 2)?)?,
            "cas-count" => {
                let n: u64 = arg(&args, 3)?.parse().map_err(|_| "bad count")?;
                cas_count(&b, arg(&args, 2)?, n)?
            }
            other => return Err(format!("unknown mode {other}")),
        })
    }
}

export!(Component);
