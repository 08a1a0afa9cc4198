"""One scenario of API calls, run by test_parity.py under both this package and the
original pysciqlop-cache 0.3.6; prints one JSON object {step: repr(result)}."""

import json
import sys
import tempfile
import time
from datetime import timedelta

import pysciqlop_cache as sc

out = {}


def step(name, f):
    try:
        r = f()
        out[name] = repr(r)
    except Exception as e:  # the exception's type is part of the behaviour
        out[name] = f"raises {type(e).__name__}"


root = tempfile.mkdtemp()
c = sc.Cache(root + "/c")
step("set", lambda: c.set("k", {"a": [1, 2]}))
step("get", lambda: c.get("k"))
step("get-miss-default", lambda: c.get("missing", 5))
step("set-expire-tag", lambda: c.set("e", "v", expire=100, tag="t"))
step("set-timedelta", lambda: c.set("td", 1, expire=timedelta(seconds=100)))
step("get-tag", lambda: c.get("e", tag=True))
step("get-expire-time-is-float", lambda: type(c.get("e", expire_time=True)[1]).__name__)
step("get-expire-time-about-100s", lambda: round(c.get("e", expire_time=True)[1] - time.time()) in (99, 100))
step("get-miss-tuples", lambda: c.get("missing", expire_time=True, tag=True))
step("get-miss-tag", lambda: c.get("missing", tag=True))
step("get-read", lambda: c.get("k", read=True))
step("set-read", lambda: c.set("k", 1, read=True))
step("pop", lambda: c.pop("e", tag=True))
step("pop-miss", lambda: c.pop("e", "dflt"))
step("add-new", lambda: c.add("a", 1))
step("add-existing", lambda: c.add("a", 2))
step("after-add", lambda: c["a"])
step("touch-missing", lambda: c.touch("nope", 10))
step("touch", lambda: c.touch("a", 10))
step("delete", lambda: c.delete("a"))
step("delete-missing", lambda: c.delete("a"))
step("exists", lambda: (c.exists("k"), c.exists("a")))
step("incr", lambda: c.incr("n"))
step("incr-delta", lambda: c.incr("n", delta=5))
step("decr", lambda: c.decr("n"))
step("decr-default", lambda: c.decr("m", 2, 10))
step("counter-reads-int", lambda: (c["n"], type(c["n"]).__name__))
step("incr-str", lambda: (c.set("s", "x"), c.incr("s")))
step("getitem-miss", lambda: c["missing"])
step("delitem-miss", lambda: c.__delitem__("missing"))
step("contains", lambda: ("k" in c, "zz" in c))
step("typed-keys", lambda: [c.set(k, repr(k)) for k in (b"b", 1.5, 7, (1, 2), "str")] and None)
step("typed-values", lambda: [c[k] for k in (b"b", 1.5, 7, (1, 2), "str")])
step("keys", lambda: c.keys())
step("iter", lambda: list(c))
step("iterkeys", lambda: list(c.iterkeys()))
step("len", lambda: len(c))
step("count-callable", lambda: callable(c.count))
step("evict-tag", lambda: (c.set("g1", 1, tag="grp"), c.set("g2", 1, tag="grp"), c.evict_tag("grp")))
step("evict", lambda: c.evict())
step("stats-keys", lambda: sorted(c.stats()))
step("reset-stats", lambda: (c.reset_stats(), c.stats()))
step("check-fields", lambda: sorted(n for n in ("ok", "orphaned_files", "dangling_rows", "size_mismatches",
                                                  "counters_consistent", "sqlite_integrity_ok")
                                    if hasattr(c.check(), n)))
step("check-ok", lambda: (c.check().ok, c.check(True).ok))
step("size-positive", lambda: c.size() > 0)
step("volume-positive", lambda: c.volume() > 0)
step("path", lambda: str(c.path()) == root + "/c")


def tx_ok():
    with c.transact():
        c["t1"] = 1
    return c["t1"]


def tx_fail():
    try:
        with c.transact():
            c["t2"] = 2
            raise ValueError
    except ValueError:
        pass
    return "t2" in c


step("transact-commit", tx_ok)
step("transact-rollback", tx_fail)
calls = []


@c.memoize(expire=10, tag="m")
def f(x):
    calls.append(x)
    return x * 2


step("memoize", lambda: (f(2), f(2), len(calls), hasattr(f, "__cache_key__"), f.__wrapped__(3)))


def lock():
    lk = c.lock("L", expire=10)
    with lk:
        held = lk.locked()
    return held, lk.locked(), lk.release()


step("lock", lock)
step("ctor-disk", lambda: sc.Cache(root + "/x", disk=object))
step("ctor-unknown", lambda: sc.Cache(root + "/x", bogus=1))
step("ctor-settings", lambda: type(sc.Cache(root + "/y", statistics=True, eviction_policy="none")).__name__)
step("max-size-positional", lambda: len(sc.Cache(root + "/ms", 1000)))
step("timeout-is-runtime-error", lambda: issubclass(sc.Timeout, RuntimeError))
step("serializer-name", lambda: c.serializer.name)
step("serializer-mismatch", lambda: sc.Cache(root + "/c", serializer=sc.MsgspecSerializer()))
step("msgspec-ok", lambda: (lambda m: (m.set("a", [1, "x"]), m["a"]))(sc.Cache(root + "/m", serializer=sc.MsgspecSerializer())))

i = sc.Index(root + "/i", {"a": 1}, b=2)
step("index-items", lambda: list(i.items()))
step("index-values", lambda: list(i.values()))
step("index-peekitem", lambda: (i.peekitem(), i.peekitem(last=False)))
step("index-popitem", lambda: i.popitem(last=False))
step("index-pop-miss", lambda: i.pop("zz"))
step("index-pop-default", lambda: i.pop("zz", 0))
step("index-setdefault", lambda: (i.setdefault("b", 9), i.setdefault("n", 9)))
step("index-update", lambda: (i.update({"u": 1}), len(i)))
step("index-incr", lambda: i.incr("ctr"))
step("index-mutable-mapping", lambda: __import__("collections.abc").abc.MutableMapping in type(i).__mro__ or isinstance(i, __import__("collections.abc").abc.MutableMapping))
i.clear()
step("index-peek-empty", lambda: i.peekitem())

fc = sc.FanoutCache(root + "/f", shard_count=4)
step("fanout-shards", lambda: fc.shard_count())
step("fanout-set-get", lambda: (fc.set("k", 1), fc["k"]))


def ftx():
    with fc.transact("k"):
        fc["k"] = fc["k"] + 1
    return fc["k"]


step("fanout-transact", ftx)
step("fanout-keys", lambda: (fc.set(b"x", 1), sorted(map(repr, fc.keys()))))
fi = sc.FanoutIndex(root + "/fi", {"a": 1}, shard_count=2)
step("fanout-index", lambda: (fi.shard_count(), list(fi.items())))

step("close", lambda: c.close())
step("use-after-close", lambda: c["k"])
step("use-after-close-message", lambda: (lambda: c.get("k"))())
try:
    c.get("k")
except RuntimeError as e:
    out["use-after-close-mentions-closed"] = repr("closed store" in str(e))
print(json.dumps(out))
