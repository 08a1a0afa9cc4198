//! Test fixture: a component written against `wasi:keyvalue@0.2.0-draft` only (what
//! wasmtime's `wasmtime-wasi-keyvalue` and wasmCloud serve), exercising every function.
//!
//! `run(args)` answers `ok:...` or `err:<variant>[:message]`. Modes:
//! `open B`, `basics B`, `fill B N`, `list B`, `set B K V`, `set-size B K N`, `get B K`,
//! `incr B K DELTA`, `batch B`.

wit_bindgen::generate!({
    inline: r#"
        package sciqlop:kv-draft-guest;
        world guest {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
            export run: func(args: list<string>) -> result<string, string>;
        }
    "#,
    path: "../../wit",
    world: "sciqlop:kv-draft-guest/guest",
    generate_all,
});

use wasi::keyvalue0_2_0_draft::{atomics, batch, store};

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
        let page = kv(b.list_keys(cursor))?;
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
                let d: u64 = arg(&args, 3)?.parse().map_err(|_| "bad delta")?;
                out(atomics::increment(&b, arg(&args, 2)?, d), |v| v.to_string())
            }
            "batch" => batch_mode(&b)?,
            other => return Err(format!("unknown mode {other}")),
        })
    }
}

export!(Component);
