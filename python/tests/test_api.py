"""The public API: constructors, every method, the diskcache-style signatures."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import pysciqlop_cache as sc
from conftest import open_store, run_py


def test_constructor_aliases_settings_and_rejections(tmp_path):
    c = sc.Cache(str(tmp_path / "a"), 10_000)  # max_size is the second positional
    assert c.max_size == 10_000
    c.close()
    c = sc.Cache(cache_path=str(tmp_path / "b"), size_limit=5000, statistics=1, eviction_policy="none",
                 sqlite_mmap_size=1, cull_limit=0, timeout=2)
    assert c.max_size == 5000 and c.timeout == 2.0
    assert c.directory == str(tmp_path / "b") and c.path() == str(tmp_path / "b")
    c.close()
    with pytest.raises(TypeError, match="disk="):
        sc.Cache(str(tmp_path / "c"), disk=object())
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        sc.Cache(str(tmp_path / "c"), bogus=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        sc.FanoutCache(str(tmp_path / "f"), bogus=1)
    f = sc.FanoutCache(str(tmp_path / "f"), shards=3, size_limit=3000)
    assert f.shard_count() == 3 and f.max_size == 3000
    f.close()
    f = sc.FanoutCache(str(tmp_path / "f"))
    assert f.shard_count() == 3, "the shard count is fixed at creation"
    assert f.max_size == 3000, "max_size is remembered"
    f.close()
    i = sc.Index(str(tmp_path / "i"), {"a": 1}, [("b", 2)], c=3)
    assert dict(i.items()) == {"a": 1, "b": 2, "c": 3}
    fi = sc.FanoutIndex(str(tmp_path / "fi"), {"a": 1}, shard_count=2, z=26)
    assert fi.shard_count() == 2 and fi["z"] == 26 and fi["a"] == 1


def test_default_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = sc.Cache()
    i = sc.Index()
    assert c.directory == ".cache/" and (tmp_path / ".cache" / "sciqlop-cache.db").exists()
    assert i.directory == ".index/" and (tmp_path / ".index" / "sciqlop-cache.db").exists()
    c.close()
    i.close()


def test_max_size_remembered_across_reopen(tmp_path):
    d = str(tmp_path / "c")
    sc.Cache(d, max_size=12345).close()
    c = sc.Cache(d)
    assert c.max_size == 12345
    c.max_size = 999
    c.close()
    assert sc.Cache(d).max_size == 999
    assert sc.Cache(d, 0).max_size == 0
    assert sc.Cache(d).max_size == 0


def test_set_get_expire_tag_tuples(cache):
    assert cache.set("k", "v", expire=60, tag="t") is True
    assert cache.get("k") == "v"
    v, exp = cache.get("k", expire_time=True)
    assert v == "v" and time.time() + 55 < exp <= time.time() + 60
    assert cache.get("k", tag=True) == ("v", "t")
    v, exp, tag = cache.get("k", expire_time=True, tag=True)
    assert (v, tag) == ("v", "t") and exp > time.time()
    assert cache.get("missing", 7, expire_time=True, tag=True) == (7, None, None)
    assert cache.get("missing", expire_time=True) == (None, None)
    assert cache.get("missing", tag=True) == (None, None)
    cache.set("nometa", 1)
    assert cache.get("nometa", expire_time=True, tag=True) == (1, None, None)
    cache.set("td", b"x", expire=timedelta(minutes=1))
    assert cache.get("td", expire_time=True)[1] > time.time() + 50
    with pytest.raises(NotImplementedError):
        cache.get("k", read=True)
    with pytest.raises(NotImplementedError):
        cache.set("k", "v", read=True)
    assert cache.get("k", retry=True) == "v"


def test_subsecond_expiry(cache):
    cache.set("k", 1, expire=0.2)
    assert cache.get("k") == 1
    time.sleep(0.3)
    assert cache.get("k") is None and "k" not in cache
    cache.set("z", 1, expire=0)
    assert cache.get("z") is None, "a zero expiry expires at once"
    cache.set("neg", 1, expire=-5)
    assert "neg" not in cache


def test_pop_add_touch_delete_exists(cache):
    cache.set("k", [1], expire=100, tag="t")
    assert cache.pop("k", expire_time=True, tag=True)[::2] == ([1], "t")
    assert cache.pop("k") is None and cache.pop("k", "d") == "d"
    assert cache.pop("k", "d", tag=True) == ("d", None)
    assert cache.add("a", 1) is True and cache.add("a", 2) is False and cache["a"] == 1
    cache.set("e", 1, expire=0.05)
    time.sleep(0.1)
    assert cache.add("e", 2) is True, "an expired entry counts as absent"
    assert cache.touch("a", 100) is True
    assert cache.get("a", expire_time=True)[1] > time.time() + 90
    assert cache.touch("a") is True and cache.get("a", expire_time=True)[1] is None
    assert cache.touch("nope", 10) is False
    cache.set("x", 1, expire=0.05)
    time.sleep(0.1)
    assert cache.touch("x", 100) is False, "an expired entry is not brought back"
    assert cache.exists("a") and not cache.exists("nope")
    assert cache.delete("a") is True and cache.delete("a") is False


def test_expire_evict_evict_tag_clear(tmp_path):
    c = sc.Cache(str(tmp_path / "c"))
    for i in range(5):
        c.set(f"t{i}", i, tag="grp")
        c.set(f"e{i}", i, expire=0.01)
    c.set("keep", 1)
    time.sleep(0.05)
    assert c.expire() == 5
    assert c.evict_tag("grp") == 5
    assert c.evict_tag("grp") == 0
    assert list(c) == ["keep"]
    c.max_size = 2000
    for i in range(40):
        c.set(f"v{i}", b"x" * 100)
        c.get(f"v{i}")
    # The background upkeep may evict before this call does (it wakes when a write
    # goes over the bound), so count what is gone rather than what this call removed.
    n = c.evict()
    assert n >= 0 and c.size() <= 2000
    kept = [k for k in c if k.startswith("v")]
    assert 0 < len(kept) < 40, "evicted some, not all"
    assert "v39" in c and "v0" not in c, "least recently used first"
    left = len(c)
    assert left > 0 and c.clear() == left
    assert len(c) == 0 and c.clear() == 0


def test_counters(store):
    assert store.incr("n") == 1
    assert store.incr("n", delta=5) == 6
    assert store.decr("n") == 5
    assert store.decr("m", 2, 10) == 8
    assert store["n"] == 5 and type(store["n"]) is int
    store["i"] = 41
    assert store.incr("i") == 42
    store["f"] = 1.5
    assert store.incr("f") == 2.5, "a float is incremented in Python, like the original"
    store["big"] = 2**70
    assert store.incr("big") == 2**70 + 1
    assert store.incr("n", 2**64) == 5 + 2**64
    store["s"] = "text"
    with pytest.raises(TypeError):
        store.incr("s")
    assert store["s"] == "text", "never overwritten"
    store["b"] = True
    assert store["b"] is True, "a bool is not a counter"


def test_count_size_volume_path_stats(tmp_path):
    c = sc.Cache(str(tmp_path / "c"))
    c.set("k", b"x" * 20000)
    assert c.count() == 1 == len(c)
    assert c.size() > 20000 and c.volume() > c.size()
    c.get("k")
    c.get("nope")
    assert c.stats() == {"hits": 1, "misses": 1}
    c.reset_stats()
    assert c.stats() == {"hits": 0, "misses": 0}


def test_check_report_fields(store):
    store["k"] = b"x" * 50000
    r = store.check()
    assert r.ok and bool(r)
    assert (r.orphaned_files, r.dangling_rows, r.size_mismatches) == (0, 0, 0)
    assert r.counters_consistent and r.sqlite_integrity_ok and not r.fixed
    assert store.check(True).ok


def test_check_finds_and_fixes_a_lost_value_file(tmp_path):
    c = sc.Cache(str(tmp_path / "c"))
    c["big"] = b"x" * 100_000
    files = [p for p in (tmp_path / "c" / "data").rglob("*.val")]
    assert len(files) == 1
    files[0].unlink()
    with pytest.raises(OSError, match="big"):
        c["big"]
    r = c.check()
    assert not r.ok and r.dangling_rows == 1 and r.damaged_files == 0
    assert r.sqlite_errors == () and r.removed_keys == ()
    r = c.check(fix=True)
    assert r.ok and r.fixed
    assert r.removed_keys == ("big",)
    assert "big" not in c


def test_transact_commit_rollback_and_savepoints(store):
    key = "k"
    tx = store.transact(key) if store.__class__.__name__.startswith("Fanout") else store.transact()
    with tx:
        store[key] = 1
    assert store[key] == 1
    with pytest.raises(ZeroDivisionError):
        with (store.transact(key) if isinstance(store, (sc.FanoutCache, sc.FanoutIndex)) else store.transact()):
            store[key] = 2
            1 / 0
    assert store[key] == 1, "rolled back"
    if isinstance(store, (sc.Cache, sc.Index)):
        with store.transact():
            store["a"] = 1
            try:
                with store.transact():
                    store["b"] = 2
                    raise KeyError("inner")
            except KeyError:
                pass
        assert store["a"] == 1 and "b" not in store, "the inner block rolled back alone"


def test_transaction_is_invisible_to_other_threads_until_commit(tmp_path):
    import threading

    c = sc.Cache(str(tmp_path / "c"))
    seen = []
    with c.transact():
        c["k"] = "v"
        t = threading.Thread(target=lambda: seen.append(c.get("k")))
        t.start()
        t.join(10)
    assert seen == [None] and c["k"] == "v"


def test_memoize(cache):
    calls = []

    @cache.memoize(expire=60, tag="compute")
    def f(x, y=1):
        calls.append((x, y))
        return None if x == 0 else x + y

    assert f(1, y=2) == 3 and f(1, y=2) == 3 and calls == [(1, 2)]
    assert f(0) is None and f(0) is None and calls == [(1, 2), (0, 1)], "None is cached"
    assert f.__wrapped__(1, 2) == 3 and f.__cache_key__(1, y=2) in cache
    assert cache.evict_tag("compute") == 2
    assert f(1, y=2) == 3 and len(calls) == 4

    @cache.memoize(typed=True)
    def g(x):
        calls.append(x)
        return x

    g(1)
    g(1.0)
    assert calls[-2:] == [1, 1.0]
    with pytest.raises(TypeError, match="must be called"):
        cache.memoize(lambda: 1)


def test_memoize_version_aware(tmp_path):
    d = str(tmp_path / "c")
    code = """
