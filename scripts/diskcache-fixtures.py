"""Makes diskcache directories for sqcache's migration tests (run through
diskcache-fixtures.sh, which provides diskcache 5.6.3).

standard OUT_DIR
    OUT_DIR/cache   Cache (LRU policy, so reads move access_time) with every kind of
                    key and value, file-backed values, expiry and tags
    OUT_DIR/fanout  FanoutCache with 4 shards
    OUT_DIR/index   Index
    OUT_DIR/manifest.json  one record per entry: what sqcache migrate must produce
        {"store", "key_repr", "expect": "migrate" | <skip code>, "key", "value_hex",
         "tag", "expire_time", "pickle_hex"}
bulk DIR N
    a Cache with N entries whose values are a function of their number (see
    bulk_value; the Rust tests compute the same)
writer DIR SECONDS
    writes keys live-0, live-1, ... to the Cache in DIR for SECONDS; prints the count
"""

import json
import os
import pickle
import sys
import time

import diskcache


def bulk_key(i):
    return "key-%06d" % i


def bulk_value(i):
    if i % 10 == 0:
        return i * 3  # int: becomes a counter
    if i % 10 == 1:
        return "text-%d" % i  # str
    if i % 1000 == 7:
        return b"%d," % i * 10000  # bytes in a file
    return ("bytes-%d-" % i).encode() * 8


def bulk(directory, n):
    cache = diskcache.Cache(directory)
    step = 5000
    for start in range(0, n, step):
        with cache.transact():
            for i in range(start, min(n, start + step)):
                cache.set(bulk_key(i), bulk_value(i), tag="t%d" % (i % 3) if i % 7 == 0 else None)
    cache.close()


def writer(directory, seconds):
    cache = diskcache.Cache(directory)
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        cache.set("live-%d" % n, b"x" * 100)
        n += 1
    cache.close()
    print(n)


def to_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise TypeError("bool is pickled")
    if isinstance(value, (int, float)):
        return repr(value).encode("ascii")
    raise TypeError(type(value))


def record(records, store, cache, key, value, expect, text=None, tag=None):
    r = {"store": store, "key_repr": repr(key), "expect": expect, "key": text}
    if expect in ("migrate", "pickled-value"):
        got, expire_time, got_tag = cache.get(key, expire_time=True, tag=True)
        assert got == value, (key, got, value)
        r["expire_time"] = expire_time
        r["tag"] = None if got_tag is None else (got_tag if isinstance(got_tag, str) else repr(got_tag))
        if expect == "migrate":
            r["value_hex"] = to_bytes(value).hex()
        else:
            r["pickle_hex"] = pickle.dumps(value, protocol=cache.disk.pickle_protocol).hex()
    records.append(r)


def fill(records, store, cache, shards_note=""):
    """Entries common to the Cache and FanoutCache fixtures."""
    big_bytes = os.urandom(100_000)
    big_text = "é" * 40_000 + "\n" + "end"
    entries = [
        # key, value, set kwargs, expect, key text
        ("alpha", "hello", {}, "migrate", "alpha"),
        ("small-bytes", b"\x00\x01\xff", {}, "migrate", "small-bytes"),
        ("int", 42, {}, "migrate", "int"),
        ("neg", -7, {}, "migrate", "neg"),
        ("float", 1.5, {}, "migrate", "float"),
        ("float-big", 1e16, {}, "migrate", "float-big"),
        ("big-bytes", big_bytes, {}, "migrate", "big-bytes"),
        ("big-text", big_text, {}, "migrate", "big-text"),
        ("empty-str", "", {}, "migrate", "empty-str"),
        ("", b"the empty key", {}, "migrate", ""),
        ("clé/ü", "ünïcode", {}, "migrate", "clé/ü"),
        (b"bkey", "from a bytes key", {}, "migrate", "bkey"),
        (123, "int key", {}, "migrate", "123"),
        (2.5, "float key", {}, "migrate", "2.5"),
        ("ttl", "lives an hour", {"expire": 3600}, "migrate", "ttl"),
        ("tagged", b"tagged value", {"tag": "grp"}, "migrate", "tagged"),
        ("ttl-tagged", 99, {"expire": 7200, "tag": "grp"}, "migrate", "ttl-tagged"),
        ("int-tag", "v", {"tag": 5}, "migrate", "int-tag"),
        ("pickled", {"a": 1}, {}, "pickled-value", "pickled"),
        ("bool", True, {}, "pickled-value", "bool"),
        ("big-pickle", list(range(20_000)), {}, "pickled-value", "big-pickle"),
        (("tuple", 1), "tuple key", {}, "pickled-key", None),
        (None, "none key", {}, "pickled-key", None),
        (b"\xff\xfe", "non-utf8 key", {}, "non-utf8-key", None),
        ("bytes-tag", "v", {"tag": b"\xff"}, "non-utf8-tag", None),
        # Collisions: the str key wins, the other is skipped.
        ("77", "str 77", {}, "migrate", "77"),
        (77, "int 77", {}, "key-collision", None),
        ("coll", "str coll", {}, "migrate", "coll"),
        (b"coll", "bytes coll", {}, "key-collision", None),
        ("5", "str 5", {}, "migrate", "5"),
        (5, "int 5", {}, "key-collision", None),
    ]
    for i in range(40):
        entries.append(("k%02d" % i, "value %d" % i, {"tag": "even"} if i % 2 == 0 else {}, "migrate", "k%02d" % i))
    for key, value, kw, _, _ in entries:
        cache.set(key, value, **kw)
    cache.incr("counter", 5)
    cache.set("gone", "expires at once", expire=0.01)
    time.sleep(0.05)
    for key, value, _, expect, text in entries:
        record(records, store, cache, key, value, expect, text)
    record(records, store, cache, "counter", 5, "migrate", "counter")
    records.append({"store": store, "key_repr": repr("gone"), "expect": "expired", "key": None})
    # Reads move access_time under the LRU policy: k00 then alpha become the most
    # recently used (record() above read every entry in turn).
    cache.get("k00")
    cache.get("alpha")


def standard(out):
    os.makedirs(out, exist_ok=True)
    records = []
    cache = diskcache.Cache(os.path.join(out, "cache"), eviction_policy="least-recently-used")
    fill(records, "cache", cache)
    cache.close()

    fanout = diskcache.FanoutCache(os.path.join(out, "fanout"), shards=4, eviction_policy="least-recently-used")
    fill(records, "fanout", fanout)
    fanout.close()

    index = diskcache.Index(os.path.join(out, "index"))
    for key, value, expect, text in [
        ("a", "x", "migrate", "a"),
        (b"b", b"y", "migrate", "b"),
        ("n", 3, "migrate", "n"),
        (7, 2.25, "migrate", "7"),
        ("obj", [1, 2], "pickled-value", "obj"),
    ]:
        index[key] = value
    for key, value, expect, text in [
        ("a", "x", "migrate", "a"),
        (b"b", b"y", "migrate", "b"),
        ("n", 3, "migrate", "n"),
        (7, 2.25, "migrate", "7"),
        ("obj", [1, 2], "pickled-value", "obj"),
    ]:
        record(records, "index", index.cache, key, value, expect, text)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(records, f, indent=1)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "standard" and len(argv) == 3:
        standard(argv[2])
    elif cmd == "bulk" and len(argv) == 4:
        bulk(argv[2], int(argv[3]))
    elif cmd == "writer" and len(argv) == 4:
        writer(argv[2], float(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
