"""Interop with the Rust side: the sqcache CLI (the Rust API over the same core) reads
what Python wrote and the other way round."""

from __future__ import annotations

import json
import subprocess

import pysciqlop_cache as sc


def run(cli, *args, input=None):
    r = subprocess.run([cli, *args], capture_output=True, input=input, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_counters_both_ways(tmp_path, sqcache):
    d = str(tmp_path / "c")
    c = sc.Cache(d)
    c["visits"] = 41  # an int set from Python ...
    c.incr("hits", 5)
    c.close()
    assert run(sqcache, "incr", d, "visits").strip() == b"42"  # ... is a counter for Rust
    assert run(sqcache, "incr", d, "hits", "10").strip() == b"15"
    assert run(sqcache, "get", d, "hits") == b"15"
    run(sqcache, "incr", d, "from-rust", "7")
    c = sc.Cache(d)
    assert c["visits"] == 42 and c["hits"] == 15
    assert c["from-rust"] == 7 and type(c["from-rust"]) is int
    assert c.incr("from-rust") == 8


def test_bytes_both_ways(tmp_path, sqcache):
    d = str(tmp_path / "c")
    c = sc.Cache(d)
    c.set_raw("blob", b"\x00\x01\xffraw bytes", tag="t")
    c.set_raw("big", bytes(range(256)) * 100)
    c.close()
    assert run(sqcache, "get", d, "blob") == b"\x00\x01\xffraw bytes"
    assert run(sqcache, "get", d, "big") == bytes(range(256)) * 100
    run(sqcache, "set", d, "rust-key", "-i", "-", input=b"from \xffrust")
    c = sc.Cache(d)
    assert c.get_raw("rust-key") == b"from \xffrust"
    listed = json.loads(run(sqcache, "--json", "ls", d))
    names = listed if isinstance(listed, list) else listed.get("keys", listed)
    assert "blob" in json.dumps(names) and "rust-key" in json.dumps(names)


def test_python_values_are_visible_to_the_cli(tmp_path, sqcache):
    d = str(tmp_path / "i")
    i = sc.Index(d)
    i["obj"] = {"a": 1}
    i[5] = "typed key"
    i.close()
    stats = json.loads(run(sqcache, "--json", "stats", d))
    assert "2" in json.dumps(stats)
    check = json.loads(run(sqcache, "--json", "check", d))
    assert "true" in json.dumps(check).lower()
    import pickle

    assert pickle.loads(run(sqcache, "get", d, "obj")) == {"a": 1}


def test_fanout_interop(tmp_path, sqcache):
    d = str(tmp_path / "f")
    f = sc.FanoutCache(d, shard_count=4)
    for i in range(20):
        f[f"k{i}"] = i
    f.close()
    for i in (0, 7, 19):
        assert run(sqcache, "incr", d, f"k{i}").strip() == str(i + 1).encode()
    f = sc.FanoutCache(d)
    assert [f[f"k{i}"] for i in (0, 7, 19, 1)] == [1, 8, 20, 1]
