"""Migration from directories made by the real diskcache 5.6.3."""

from __future__ import annotations

import subprocess
import sys
import time

import diskcache
import numpy as np
import pytest

import pysciqlop_cache as sc
from pysciqlop_cache.migrate import migrate


class Obj:
    """A pickled value and key (diskcache pickles what is not str/bytes/int/float)."""

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return type(other) is Obj and other.v == self.v

    def __hash__(self):
        return hash(self.v)


def fill(dc) -> None:
    dc.set("str", "text é")
    dc.set("long-str", "s" * 40000)  # a text file
    dc.set(b"bytes-key", b"\x00\xff")
    dc.set("big-bytes", b"B" * 100_000)  # a binary file
    dc.set(7, 42)
    dc.set(-1, -(2**63))
    dc.set(2.5, 0.1)
    dc.set((1, "tuple"), {"nested": [1, 2.5, None]})  # pickled key and value
    dc.set("array", np.arange(50_000, dtype=np.float64))  # a large pickle in a file
    dc.set("obj", Obj([1]))
    dc.set("ttl", "expires later", expire=3600, tag="session")
    dc.set("tagged", 1.5, tag="grp")
    dc.set("int-tag", 3, tag=5)
    dc.set("gone", "expired", expire=0.01)
    dc.set(Obj("key"), "pickled object key")
    dc.set(2**70, "big int key (pickled by diskcache)")


def expected(dc):
    """What diskcache returns for every live key: {key: (value, expire_time, tag)}."""
    out = {}
    missing = object()
    for k in list(dc):
        v, exp, tag = dc.get(k, default=missing, expire_time=True, tag=True)
        if v is missing:  # expired
            continue
        out[k] = (v, exp, tag)
    return out


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b and type(a) is type(b)


def check_migrated(dst, want, keep_meta=True):
    assert len(dst) == len(want)
    for k, (v, exp, tag) in want.items():
        got = dst.get(k, expire_time=True, tag=True) if keep_meta else (dst[k], None, None)
        assert same(got[0], v), (k, got[0], v)
        if keep_meta:
            assert got[2] == (None if tag is None else str(tag)), k
            if exp is None:
                assert got[1] is None, k
            else:
                assert abs(got[1] - exp) < 1.0, (k, got[1], exp)


def test_cache(tmp_path):
    src = str(tmp_path / "dc")
    dc = diskcache.Cache(src, eviction_policy="least-recently-used")
    fill(dc)
    time.sleep(0.05)
    want = expected(dc)
    dc.close()
    r = migrate(src, str(tmp_path / "dst"))
    assert set(r) == {"migrated", "skipped", "errors", "elapsed_secs"}
    assert r["migrated"] == len(want) and r["errors"] == 0 and r["skipped"] == 1  # the expired one
    dst = sc.Cache(str(tmp_path / "dst"))
    check_migrated(dst, want)
    assert set(dst.keys()) == set(want)
    assert dst.evict_tag("session") == 1
    assert dst.incr(7) == 43, "an int value migrates as a counter"


def test_access_order_becomes_lru_order(tmp_path):
    src = str(tmp_path / "dc")
    dc = diskcache.Cache(src, eviction_policy="least-recently-used")
    for i in range(10):
        dc.set(f"k{i}", b"x" * 1000)
    for i in reversed(range(10)):
        dc.get(f"k{i}")  # k0 is now the most recently used
    dc.close()
    migrate(src, str(tmp_path / "dst"))
    dst = sc.Cache(str(tmp_path / "dst"))
    dst.max_size = 5000
    dst.evict()
    assert "k0" in dst and "k9" not in dst


def test_fanout_cache(tmp_path):
    src = str(tmp_path / "dc")
    dc = diskcache.FanoutCache(src, shards=3)
    fill(dc)
    for i in range(100):
        dc.set(f"n{i}", i, tag="t" if i % 2 else None)
    time.sleep(0.05)
    want = expected(dc)
    dc.close()
    r = migrate(src, str(tmp_path / "dst"))
    assert r["migrated"] == len(want) and r["errors"] == 0
    dst = sc.FanoutCache(str(tmp_path / "dst"))
    assert dst.shard_count() == 3
    check_migrated(dst, want)


def test_index_and_drop_and_cli(tmp_path):
    src = str(tmp_path / "dc")
    idx = diskcache.Index(src)
    idx.update({"a": 1, "b": b"2", "c": [3], 4: "four"})
    want = {k: (idx[k], None, None) for k in idx}
    del idx
    out = subprocess.run([sys.executable, "-m", "pysciqlop_cache.migrate", "--type", "index", "--drop", src,
                          str(tmp_path / "dst")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"migrated": 4' in out.stdout
    dst = sc.Index(str(tmp_path / "dst"))
    check_migrated(dst, want, keep_meta=False)
    assert len(diskcache.Index(src)) == 0, "--drop moved the entries"
    r = migrate(src, str(tmp_path / "dst"), store_type="index")
    assert r["migrated"] == 0 and len(dst) == 4


def test_into_msgspec_destination_reports_what_it_cannot_store(tmp_path):
    src = str(tmp_path / "dc")
    dc = diskcache.Cache(src)
    dc.set("ok", {"a": [1]})
    dc.set("obj", Obj(1))  # stored through __dict__ by msgspec: fine
    dc.set("complex", 1 + 2j)  # msgpack has no complex numbers
    dc.close()
    r = migrate(src, str(tmp_path / "dst"), serializer=sc.MsgspecSerializer(), verbose=False)
    assert r["migrated"] == 2 and r["errors"] == 1
    dst = sc.Cache(str(tmp_path / "dst"))
    assert dst["ok"] == {"a": [1]} and dst["obj"] == Obj(1) and "complex" not in dst


def test_unreadable_pickles_are_skipped(tmp_path):
    src = str(tmp_path / "dc")
    dc = diskcache.Cache(src)
    dc.set("fine", 1)
    dc.set("broken", Obj(2))
    dc.close()
    # Make the class unimportable under its pickled name, as a library upgrade would.
    import test_migrate

    saved = test_migrate.Obj
    try:
        del test_migrate.Obj
        r = migrate(src, str(tmp_path / "dst"), verbose=False)
    finally:
        test_migrate.Obj = saved
    assert (r["migrated"], r["skipped"], r["errors"]) == (1, 1, 0)


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        migrate(str(tmp_path / "missing"), str(tmp_path / "dst"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a diskcache directory"):
        migrate(str(tmp_path / "empty"), str(tmp_path / "dst"))
    with pytest.raises(ValueError, match="store_type"):
        migrate(str(tmp_path / "empty"), str(tmp_path / "dst"), store_type="bogus")
    out = subprocess.run([sys.executable, "-m", "pysciqlop_cache.migrate", str(tmp_path / "missing"),
                          str(tmp_path / "dst")], capture_output=True, text=True)
    assert out.returncode == 2 and "does not exist" in out.stderr
