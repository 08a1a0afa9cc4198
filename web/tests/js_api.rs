//! The JS-facing `WebCache` API, called through its wasm-bindgen signatures (JS values in,
//! JS values out) on the in-memory VFS, under node.
#![cfg(all(target_family = "wasm", target_os = "unknown"))]

use js_sys::{Array, Object, Reflect, Uint8Array};
use sciqlop_cache_web::{WebCache, bench_set_get};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

/// `{ key: value, ... }` as a JS object.
fn obj(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v).expect("set field");
    }
    o
}

fn field(o: &Object, k: &str) -> f64 {
    Reflect::get(o, &JsValue::from_str(k))
        .expect("get field")
        .as_f64()
        .expect("number")
}

async fn open(name: &str, options: Option<Object>) -> WebCache {
    WebCache::open(name.to_owned(), options)
        .await
        .unwrap_or_else(|_| panic!("open {name}"))
}

#[wasm_bindgen_test]
async fn strings_and_bytes_round_trip() {
    let c = open("js-rt", None).await;
    assert!(!c.persistent());
    assert_eq!(c.name(), "js-rt");
    c.set("s", JsValue::from_str("héllo"), None)
        .expect("set string");
    assert_eq!(c.get_string("s").expect("get").as_deref(), Some("héllo"));
    let bytes = Uint8Array::from(&[0u8, 159, 146, 150][..]);
    c.set("b", bytes.clone().into(), None).expect("set bytes");
    let got = c.get("b").expect("get").expect("present");
    assert_eq!(got.to_vec(), vec![0u8, 159, 146, 150]);
    assert!(c.get_string("b").is_err(), "not UTF-8");
    c.set("ab", bytes.buffer().into(), None)
        .expect("set ArrayBuffer");
    assert_eq!(
        c.get("ab").expect("get").expect("present").to_vec().len(),
        4
    );
    assert!(c.set("bad", JsValue::from_f64(1.0), None).is_err());
    assert!(c.get("missing").expect("get").is_none());
    assert!(c.delete("s").expect("delete"));
    assert!(!c.delete("s").expect("delete"));
    assert!(!c.contains("s").expect("contains"));
    assert_eq!(c.len().expect("len"), 2.0);
    assert!(!c.is_empty().expect("is_empty"));
}

#[wasm_bindgen_test]
async fn set_options_expiry_and_tags() {
    let c = open("js-opts", None).await;
    let tagged = obj(&[("tag", "t".into())]);
    c.set("a", "1".into(), Some(tagged.clone())).expect("set");
    c.set("b", "2".into(), Some(tagged)).expect("set");
    c.set(
        "long",
        "3".into(),
        Some(obj(&[
            ("expireMs", 3_600_000.0.into()),
            ("tag", "u".into()),
        ])),
    )
    .expect("set");
    c.set("gone", "4".into(), Some(obj(&[("expireMs", 0.0.into())])))
        .expect("set");
    assert!(
        c.get("gone").expect("get").is_none(),
        "expireMs 0 expires at once"
    );
    assert!(c.contains("long").expect("contains"));
    assert!(
        c.set("x", "1".into(), Some(obj(&[("expireMs", (-1.0).into())])))
            .is_err()
    );
    // Finite but past what an expiry can hold: an error, not a panic.
    assert!(
        c.set("x", "1".into(), Some(obj(&[("expireMs", 1e300.into())])))
            .is_err()
    );
    assert!(
        c.set("x", "1".into(), Some(obj(&[("tag", 5.0.into())])))
            .is_err()
    );
    assert_eq!(c.evict_tag("t").expect("evict"), 2.0);
    assert_eq!(c.evict_tag("t").expect("evict"), 0.0);
    let keys: Vec<String> = c
        .keys(None)
        .expect("keys")
        .iter()
        .map(|k| k.as_string().expect("string"))
        .collect();
    assert_eq!(keys, ["long"]);
    assert_eq!(
        c.expire().expect("expire"),
        1.0,
        "the expired entry is purged"
    );
}

#[wasm_bindgen_test]
async fn counters_and_stats() {
    let c = open("js-ctr", None).await;
    assert_eq!(c.incr("n", None, None).expect("incr"), 1.0);
    assert_eq!(c.incr("n", Some(10.0), None).expect("incr"), 11.0);
    assert_eq!(c.incr("n", Some(-20.0), None).expect("incr"), -9.0);
    assert_eq!(c.incr("m", None, Some(41.0)).expect("incr"), 42.0);
    assert_eq!(c.get_string("n").expect("get").as_deref(), Some("-9"));
    assert!(c.incr("n", Some(0.5), None).is_err(), "fractional delta");
    c.set("text", "x".into(), None).expect("set");
    assert!(c.incr("text", None, None).is_err(), "not a counter");
    c.get("missing").expect("get");
    let s = c.stats().expect("stats");
    // get_string("n") was a hit, get("missing") a miss.
    assert_eq!(field(&s, "hits"), 1.0);
    assert_eq!(field(&s, "misses"), 1.0);
    assert_eq!(field(&s, "count"), 3.0);
    assert_eq!(field(&s, "size"), 2.0 + 2.0 + 1.0);
    assert_eq!(c.clear().expect("clear"), 3.0);
    assert!(c.is_empty().expect("is_empty"));
}

#[wasm_bindgen_test]
async fn max_size_bounds_the_cache() {
    let c = open("js-max", Some(obj(&[("maxSize", 5_000.0.into())]))).await;
    let v = Uint8Array::from(&[1u8; 100][..]);
    for i in 0..200 {
        c.set(&format!("k{i:03}"), v.clone().into(), None)
            .expect("set");
    }
    c.maintain().expect("maintain");
    let s = c.stats().expect("stats");
    assert!(field(&s, "size") <= 5_000.0, "size {}", field(&s, "size"));
    assert!(c.contains("k199").expect("contains"));
    let prefixed: Array = c.keys(Some("k19".into())).expect("keys");
    assert!(prefixed.length() >= 1);
    assert!(
        prefixed
            .iter()
            .all(|k| k.as_string().is_some_and(|k| k.starts_with("k19")))
    );
}

#[wasm_bindgen_test]
async fn bad_options_are_errors() {
    assert!(
        WebCache::open("js-bad".into(), Some(obj(&[("maxSize", "big".into())])))
            .await
            .is_err()
    );
    // OPFS needs a dedicated worker: under node, opening persistently fails cleanly.
    let r = WebCache::open("js-opfs".into(), Some(obj(&[("persistent", true.into())]))).await;
    assert!(r.is_err());
}

#[wasm_bindgen_test]
fn bench_reports_per_op_times() {
    let r = bench_set_get(200).expect("bench");
    assert_eq!(field(&r, "n"), 200.0);
    let set_us = Reflect::get(&r, &"setUs".into()).expect("setUs");
    assert!(set_us.as_f64().is_some_and(|f| f >= 0.0));
    assert!(r.dyn_ref::<Object>().is_some());
}
