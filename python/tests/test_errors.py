"""Bad input gets a clear Python exception, never a crash."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pysciqlop_cache as sc
from pysciqlop_cache._native import NativeStore


def test_a_file_is_not_a_cache_directory(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=str(f)):
        sc.Cache(str(f))


def test_a_foreign_database_is_refused(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "sciqlop-cache.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ValueError, match="sciqlop-cache"):
        sc.Cache(str(d))


def test_an_sqlite_database_of_another_application(tmp_path):
    import sqlite3

    d = tmp_path / "d"
    d.mkdir()
    con = sqlite3.connect(d / "sciqlop-cache.db")
    con.execute("CREATE TABLE other(x)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="not a sciqlop-cache store"):
        sc.Cache(str(d))


def test_wrong_kinds(tmp_path):
    sc.Index(str(tmp_path / "i")).close()
    with pytest.raises(ValueError, match="index"):
        sc.Cache(str(tmp_path / "i"))
    sc.FanoutCache(str(tmp_path / "f"), shard_count=2).close()
    with pytest.raises(ValueError, match="fanout|single"):
        sc.Cache(str(tmp_path / "f"))
    with pytest.raises(ValueError, match="2 shards, 3 requested"):
        sc.FanoutCache(str(tmp_path / "f"), shard_count=3)
    with pytest.raises(ValueError, match="shard count"):
        sc.FanoutCache(str(tmp_path / "g"), shard_count=0)


def test_bad_arguments(tmp_path):
    c = sc.Cache(str(tmp_path / "c"))
    with pytest.raises(TypeError, match="expire"):
        c.set("k", 1, expire="soon")
    with pytest.raises(TypeError, match="tag"):
        c.set("k", 1, tag=5)
    with pytest.raises(ValueError, match="NaN"):
        c.set("k", 1, expire=float("nan"))
    with pytest.raises(ValueError, match="out of range"):
        c.set("k", 1, expire=1e300)
    with pytest.raises(ValueError, match="max_size"):
        c.max_size = -1
    with pytest.raises((TypeError, ValueError)):
        sc.Cache(str(tmp_path / "d"), max_size="big")
    with pytest.raises(TypeError):
        c.evict_tag(None)
    assert c.check().ok


def test_native_layer_refuses_what_it_does_not_take(tmp_path):
    n = NativeStore("cache", str(tmp_path / "n"))
    with pytest.raises(TypeError, match="keys reach the engine as str"):
        n.get(5)
    with pytest.raises(ValueError, match="encoded key"):
        n.get(b"no marker")
    with pytest.raises(ValueError, match="encoded key"):
        n.get(b"\xff\xfe")
    with pytest.raises(TypeError, match="stored values are bytes"):
        n.set("k", "str value")
    with pytest.raises(OverflowError):
        n.set("k", 2**64)
    with pytest.raises(ValueError, match="unknown store kind"):
        NativeStore("nope", str(tmp_path / "x"))
    with pytest.raises(RuntimeError, match="not open in this thread"):
        n.end(123456, True)
    with pytest.raises(TypeError, match="needs a key"):
        NativeStore("fanout-cache", str(tmp_path / "f")).begin()
    i = NativeStore("index", str(tmp_path / "i"))
    with pytest.raises(TypeError, match="no expiry"):
        i.set("k", b"v", 10.0)
    with pytest.raises(TypeError, match="no expiry"):
        i.touch("k", 1.0)


def test_transactions_end_innermost_first(tmp_path):
    n = NativeStore("cache", str(tmp_path / "n"))
    outer = n.begin()
    inner = n.begin()
    with pytest.raises(RuntimeError, match="innermost first"):
        n.end(outer, True)
    n.end(inner, True)
    n.end(outer, False)
    with pytest.raises(RuntimeError, match="not open"):
        n.end(outer, True)


def test_ending_a_transaction_from_another_thread_is_refused(tmp_path):
    import threading

    n = NativeStore("cache", str(tmp_path / "n"))
    serial = n.begin()
    n.set("k", b"v")
    errors = []

    def other():
        try:
            n.end(serial, True)
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "another thread" in errors[0]
    n.end(serial, True)
    assert n.get("k") == b"v"


def test_a_path_below_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(OSError, match="file"):
        sc.Cache(str(f / "sub"))


READ_ONLY_CHILD = r"""
import sys
import pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
assert c["k"] == {"a": 1}, c["k"]
assert c.get("big") == b"x" * 100_000
assert len(c) == 2
assert c.check().ok
try:
    c["k2"] = 1
except PermissionError as e:
    assert "read-only" in str(e), e
    print("refused:", e)
else:
    raise SystemExit("a write to a read-only store succeeded")
print("ok")
"""


def test_a_store_on_a_read_only_mount_is_read(tmp_path):
    """A cache published on a read-only mount opens and reads; writes raise
    PermissionError naming the cause (a bind mount in a private mount namespace)."""
    src = tmp_path / "src"
    c = sc.Cache(str(src), max_size=10**9)
    c["k"] = {"a": 1}
    c.set("big", b"x" * 100_000)
    c.close()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(READ_ONLY_CHILD)
    ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    r = subprocess.run(
        ns + ["sh", "-c", f"mount --bind -o ro '{src}' '{mnt}' && exec '{sys.executable}' '{script}' '{mnt}'"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stdout.strip().endswith("ok"), r.stdout
    assert "read-only file system" in r.stdout, r.stdout
