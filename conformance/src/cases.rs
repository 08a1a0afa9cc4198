//! The API cases: one behaviour each, on a fresh store.

use std::time::{Duration, SystemTime};

use sciqlop_cache::{AnyStore, Error, SetOptions};

use crate::{Case, Check, Needs, ensure, ok};

pub(crate) static ALL: &[Case] = &[
    Case {
        name: "set_get_delete",
        needs: &[],
        run: set_get_delete,
    },
    Case {
        name: "empty_key_and_value",
        needs: &[],
        run: empty_key_and_value,
    },
    Case {
        name: "values_of_every_size",
        needs: &[],
        run: values_of_every_size,
    },
    Case {
        name: "add_only_when_absent",
        needs: &[],
        run: add_only_when_absent,
    },
    Case {
        name: "pop_and_contains",
        needs: &[],
        run: pop_and_contains,
    },
    Case {
        name: "keys_in_byte_order_with_prefix_and_pages",
        needs: &[],
        run: keys_in_order,
    },
    Case {
        name: "count_and_delete_prefix",
        needs: &[],
        run: prefixes,
    },
    Case {
        name: "len_and_clear",
        needs: &[],
        run: len_and_clear,
    },
    Case {
        name: "counters",
        needs: &[],
        run: counters,
    },
    Case {
        name: "batches",
        needs: &[],
        run: batches,
    },
    Case {
        name: "locks",
        needs: &[],
        run: locks,
    },
    Case {
        name: "expiry_is_never_returned",
        needs: &[Needs::CacheKind],
        run: expiry,
    },
    Case {
        name: "tags_evict_together",
        needs: &[Needs::CacheKind],
        run: tags,
    },
    Case {
        name: "transactions_commit_or_roll_back",
        needs: &[Needs::Transactions],
        run: transactions,
    },
    Case {
        name: "nested_transactions_are_savepoints",
        needs: &[Needs::Transactions, Needs::Savepoints],
        run: savepoints,
    },
    Case {
        name: "compare_and_swap",
        needs: &[Needs::Versions],
        run: compare_and_swap,
    },
    Case {
        name: "optimistic_transaction_of_one_key",
        needs: &[Needs::Versions],
        run: optimistic_one_key,
    },
    Case {
        name: "optimistic_transactions",
        needs: &[Needs::Versions, Needs::AtomicBatches],
        run: optimistic,
    },
    Case {
        name: "namespaces_are_independent",
        needs: &[Needs::Namespaces],
        run: namespaces,
    },
    Case {
        name: "entry_info",
        needs: &[Needs::EntryInfo, Needs::CacheKind],
        run: entry_info,
    },
    Case {
        name: "store_metadata",
        needs: &[Needs::Metadata],
        run: metadata,
    },
    Case {
        name: "model",
        needs: &[],
        run: crate::model::run,
    },
];

fn set_get_delete(s: &AnyStore) -> Check {
    ensure!(ok(s.get("k"), "get")?.is_none(), "a fresh store holds k");
    ok(s.set("k", b"v1"), "set")?;
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"v1"[..]),
        "k is not v1"
    );
    ok(s.set("k", b"v2"), "overwrite")?;
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"v2"[..]),
        "k is not v2"
    );
    let len = ok(s.get_with("k", <[u8]>::len), "get_with")?;
    ensure!(len == Some(2), "get_with saw {len:?}");
    ensure!(
        ok(s.delete("k"), "delete")?,
        "delete of a present key said false"
    );
    ensure!(
        !ok(s.delete("k"), "delete")?,
        "delete of an absent key said true"
    );
    ensure!(ok(s.get("k"), "get")?.is_none(), "k is still there");
    Ok(())
}

fn empty_key_and_value(s: &AnyStore) -> Check {
    ok(s.set("", b""), "set of the empty key")?;
    ensure!(
        ok(s.get(""), "get")? == Some(Vec::new()),
        "the empty key lost its value"
    );
    ensure!(ok(s.contains(""), "contains")?, "the empty key is absent");
    Ok(())
}

