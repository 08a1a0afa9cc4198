//! FanoutCache / FanoutIndex behaviour.

use std::time::Duration;

use sciqlop_cache::fanout::shard_of;
use sciqlop_cache::{Error, FanoutCache, FanoutIndex, SetOptions};

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn routing_is_stable() {
    // Part of the on-disk format: these values must never change. xxh3-64 of "" is the
    // published test vector 0x2d06800538d394c2.
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    let got: Vec<u32> = ["", "a", "key", "sensor/temp", "ünïcode"]
        .iter()
        .map(|k| shard_of(k, 8))
        .collect();
    assert_eq!(got, [2, 7, 3, 3, 7]);
    assert_eq!(shard_of("anything", 1), 0);
}

#[test]
fn every_operation_routes_and_aggregates() -> R {
    let dir = tempfile::tempdir()?;
    let cache = FanoutCache::builder()
        .shards(4)
        .file_threshold(64)
        .open(dir.path())?;
    assert_eq!(cache.shard_count(), 4);
    for i in 0..100 {
        cache.set_with(
            &format!("k{i:03}"),
            vec![1u8; i],
            &SetOptions::new().tag(if i % 2 == 0 { "even" } else { "odd" }),
        )?;
    }
    assert_eq!(cache.len()?, 100);
    assert_eq!(cache.size()?, (0..100).sum::<usize>() as u64);
    let keys: Vec<String> = cache.keys().collect::<Result<_, _>>()?;
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "merged keys come in byte order");
    assert_eq!(keys.len(), 100);
    assert_eq!(
        cache.keys_page("k0", Some("k005"), 3)?,
        ["k006", "k007", "k008"]
    );
    // Every shard got some keys.
    for s in cache.shards() {
        assert!(s.len()? > 0);
    }
    assert_eq!(cache.evict_tag("even")?, 50);
    assert_eq!(cache.get("k001")?, Some(vec![1u8; 1]));
    assert!(cache.add("new", b"x")?);
    assert!(!cache.add("new", b"y")?);
    assert_eq!(cache.pop("new")?.as_deref(), Some(&b"x"[..]));
    assert_eq!(cache.incr("ctr", 5, 0)?, 5);
    cache.get("nope")?;
    let st = cache.stats();
    assert!(st.hits >= 1 && st.misses >= 1);
    assert!(cache.check(false)?.ok);
    assert_eq!(cache.clear()?, 51);
    assert!(cache.is_empty()?);
    Ok(())
}

#[test]
fn shard_count_is_recorded_and_enforced() -> R {
    let dir = tempfile::tempdir()?;
    {
        let c = FanoutCache::builder().shards(3).open(dir.path())?;
        c.set("persist", b"1")?;
    }
    let c = FanoutCache::open(dir.path())?;
    assert_eq!(c.shard_count(), 3, "count comes from disk");
    assert_eq!(c.get("persist")?.as_deref(), Some(&b"1"[..]));
    drop(c);
    let e = FanoutCache::builder()
        .shards(8)
        .open(dir.path())
        .expect_err("mismatch");
    assert!(
        matches!(
            e,
            Error::ShardCountMismatch {
                on_disk: 3,
                requested: 8,
                ..
            }
        ),
        "{e:?}"
    );
    let e = FanoutIndex::open(dir.path()).expect_err("kind");
    assert!(matches!(e, Error::WrongKind { .. }), "{e:?}");
    assert!(matches!(
        FanoutCache::builder().shards(0).open(dir.path().join("z")),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

#[test]
fn transaction_is_scoped_to_one_shard() -> R {
    let dir = tempfile::tempdir()?;
    let cache = FanoutCache::builder().shards(8).open(dir.path())?;
    let n = cache.shard_count();
    let home = "acct/1";
    let same = (0..)
        .map(|i| format!("other{i}"))
        .find(|k| shard_of(k, n) == shard_of(home, n))
        .expect("same");
    let other = (0..)
        .map(|i| format!("other{i}"))
        .find(|k| shard_of(k, n) != shard_of(home, n))
        .expect("other");
    cache.transact(home, |tx| {
        tx.set(home, b"1")?;
        tx.set(&same, b"2")
    })?;
    assert_eq!(cache.get(&same)?.as_deref(), Some(&b"2"[..]));
    let r: Result<(), Error> = cache.transact(home, |tx| {
        tx.set(home, b"changed")?;
        tx.set(&other, b"x")
    });
    assert!(matches!(r, Err(Error::WrongShard { .. })), "{r:?}");
    assert_eq!(cache.get(home)?.as_deref(), Some(&b"1"[..]), "rolled back");
    assert_eq!(cache.get(&other)?, None);
    Ok(())
}

#[test]
fn max_size_bounds_the_whole_fanout() -> R {
    let dir = tempfile::tempdir()?;
    let cache = FanoutCache::builder()
        .shards(4)
        .max_size(40_000)
        .maintenance_interval(Duration::ZERO)
        .open(dir.path())?;
    for i in 0..200 {
        cache.set(&format!("k{i}"), [0u8; 1000])?;
    }
    cache.maintain()?;
    assert!(cache.size()? <= 40_000, "size {}", cache.size()?);
    Ok(())
}

#[test]
fn fanout_index_and_locks() -> R {
    let dir = tempfile::tempdir()?;
    let idx = FanoutIndex::builder().shards(2).open(dir.path())?;
    idx.set("a", b"1")?;
    assert_eq!(idx.len()?, 1);
    let l = idx.try_lock("job", Duration::from_secs(5))?.expect("free");
    assert!(idx.try_lock("job", Duration::from_secs(5))?.is_none());
    drop(l);
    assert!(idx.try_lock("job", Duration::from_secs(5))?.is_some());
    Ok(())
}

#[test]
fn parts_reach_each_shard_through_dyn_engine() -> R {
    use sciqlop_cache::{AnyStore, Cache, Engine, Namespace};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f");
    let fanout = FanoutCache::builder().shards(3).open(&path)?;
    for i in 0..30 {
        fanout.set(&format!("k{i}"), b"v")?;
    }
    drop(fanout);
    let any = AnyStore::builder().open_location(path.to_str().ok_or("utf-8")?)?;
    let parts = any.engine().parts();
    assert_eq!(parts.len(), 3);
    // Each part is its shard: its own entries, checked and cleared alone.
    let per: Vec<u64> = parts
        .iter()
        .map(|p| p.len(&Namespace::DEFAULT))
        .collect::<Result<_, _>>()?;
    assert_eq!(per.iter().sum::<u64>(), 30);
    assert!(parts[1].check(false)?.ok);
    assert_eq!(parts[1].clear(&Namespace::DEFAULT)?, per[1]);
    assert_eq!(any.len()?, 30 - per[1]);
    // A single store is one part: none listed.
    let single = Cache::open(dir.path().join("c"))?;
    assert!(single.engine().parts().is_empty());
    Ok(())
}
