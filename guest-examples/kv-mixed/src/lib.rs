//! Test fixture: one component importing `sciqlop:cache` and both `wasi:keyvalue` drafts,
//! checking that a bucket and the store of the same name are the same data: values,
//! counters (one encoding), key listings and compare-and-swap versions.
//!
//! `run(["mix", STORE])` answers `ok:mixed` or the first failed check.

wit_bindgen::generate!({
    inline: r#"
        package sciqlop:kv-mixed-guest;
        world guest {
            import sciqlop:cache/cache@0.1.0;
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            export run: func(args: list<string>) -> result<string, string>;
        }
    "#,
    path: "../../wit",
    world: "sciqlop:kv-mixed-guest/guest",
    generate_all,
});

use sciqlop::cache::cache;
use sciqlop::cache::types::Error as CacheError;
use wasi::keyvalue0_2_0_draft as d1;
use wasi::keyvalue0_2_0_draft2 as d2;

struct Component;

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn c<T>(r: Result<T, CacheError>) -> Result<T, String> {
    r.map_err(|e| format!("sciqlop:cache error: {e:?}"))
}

fn k2<T>(r: Result<T, d2::store::Error>) -> Result<T, String> {
    r.map_err(|e| format!("draft2 error: {e:?}"))
}

fn k1<T>(r: Result<T, d1::store::Error>) -> Result<T, String> {
    r.map_err(|e| format!("draft error: {e:?}"))
}

fn mix(name: &str) -> Result<String, String> {
    let store = c(cache::open(name))?;
    let b2 = k2(d2::store::open(name))?;
    let b1 = k1(d1::store::open(name))?;

    // Values written on one side are read on the others.
    k2(b2.set("a", b"from-kv"))?;
    check(
        c(store.get("a"))? == Some(b"from-kv".to_vec()),
        "cache sees kv set",
    )?;
    c(store.set("b", b"from-cache", None))?;
    check(
        k2(b2.get("b"))? == Some(b"from-cache".to_vec()),
        "kv sees cache set",
    )?;
    check(
        k1(b1.get("b"))? == Some(b"from-cache".to_vec()),
        "draft sees cache set",
    )?;

    // One counter encoding: incr, both increments, and get agree.
    check(c(store.incr("n", 5, 0))? == 5, "incr")?;
    check(
        k2(d2::atomics::increment(&b2, "n", 2))? == 7,
        "draft2 increment",
    )?;
    check(
        k1(d1::atomics::increment(&b1, "n", 1))? == 8,
        "draft increment",
    )?;
    check(
        c(store.get("n"))? == Some(b"8".to_vec()),
        "get after increment is decimal",
    )?;
    check(c(store.incr("n", -3, 0))? == 5, "incr after increment")?;

    // Not a counter: an error on every side, never a trap.
    k2(b2.set("bad", b"\x00\x00\x00\x00\x00\x00\x00\x01"))?;
    let e = d2::atomics::increment(&b2, "bad", 1);
    check(
        matches!(&e, Err(d2::store::Error::Other(m)) if m.starts_with("not-a-counter")),
        "draft2 increment of a non-counter is an error",
    )?;
    check(
        matches!(store.incr("bad", 1, 0), Err(CacheError::NotACounter)),
        "incr of a non-counter is not-a-counter",
    )?;

    // Listings see both sides' keys.
    let page = k2(b2.list_keys(None))?;
    check(
        page.keys == ["a", "b", "bad", "n"],
        "draft2 list-keys sees all keys",
    )?;
    let page = k1(b1.list_keys(None))?;
    check(
        page.keys == ["a", "b", "bad", "n"],
        "draft list-keys sees all keys",
    )?;

    // A→B→A through sciqlop:cache between cas `new` and `swap` fails the swap.
    c(store.set("v", b"A", None))?;
    let cas = k2(d2::atomics::Cas::new(&b2, "v"))?;
    c(store.set("v", b"B", None))?;
    c(store.set("v", b"A", None))?;
    match d2::atomics::swap(cas, b"C") {
        Err(d2::atomics::CasError::CasFailed(fresh)) => {
            check(
                k2(fresh.current())? == Some(b"A".to_vec()),
                "fresh handle sees A",
            )?;
            // A transaction of sciqlop:cache is a write too.
            let tx = c(store.begin())?;
            c(tx.set("v", b"A".to_vec().as_slice(), None))?;
            c(tx.commit())?;
            check(
                matches!(
                    d2::atomics::swap(fresh, b"C"),
                    Err(d2::atomics::CasError::CasFailed(_))
                ),
                "swap after a committed transaction fails",
            )?;
        }
        other => return Err(format!("swap after A-B-A via cache: {other:?}")),
    }
    let cas = k2(d2::atomics::Cas::new(&b2, "v"))?;
    k2(d2::atomics::swap(cas, b"C").map_err(|_| d2::store::Error::Other("swap".into())))?;
    check(
        c(store.get("v"))? == Some(b"C".to_vec()),
        "cache sees the swap",
    )?;

    // Deletes on one side are seen by the other.
    k1(b1.delete("a"))?;
    check(!c(store.contains("a"))?, "cache sees draft delete")?;
    Ok("ok:mixed".into())
}

impl Guest for Component {
    fn run(args: Vec<String>) -> Result<String, String> {
        match args.first().map(String::as_str) {
            Some("mix") => mix(args.get(1).map_or("mixed", String::as_str)),
            _ => Err("usage: mix STORE".into()),
        }
    }
}

export!(Component);