fn values_of_every_size(s: &AnyStore) -> Check {
    for len in [0usize, 1, 100, 8 * 1024 - 1, 8 * 1024, 100_000, 1 << 20] {
        let v: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let k = format!("size/{len}");
        ok(s.set(&k, &v), "set")?;
        let got = ok(s.get(&k), "get")?;
        ensure!(
            got.as_deref() == Some(&v[..]),
            "a value of {len} bytes came back different"
        );
    }
    let size = ok(s.size(), "size")?;
    let want: u64 = [0u64, 1, 100, 8191, 8192, 100_000, 1 << 20].iter().sum();
    ensure!(size == want, "size() is {size}, {want} expected");
    Ok(())
}

fn add_only_when_absent(s: &AnyStore) -> Check {
    ensure!(ok(s.add("k", b"1"), "add")?, "add to an absent key refused");
    ensure!(
        !ok(s.add("k", b"2"), "add")?,
        "add replaced a present value"
    );
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"1"[..]),
        "add changed the value"
    );
    Ok(())
}

fn pop_and_contains(s: &AnyStore) -> Check {
    ok(s.set("k", b"v"), "set")?;
    ensure!(ok(s.contains("k"), "contains")?, "contains said false");
    ensure!(
        ok(s.pop("k"), "pop")?.as_deref() == Some(&b"v"[..]),
        "pop lost the value"
    );
    ensure!(!ok(s.contains("k"), "contains")?, "pop left the key");
    ensure!(
        ok(s.pop("k"), "pop")?.is_none(),
        "a second pop found a value"
    );
    Ok(())
}

fn keys_in_order(s: &AnyStore) -> Check {
    for k in ["b/2", "a/1", "a/3", "a/2", "c", "a\u{e9}", "a/\u{10FFFF}"] {
        ok(s.set(k, b"x"), "set")?;
    }
    let all: Vec<String> = ok(s.keys().collect(), "keys")?;
    let mut sorted = all.clone();
    sorted.sort();
    ensure!(all == sorted, "keys are not in byte order: {all:?}");
    ensure!(all.len() == 7, "{} keys listed, 7 expected", all.len());
    let a: Vec<String> = ok(s.keys_with_prefix("a/").collect(), "keys_with_prefix")?;
    ensure!(
        a == ["a/1", "a/2", "a/3", "a/\u{10FFFF}"],
        "a/ prefix gave {a:?}"
    );
    let p1 = ok(s.keys_page("a/", None, 2), "keys_page")?;
    let p2 = ok(
        s.keys_page("a/", p1.last().map(String::as_str), 2),
        "keys_page",
    )?;
    ensure!(
        p1 == ["a/1", "a/2"] && p2 == ["a/3", "a/\u{10FFFF}"],
        "pages {p1:?} {p2:?}"
    );
    ensure!(
        ok(s.keys_page("", None, 0), "keys_page")?.is_empty(),
        "a page of 0 keys was not empty"
    );
    Ok(())
}

fn prefixes(s: &AnyStore) -> Check {
    for k in ["p/1", "p/2", "p/3", "q/1", "p"] {
        ok(s.set(k, b"x"), "set")?;
    }
    ensure!(
        ok(s.count_prefix("p/"), "count_prefix")? == 3,
        "count_prefix(p/) is not 3"
    );
    ensure!(
        ok(s.count_prefix(""), "count_prefix")? == 5,
        "count_prefix(\"\") is not 5"
    );
    ensure!(
        ok(s.delete_prefix("p/"), "delete_prefix")? == 3,
        "delete_prefix(p/) is not 3"
    );
    ensure!(ok(s.len(), "len")? == 2, "len after delete_prefix is not 2");
    ensure!(
        ok(s.contains("p"), "contains")?,
        "delete_prefix(p/) removed p"
    );
    Ok(())
}

