//! A plugin's stores are namespaces of its cache; directories written by earlier hosts
//! (store `s`'s key `k` kept as `s/k`) are converted when the scope opens.

use std::time::{Duration, SystemTime};

use sciqlop_cache::{Cache, SetOptions};
use sciqlop_cache_host::{LAYOUT_META, PluginPolicy, PluginScope, plugin_dir};

/// A plugin directory as an earlier host left it.
fn old_layout(root: &std::path::Path, plugin: &str) -> SystemTime {
    let dir = plugin_dir(root, plugin).expect("dir");
    let c = Cache::open(&dir).expect("open");
    c.set("s/k", b"v").expect("set");
    c.set("s/counter", b"41").expect("set");
    let day = Duration::from_secs(86_400);
    c.set_with(
        "s/t",
        b"tagged",
        &SetOptions::new().tag("s/grp").expire(day),
    )
    .expect("set");
    c.set_with(
        "s/gone",
        b"x",
        &SetOptions::new().expire(Duration::from_millis(1)),
    )
    .expect("set");
    c.set("default/x", b"dx").expect("set");
    // Moved to the default store as `a/b`, and not further into a store `a`.
    c.set("default/a/b", b"dab").expect("set");
    c.set("a/other", b"in a").expect("set");
    // Written by another program at the top level: left where it is.
    c.set("plain", b"p").expect("set");
    c.set("big/v", vec![7u8; 100_000]).expect("set"); // a value file
    std::thread::sleep(Duration::from_millis(5));
    c.entry_info("s/t")
        .expect("info")
        .expect("live")
        .expire
        .expect("expiry")
}

#[test]
fn a_directory_of_an_earlier_host_is_converted_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let expire = old_layout(root.path(), "p");
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("open");
    let s = scope.store("s").expect("store");
    assert_eq!(s.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(s.incr("counter", 1, 0).expect("incr"), 42);
    let info = s.entry_info("t").expect("info").expect("live");
    assert_eq!(
        info.tag.as_deref(),
        Some("grp"),
        "tags lose the store prefix"
    );
    assert_eq!(info.expire, Some(expire), "expiry kept");
    assert_eq!(
        s.get("gone").expect("get"),
        None,
        "expired entries are not brought back"
    );
    assert_eq!(s.len().expect("len"), 3);
    assert_eq!(s.evict_tag("grp").expect("evict"), 1);

    let default = scope.cache();
    assert_eq!(default.get("x").expect("get").as_deref(), Some(&b"dx"[..]));
    assert_eq!(
        default.get("a/b").expect("get").as_deref(),
        Some(&b"dab"[..])
    );
    assert_eq!(
        default.get("plain").expect("get").as_deref(),
        Some(&b"p"[..])
    );
    assert_eq!(default.len().expect("len"), 3);
    let a = scope.store("a").expect("store");
    assert_eq!(
        a.keys_page("", None, 10).expect("keys"),
        vec!["other".to_owned()]
    );
    assert_eq!(
        scope.store("big").expect("store").get("v").expect("get"),
        Some(vec![7u8; 100_000])
    );
    assert_eq!(
        default.metadata(LAYOUT_META).expect("meta").as_deref(),
        Some("namespaces")
    );
    drop((s, a));
    drop(scope);

    // Reopening converts nothing again: a key that looks prefixed now stays.
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("reopen");
    scope.cache().set("q/r", b"new").expect("set");
    drop(scope);
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("reopen");
    assert_eq!(
        scope.cache().get("q/r").expect("get").as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(scope.store("q").expect("store").len().expect("len"), 0);
}

#[test]
fn stores_are_independent_namespaces() {
    let root = tempfile::tempdir().expect("tempdir");
    let scope = PluginScope::open(root.path(), "p", PluginPolicy::default()).expect("open");
    let (a, b) = (scope.store("a").expect("a"), scope.store("b").expect("b"));
    a.set("k", b"in a").expect("set");
    b.set("k", b"in b").expect("set");
    b.set("k2", b"in b").expect("set");
    assert_eq!((a.len().expect("len"), b.len().expect("len")), (1, 2));
    assert_eq!(b.clear().expect("clear"), 2);
    assert_eq!(a.get("k").expect("get").as_deref(), Some(&b"in a"[..]));
    assert_eq!(
        scope.cache().len().expect("len"),
        0,
        "the default store is a third one"
    );
    assert!(scope.store("../x").is_err(), "store names are checked");
}