import sys, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
@c.memoize(version_aware=True)
def f(x):
    print("computed")
    return x * %d
print(f(2))
"""
    assert run_py(code % 2, d).split() == ["computed", "4"]
    assert run_py(code % 2, d).split() == ["4"]
    assert run_py(code % 3, d).split() == ["computed", "6"], "a changed function recomputes"


def test_lock(cache):
    lock = cache.lock("res", expire=10)
    assert not lock.locked()
    with lock:
        assert lock.locked()
        assert not cache.lock("res").acquire(timeout=0.05)
    assert not lock.locked()
    assert lock.acquire() and lock.release() is True
    assert lock.release() is False, "a lost lock is reported"
    short = cache.lock("exp", expire=0.05)
    short.acquire()
    time.sleep(0.1)
    assert cache.lock("exp").acquire(timeout=1), "a crashed holder's lock expires"


def test_close_and_use_after_close(store):
    assert store.close() is True
    assert store.close() is False
    assert store.closed
    for op in (lambda: store["k"], lambda: store.set("k", 1), lambda: len(store), lambda: list(store),
               lambda: store.check(), lambda: "k" in store):
        with pytest.raises(RuntimeError, match="closed store"):
            op()
    assert "closed" in repr(store)


def test_with_block_does_not_close(tmp_path):
    with sc.Cache(str(tmp_path / "c")) as c:
        c["k"] = 1
    assert c["k"] == 1


def test_atexit_closes_open_stores(tmp_path):
    out = run_py(
        "import sys, pysciqlop_cache as sc, pysciqlop_cache as m\n"
        "c = sc.Cache(sys.argv[1]); c['k'] = 1\n"
        "import atexit\n"
        "atexit.register(lambda: print('closed' if c.closed else 'open'))\n",
        str(tmp_path / "c"),
    )
    # atexit runs last-registered first: our hook ran before the package's closer,
    # then the package's closer closed it; the process exited cleanly.
    assert out.strip() == "open"
    out = run_py(
        "import sys, pysciqlop_cache as sc\n"
        "c = sc.Cache(sys.argv[1])\n"
        "sc._close_open_stores(); print(c.closed)\n",
        str(tmp_path / "c"),
    )
    assert out.strip() == "True"


def test_timeout_when_locked_by_another_process(tmp_path):
    import subprocess
    import sys

    d = str(tmp_path / "c")
    c = sc.Cache(d, timeout=0.3)  # opening waits for a writer too: open first

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pysciqlop_cache as sc\n"
         "c = sc.Cache(sys.argv[1])\n"
         "with c.transact():\n"
         "    c['x'] = 1; print('locked', flush=True); time.sleep(3)\n", d],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(sc.Timeout) as e:
            c["y"] = 2
        assert isinstance(e.value, RuntimeError)
        assert time.monotonic() - t0 < 2.5
    finally:
        holder.wait(10)


def test_pickling_a_store_reopens_it(tmp_path):
    import pickle

    c = sc.FanoutCache(str(tmp_path / "c"), shard_count=3)
    c["k"] = 1
    c2 = pickle.loads(pickle.dumps(c))
    assert c2["k"] == 1 and c2.shard_count() == 3 and c2 is not c


def test_repr(tmp_path):
    c = sc.Cache(str(tmp_path / "c"))
    c["a"] = 1
    assert repr(c) == f"Cache({str(tmp_path / 'c')!r}, count=1)"


def test_set_many_get_many(store):
    items = {f"k{i}": i for i in range(50)}
    items["obj"] = {"x": [1, 2]}
    store.set_many(items)
    assert store.get_many(["k3", "nope", "obj"], default="d") == [3, "d", {"x": [1, 2]}]
    assert len(store) == 51


def test_raw_bytes(store):
    store.set_raw("r", b"\x00\x01raw")
    assert store.get_raw("r") == b"\x00\x01raw"
    store["n"] = 42
    assert store.get_raw("n") == b"42"
    assert store.get_raw("nope", b"d") == b"d"
    with pytest.raises(TypeError):
        store.set_raw("r", "not bytes")


def test_namespaces_are_independent_views(tmp_path):
    import pickle

    cache = sc.Cache(str(tmp_path / "c"))
    sessions = cache.namespace("sessions")
    assert type(sessions) is sc.Cache
    sessions.set("k", {"in": "sessions"}, tag="t")
    sessions[1] = "int key"
    cache.set("k", "default", tag="t")
    assert (len(sessions), len(cache)) == (2, 1)
    assert sessions["k"] == {"in": "sessions"} and cache["k"] == "default"
    assert sorted(map(str, sessions)) == ["1", "k"]
    assert sessions.evict_tag("t") == 1, "tags are per namespace"
    assert "k" in cache
    assert sessions.incr("n") == 1 and cache.get("n") is None
    assert cache.namespace("")["k"] == "default"
    # Pickled (e.g. for a worker process), a view reopens the same namespace.
    again = pickle.loads(pickle.dumps(sessions))
    assert again["n"] == 1
    assert sessions.clear() == 2 and len(cache) == 1
    # Closed on its own.
    sessions.close()
    assert cache["k"] == "default"
    with pytest.raises(RuntimeError):
        sessions["k"]
    index = sc.Index(str(tmp_path / "i"))
    index.namespace("a")["x"] = 1
    assert len(index) == 0 and index.namespace("a")["x"] == 1
    with pytest.raises(TypeError):
        cache.namespace(b"bytes")
    with pytest.raises(TypeError, match="Fanout"):
        sc.FanoutCache(str(tmp_path / "f")).namespace("a")