fn len_and_clear(s: &AnyStore) -> Check {
    for i in 0..20 {
        ok(s.set(&format!("k{i}"), b"x"), "set")?;
    }
    ensure!(ok(s.len(), "len")? == 20, "len is not 20");
    ensure!(ok(s.clear(), "clear")? == 20, "clear did not report 20");
    ensure!(
        ok(s.len(), "len")? == 0 && ok(s.is_empty(), "is_empty")?,
        "clear left entries"
    );
    Ok(())
}

fn counters(s: &AnyStore) -> Check {
    ensure!(
        ok(s.incr("c", 5, 10), "incr")? == 15,
        "incr of an absent key is not default + delta"
    );
    ensure!(ok(s.decr("c", 20, 0), "decr")? == -5, "decr is wrong");
    ensure!(
        ok(s.get("c"), "get")?.as_deref() == Some(&b"-5"[..]),
        "a counter does not read as ASCII decimal"
    );
    ok(s.set("n", b"41"), "set")?;
    ensure!(
        ok(s.incr("n", 1, 0), "incr")? == 42,
        "an ASCII decimal set is not a counter"
    );
    ok(s.set("t", b"text"), "set")?;
    ensure!(
        matches!(s.incr("t", 1, 0), Err(Error::NotACounter { .. })),
        "incr on text is not NotACounter"
    );
    ensure!(
        ok(s.get("t"), "get")?.as_deref() == Some(&b"text"[..]),
        "a failed incr changed the value"
    );
    ok(s.set("max", i64::MAX.to_string()), "set")?;
    ensure!(
        matches!(s.incr("max", 1, 0), Err(Error::CounterOverflow { .. })),
        "overflow is not CounterOverflow"
    );
    ok(s.set("m1", b"-1"), "set")?;
    ensure!(
        ok(s.decr("m1", i64::MIN, 0), "decr by i64::MIN")? == i64::MAX,
        "decr(-1, i64::MIN) is not i64::MAX"
    );
    ensure!(
        ok(s.get_counter("c"), "get_counter")? == Some(-5),
        "get_counter is wrong"
    );
    Ok(())
}

fn batches(s: &AnyStore) -> Check {
    let entries: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("b{i:02}"), vec![i as u8; 1 + i * 300]))
        .collect();
    ok(
        s.set_many(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))),
        "set_many",
    )?;
    let keys: Vec<&str> = entries
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(["missing"])
        .collect();
    let got = ok(s.get_many(&keys), "get_many")?;
    ensure!(
        got.len() == 51,
        "get_many returned {} values for 51 keys",
        got.len()
    );
    for (i, (_, v)) in entries.iter().enumerate() {
        ensure!(
            got[i].as_deref() == Some(&v[..]),
            "get_many value {i} is wrong"
        );
    }
    ensure!(got[50].is_none(), "get_many found a missing key");
    Ok(())
}

fn locks(s: &AnyStore) -> Check {
    let g = ok(s.try_lock("l", Duration::from_secs(60)), "try_lock")?;
    ensure!(g.is_some(), "a free lock was not taken");
    let again = ok(s.try_lock("l", Duration::from_secs(60)), "try_lock")?;
    ensure!(again.is_none(), "a held lock was taken twice");
    drop(again);
    if let Some(g) = g {
        ok(g.release(), "release")?;
    }
    let g = ok(s.try_lock("l", Duration::from_secs(60)), "try_lock")?;
    ensure!(g.is_some(), "a released lock could not be taken");
    let long = "x".repeat(5000);
    ensure!(
        s.try_lock(&long, Duration::from_secs(1)).is_err(),
        "a 5000-byte lock name was accepted"
    );
    Ok(())
}

