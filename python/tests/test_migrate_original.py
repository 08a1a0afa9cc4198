"""Migration from directories made by the original sciqlop-cache (pysciqlop-cache 0.3.6,
run in its own venv), with `sqcache migrate` and with `pysciqlop_cache.migrate`."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import time

import pytest

import pysciqlop_cache as sc
from conftest import run_py
from pysciqlop_cache.migrate import migrate

# Run by the original's interpreter: fills a store of each kind, then writes what the
# original returns for every live key, {key: (value, expire_time, tag)}, as a pickle.
MAKE = r'''
import pickle, sys, time
import pysciqlop_cache as sc
base, kind = sys.argv[1], sys.argv[2]
cls = getattr(sc, kind)
s = cls(base + "/src", max_size=10**9) if kind == "Cache" else cls(base + "/src")
cache = kind.endswith("Cache")
s["str"] = "text é"
s["bytes"] = b"\x00\xff"
s["big"] = b"B" * 100_000          # a value file
s["obj"] = {"nested": [1, 2.5, None]}
try:
    s[7] = "int key"
    s[2.5] = "float key"
    s[b"kb"] = "bytes key"
    s[(1, "t")] = "tuple key"
except TypeError:
    pass  # releases before 0.2 take str keys only
s["counter"] = 40
s.incr("counter")
s.incr("counter")
if cache:
    s.set("ttl", "later", expire=3600, tag="session")
    s.set("gone", "x", expire=0.01)
    s.set("tagged", 1.5, tag="grp")
time.sleep(0.05)
want = {}
for k in list(s):
    if cache:
        try:
            v, exp, tag = s.get(k, default=KeyError, expire_time=True, tag=True)
        except TypeError:  # releases before 0.2: no expire_time=, read the row
            v = s.get(k, default=KeyError)
            import glob, sqlite3
            for db in glob.glob(base + "/src/**/sciqlop-cache.db", recursive=True):
                row = sqlite3.connect(db).execute(
                    "SELECT expire, tag FROM cache WHERE key = ?", (k,)).fetchone()
                if row:
                    exp, tag = row
        if v is KeyError:
            continue
        want[k] = (v, exp, tag)
    else:
        want[k] = (s[k], None, None)
with open(base + "/want.pkl", "wb") as f:
    pickle.dump(want, f)
'''

KINDS = ["Cache", "Index", "FanoutCache", "FanoutIndex"]


def make(original_python, tmp_path, kind):
    run_py(MAKE, str(tmp_path), kind, python=original_python)
    with open(tmp_path / "want.pkl", "rb") as f:
        return tmp_path / "src", pickle.load(f)


def tree(path):
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*"))


def check(dst, want, kind):
    assert len(dst) == len(want)
    cache = kind.endswith("Cache")
    for k, (v, exp, tag) in want.items():
        if cache:
            got, gexp, gtag = dst.get(k, default=KeyError, expire_time=True, tag=True)
            assert gtag == tag, k
            assert (gexp is None) == (exp is None) and (exp is None or abs(gexp - exp) < 1e-3), k
        else:
            got = dst[k]
        assert got == v and type(got) is type(v), (k, got, v)
    # The original's counters stay counters.
    assert dst.incr("counter") == 43


@pytest.mark.parametrize("kind", KINDS)
def test_sqcache_migrate_every_kind(tmp_path, original_python, sqcache, kind):
    src, want = make(original_python, tmp_path, kind)
    before = tree(src)
    out = subprocess.run([sqcache, "--json", "migrate", str(src), str(tmp_path / "dst")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["migrated"] == len(want) and not report["errors"], report
    assert [s["reason"] for s in report["skipped"]] == (["expired"] if kind.endswith("Cache") else [])
    assert tree(src) == before, "the source is left as it was"
    dst = getattr(sc, kind)(str(tmp_path / "dst"))
    if kind.startswith("Fanout"):
        assert dst.shard_count() == 8, "the original's shard count"
    check(dst, want, kind)
    if kind == "Cache":
        assert dst.max_size == 10**9, "the original's max_size is recorded"


@pytest.mark.parametrize("version", ["0.1.16", "0.2.2"])
@pytest.mark.parametrize("kind", ["Cache", "FanoutIndex"])
def test_older_releases(tmp_path, original_releases, sqcache, version, kind):
    src, want = make(original_releases[version], tmp_path, kind)
    out = subprocess.run([sqcache, "--json", "migrate", str(src), str(tmp_path / "dst")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    check(getattr(sc, kind)(str(tmp_path / "dst")), want, kind)
    r = migrate(str(src), str(tmp_path / "dst2"), verbose=False)
    assert r["migrated"] == len(want) and r["errors"] == 0, r
    check(getattr(sc, kind)(str(tmp_path / "dst2")), want, kind)


@pytest.mark.parametrize("kind", ["Cache", "FanoutIndex"])
def test_python_migrate(tmp_path, original_python, kind):
    src, want = make(original_python, tmp_path, kind)
    r = migrate(str(src), str(tmp_path / "dst"), verbose=False)
    assert r["migrated"] == len(want) and r["errors"] == 0, r
    dst = getattr(sc, kind)(str(tmp_path / "dst"))
    check(dst, want, kind)


def test_recency_order_is_kept(tmp_path, original_python):
    # The original records recency (`last_use`) on writes; entries are written in that
    # order, so our LRU eviction takes the same ones first.
    run_py(r'''
import sys, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
for i in range(10):
    c[f"k{i}"] = b"x" * 1000
c["k0"] = b"y" * 1000      # the original's recency clock moves on writes: k0 is newest
''', str(tmp_path / "src"), python=original_python)
    migrate(str(tmp_path / "src"), str(tmp_path / "dst"), verbose=False)
    dst = sc.Cache(str(tmp_path / "dst"))
    dst.max_size = 5000
    dst.evict()
    assert "k0" in dst and "k1" not in dst and "k9" in dst


def test_opening_the_original_directly_is_refused_without_changing_it(tmp_path, original_python):
    for kind in ["Cache", "FanoutCache"]:
        d = tmp_path / kind
        d.mkdir()
        make(original_python, d, kind)
        before = tree(d / "src")
        for cls in (sc.Cache, sc.Index, sc.FanoutCache, sc.FanoutIndex):
            with pytest.raises(ValueError, match="original sciqlop-cache.*sqcache migrate"):
                cls(str(d / "src"))
        assert tree(d / "src") == before, kind


def count_rows(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute("SELECT count(*) FROM cache").fetchone()[0]
    finally:
        c.close()


def test_interrupted_drop_migration_resumes(tmp_path, original_python, sqcache):
    n = 6000
    run_py(r'''
import sys, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
with c.transact():
    for i in range(int(sys.argv[2])):
        c[f"k{i:05}"] = f"v{i}"
''', str(tmp_path / "src"), str(n), python=original_python)
    src, dst, db = tmp_path / "src", tmp_path / "dst", tmp_path / "src" / "sciqlop-cache.db"
    child = subprocess.Popen([sqcache, "migrate", "--drop", "--batch-size", "10", str(src), str(dst)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while count_rows(db) > n - 1000:
        assert child.poll() is None, "finished before the kill"
        assert time.monotonic() < deadline, "migration too slow"
        time.sleep(0.005)
    child.kill()
    child.wait()
    left = count_rows(db)
    assert 0 < left < n
    # Nothing lost: every entry is in the source or in the destination.
    d = sc.Cache(str(dst))
    src_keys = {r[0] for r in sqlite3.connect(db).execute("SELECT key FROM cache")}
    for i in range(n):
        k = f"k{i:05}"
        assert k in src_keys or d.get(k) == f"v{i}", k
    d.close()
    out = subprocess.run([sqcache, "--json", "migrate", "--drop", str(src), str(dst)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert count_rows(db) == 0
    d = sc.Cache(str(dst))
    assert len(d) == n and all(d[f"k{i:05}"] == f"v{i}" for i in range(0, n, 97))


def test_a_source_written_during_the_migration(tmp_path, original_python, sqcache):
    n = 3000
    src, dst = tmp_path / "src", tmp_path / "dst"
    run_py(r'''
import sys, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
with c.transact():
    for i in range(int(sys.argv[2])):
        c[f"k{i:05}"] = "v1"
''', str(src), str(n), python=original_python)
    writer = subprocess.Popen([original_python, "-c", r'''
import sys, time, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
end = time.monotonic() + 3
i = 0
while time.monotonic() < end:
    c[f"k{i % int(sys.argv[2]):05}"] = "v2"
    c[f"new{i}"] = "added"
    i += 1
''', str(src), str(n)])
    try:
        out = subprocess.run([sqcache, "--json", "migrate", "--batch-size", "50", str(src), str(dst)],
                             capture_output=True, text=True, timeout=120)
    finally:
        writer.wait(timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert not r["errors"], r
    d = sc.Cache(str(dst))
    for i in range(n):
        assert d[f"k{i:05}"] in ("v1", "v2"), "a committed state of each listed entry"
    d.close()
    # A second run, with the writer done, brings the destination up to date.
    out = subprocess.run([sqcache, "--json", "migrate", str(src), str(dst)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = sc.Cache(str(dst))
    orig = run_py(r'''
import sys, json, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
print(json.dumps({k: c[k] for k in c}))
''', str(src), python=original_python)
    want = json.loads(orig)
    assert len(got) == len(want)
    assert all(got[k] == v for k, v in want.items())
    assert os.path.isdir(src)