fn expiry(s: &AnyStore) -> Check {
    // Portable (browsers have no `SystemTime::now`): a moment surely past.
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    let later = SetOptions::new().expire(Duration::from_secs(3600));
    ok(
        s.set_with("gone", b"x", &SetOptions::new().expire_at(past)),
        "set_with",
    )?;
    ok(s.set_with("here", b"x", &later), "set_with")?;
    ensure!(
        ok(s.get("gone"), "get")?.is_none(),
        "an expired value was returned"
    );
    ensure!(
        !ok(s.contains("gone"), "contains")?,
        "an expired key is contained"
    );
    ensure!(ok(s.len(), "len")? == 1, "len counts an expired entry");
    let keys: Vec<String> = ok(s.keys().collect(), "keys")?;
    ensure!(keys == ["here"], "keys lists an expired entry: {keys:?}");
    ensure!(
        ok(s.add("gone", b"new"), "add")?,
        "add refused over an expired entry"
    );
    ensure!(
        !ok(s.touch("missing", None), "touch")?,
        "touch of an absent key said true"
    );
    ensure!(
        ok(s.touch("here", None), "touch")?,
        "touch of a live key said false"
    );
    ok(s.expire(), "expire")?;
    Ok(())
}

fn tags(s: &AnyStore) -> Check {
    let t = SetOptions::new().tag("t");
    for k in ["a", "b", "c"] {
        ok(s.set_with(k, b"x", &t), "set_with")?;
    }
    ok(s.set("d", b"x"), "set")?;
    ensure!(
        ok(s.evict_tag("t"), "evict_tag")? == 3,
        "evict_tag did not remove 3"
    );
    ensure!(
        ok(s.len(), "len")? == 1,
        "evict_tag removed an untagged entry"
    );
    Ok(())
}

fn transactions(s: &AnyStore) -> Check {
    // Only the key the transaction was opened on: a fanout's transaction covers one
    // shard, and which keys share it is the engine's business.
    ok(
        s.transact_on("a", |tx| {
            tx.set("a", b"0")?;
            ensure_tx(tx.get("a")?.as_deref() == Some(&b"0"[..]))?;
            tx.set("a", b"1")
        }),
        "transact",
    )?;
    ensure!(
        ok(s.get("a"), "get")?.as_deref() == Some(&b"1"[..]),
        "a committed write is missing"
    );
    let r: Result<(), Error> = s.transact_on("a", |tx| {
        tx.set("a", b"2")?;
        Err(Error::InvalidArgument("roll back".into()))
    });
    ensure!(r.is_err(), "a failing transaction reported success");
    ensure!(
        ok(s.get("a"), "get")?.as_deref() == Some(&b"1"[..]),
        "a rolled-back write is visible"
    );
    let tx = ok(s.begin_on("a"), "begin")?;
    ok(s.set("a", b"3"), "set")?;
    tx.rollback();
    ensure!(
        ok(s.get("a"), "get")?.as_deref() == Some(&b"1"[..]),
        "a rolled-back caller-owned transaction is visible"
    );
    Ok(())
}

fn savepoints(s: &AnyStore) -> Check {
    ok(
        s.transact_on("k", |tx| {
            tx.set("k", b"outer")?;
            let inner: Result<(), Error> = tx.transact_on("k", |t| {
                t.set("k", b"inner")?;
                Err(Error::InvalidArgument("roll back the inner part".into()))
            });
            assert!(inner.is_err());
            Ok::<_, Error>(())
        }),
        "transact",
    )?;
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"outer"[..]),
        "the inner rollback undid the outer write or kept its own"
    );
    Ok(())
}

fn compare_and_swap(s: &AnyStore) -> Check {
    ensure!(
        ok(s.compare_and_swap("k", None, Some(b"a")), "cas")?,
        "cas on an absent key refused"
    );
    ensure!(
        !ok(s.compare_and_swap("k", None, Some(b"b")), "cas")?,
        "cas expecting absence replaced a value"
    );
    let (_, v1) = ok(s.get_versioned("k"), "get_versioned")?.ok_or("k is absent")?;
    ok(s.set("k", b"b"), "set")?;
    ok(s.set("k", b"a"), "set")?;
    let (bytes, v2) = ok(s.get_versioned("k"), "get_versioned")?.ok_or("k is absent")?;
    ensure!(
        bytes == b"a" && v1 != v2,
        "rewriting the same bytes kept the version (A-B-A)"
    );
    ensure!(
        !ok(s.compare_and_swap("k", Some(v1), Some(b"c")), "cas")?,
        "cas with a stale version succeeded"
    );
    ok(
        s.touch("k", None).or_else(|e| match e {
            Error::Unsupported(_) => Ok(false),
            e => Err(e),
        }),
        "touch",
    )?;
    let (_, v3) = ok(s.get_versioned("k"), "get_versioned")?.ok_or("k is absent")?;
    ensure!(v3 == v2, "a touch or a read changed the version");
    ensure!(
        ok(s.compare_and_swap("k", Some(v2), None), "cas delete")?,
        "cas delete with the current version refused"
    );
    ensure!(ok(s.get("k"), "get")?.is_none(), "cas delete left the key");
    Ok(())
}

fn optimistic_one_key(s: &AnyStore) -> Check {
    ok(s.set("n", b"1"), "set")?;
    let mut tx = s.optimistic();
    ensure!(
        ok(tx.incr("n", 1, 0), "optimistic incr")? == 2,
        "optimistic incr is wrong"
    );
    ok(tx.commit(), "commit")?;
    ensure!(
        ok(s.get_counter("n"), "get_counter")? == Some(2),
        "the commit lost its write"
    );
    let mut tx = s.optimistic();
    ok(tx.incr("n", 1, 0), "optimistic incr")?;
    ok(s.incr("n", 10, 0), "incr")?;
    ensure!(
        matches!(tx.commit(), Err(Error::Conflict)),
        "a concurrent write did not conflict"
    );
    ensure!(
        ok(s.get_counter("n"), "get_counter")? == Some(12),
        "a conflicting commit wrote"
    );
    Ok(())
}

fn optimistic(s: &AnyStore) -> Check {
    ok(s.set("stock", b"3"), "set")?;
    let mut tx = s.optimistic();
    let n = ok(tx.incr("stock", -1, 0), "optimistic incr")?;
    ensure!(n == 2, "optimistic incr saw {n}");
    ok(tx.set("order", b"1"), "optimistic set")?;
    ensure!(
        ok(tx.get("order"), "optimistic get")?.as_deref() == Some(&b"1"[..]),
        "an optimistic transaction does not see its own write"
    );
    ensure!(
        ok(s.get("order"), "get")?.is_none(),
        "an optimistic write is visible before commit"
    );
    ok(tx.commit(), "commit")?;
    ensure!(
        ok(s.get("stock"), "get")?.as_deref() == Some(&b"2"[..]),
        "the optimistic commit lost a write"
    );
    let mut tx = s.optimistic();
    ok(tx.get("stock"), "optimistic get")?;
    ok(tx.set("order", b"2"), "optimistic set")?;
    ok(s.set("stock", b"0"), "set")?;
    ensure!(
        matches!(tx.commit(), Err(Error::Conflict)),
        "a changed read did not conflict"
    );
    ensure!(
        ok(s.get("order"), "get")?.as_deref() == Some(&b"1"[..]),
        "a conflicting commit wrote something"
    );
    let mut tx = s.optimistic();
    ensure!(
        ok(tx.get("absent"), "optimistic get")?.is_none(),
        "absent key found"
    );
    ok(tx.set("absent", b"x"), "optimistic set")?;
    ok(s.set("absent", b"y"), "set")?;
    ensure!(
        matches!(tx.commit(), Err(Error::Conflict)),
        "a key that appeared did not conflict"
    );
    Ok(())
}

fn namespaces(s: &AnyStore) -> Check {
    let a = ok(s.namespace("conformance-a"), "namespace")?;
    let b = ok(s.namespace("conformance-b"), "namespace")?;
    ok(a.clear(), "clear")?;
    ok(b.clear(), "clear")?;
    ok(s.set("k", b"default"), "set")?;
    ok(a.set("k", b"a"), "set")?;
    ok(a.set("k2", vec![7u8; 100_000]), "set")?;
    ok(b.set("k", b"b"), "set")?;
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"default"[..]),
        "namespaces share a key"
    );
    ensure!(
        ok(a.get("k"), "get")?.as_deref() == Some(&b"a"[..]),
        "namespace a lost its key"
    );
    ensure!(
        ok(a.len(), "len")? == 2 && ok(b.len(), "len")? == 1 && ok(s.len(), "len")? == 1,
        "counts are not per namespace"
    );
    ensure!(
        ok(a.size(), "size")? == 100_001,
        "size is not per namespace"
    );
    let keys: Vec<String> = ok(a.keys().collect(), "keys")?;
    ensure!(keys == ["k", "k2"], "keys are not per namespace: {keys:?}");
    ensure!(
        ok(a.clear(), "clear")? == 2,
        "clear of a namespace did not remove 2"
    );
    ensure!(
        ok(b.get("k"), "get")?.as_deref() == Some(&b"b"[..]),
        "clear of one namespace touched another"
    );
    ensure!(
        ok(s.get("k"), "get")?.as_deref() == Some(&b"default"[..]),
        "clear of a namespace touched the default one"
    );
    let names = ok(s.namespaces(), "namespaces")?;
    ensure!(
        names.iter().any(|n| n == "conformance-a"),
        "namespaces() does not list conformance-a: {names:?}"
    );
    ok(b.clear(), "clear")?;
    Ok(())
}

fn entry_info(s: &AnyStore) -> Check {
    let opts = SetOptions::new().expire(Duration::from_secs(600)).tag("t");
    ok(s.set_with("small", b"abc", &opts), "set_with")?;
    ok(s.set_with("big", vec![1u8; 100_000], &opts), "set_with")?;
    let (v, info) = ok(s.get_entry("small"), "get_entry")?.ok_or("small is absent")?;
    ensure!(
        v == b"abc" && info.size == 3 && info.tag.as_deref() == Some("t"),
        "get_entry: {info:?}"
    );
    // Measured against a second entry expiring 600 s later (portable: browsers have
    // no `SystemTime::now`).
    let later = SetOptions::new().expire(Duration::from_secs(1200));
    ok(s.set_with("later", b"x", &later), "set_with")?;
    let later = ok(s.entry_info("later"), "entry_info")?.ok_or("later is absent")?;
    let gap = later
        .expire
        .zip(info.expire)
        .and_then(|(l, e)| l.duration_since(e).ok())
        .ok_or("no expiry")?;
    ensure!(
        // 600 s plus the time between the two sets.
        gap >= Duration::from_secs(600) && gap < Duration::from_secs(610),
        "expiries set 600 s apart are {gap:?} apart"
    );
    let i = ok(s.entry_info("big"), "entry_info")?.ok_or("big is absent")?;
    ensure!(i.size == 100_000, "entry_info size is {}", i.size);
    let (v, i) = ok(s.pop_entry("small"), "pop_entry")?.ok_or("small is absent")?;
    ensure!(
        v == b"abc" && i.tag.as_deref() == Some("t"),
        "pop_entry: {i:?}"
    );
    Ok(())
}

fn metadata(s: &AnyStore) -> Check {
    ok(s.set_metadata("conformance", Some("1")), "set_metadata")?;
    ensure!(
        ok(s.metadata("conformance"), "metadata")?.as_deref() == Some("1"),
        "metadata lost"
    );
    ensure!(ok(s.len(), "len")? == 0, "metadata counts as an entry");
    ok(s.set_metadata("conformance", None), "set_metadata")?;
    ensure!(
        ok(s.metadata("conformance"), "metadata")?.is_none(),
        "metadata not removed"
    );
    Ok(())
}

/// Inside a transaction: fails it (rolling it back) unless `cond` holds.
fn ensure_tx(cond: bool) -> Result<(), Error> {
    if cond {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "a transaction does not read its own write".into(),
        ))
    }
}
