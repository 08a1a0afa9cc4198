"""The dict interface of every store type, and typed keys."""

from __future__ import annotations

from collections.abc import MutableMapping

import pytest

import pysciqlop_cache as sc
from conftest import open_store

KEYS = ["plain", "", "\x00starts-with-nul", "\x00i5", "é/ünï", b"bytes", b"\x00\xff", 5, -7, 0, 2**70,
        1.5, -0.0, float("inf"), (1, "tuple"), None, frozenset({1})]


def test_dict_interface(store):
    store["a"] = 1
    store["b"] = [2]
    assert store["a"] == 1 and store["b"] == [2]
    assert "a" in store and "zz" not in store
    with pytest.raises(KeyError) as e:
        store["zz"]
    assert e.value.args == ("zz",)
    del store["a"]
    with pytest.raises(KeyError):
        del store["a"]
    assert len(store) == 1
    assert list(store) == ["b"] == store.keys() == list(store.iterkeys())
    store["c"] = 3
    assert sorted(store) == ["b", "c"]


def test_iteration_in_key_order_over_pages(store):
    keys = [f"k{i:05d}" for i in range(700)]
    if isinstance(store, (sc.Cache, sc.FanoutCache)):
        store.set_many({k: i for i, k in enumerate(keys)})
    else:
        store.set_many({k: i for i, k in enumerate(keys)})
    assert list(store) == keys == store.keys()


def test_cache_skips_expired_in_len_and_iteration(cache):
    import time

    cache.set("live", 1)
    cache.set("dying", 1, expire=0.05)
    time.sleep(0.1)
    assert list(cache) == ["live"] and len(cache) == 1


def test_index_is_a_mutable_mapping(index):
    assert isinstance(index, MutableMapping)
    index.update({"a": 1, "b": 2}, c=3)
    assert index.setdefault("a", 9) == 1 and index.setdefault("d", 4) == 4
    assert dict(index.items()) == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert list(index.values()) == [1, 2, 3, 4]
    assert ("a", 1) in index.items()
    assert index.peekitem() == ("d", 4) and index.peekitem(last=False) == ("a", 1)
    assert index.popitem() == ("d", 4) and index.popitem(last=False) == ("a", 1)
    assert index.pop("b") == 2 and index.pop("b", "dflt") == "dflt"
    with pytest.raises(KeyError):
        index.pop("b")
    assert index == {"c": 3} and index != {"c": 4}
    index.clear()
    with pytest.raises(KeyError):
        index.peekitem()
    with pytest.raises(KeyError):
        index.popitem()


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_typed_keys_round_trip(store, key):
    store[key] = ("value of", key)
    assert store[key] == ("value of", key)
    assert key in store
    (listed,) = store.keys()
    assert listed == key and type(listed) is type(key)
    assert list(store) == [key]
    del store[key]
    assert key not in store and len(store) == 0


def test_keys_never_collide(store):
    # A str that looks like an encoded key is a different key from what it looks like.
    pairs = [("\x00i5", 5), ("\x00b\xff", b"\xff"), ("\x00f1.5", 1.5), ("6", 6), ("b'x'", b"x"),
             ("\x00s", "\x00s\x00s"), ("\x00pgAR9lC4=", None)]
    for i, (a, b) in enumerate(pairs):
        store[a] = ("str", i)
        store[b] = ("other", i)
    for i, (a, b) in enumerate(pairs):
        assert store[a] == ("str", i) and store[b] == ("other", i)
    assert len(store) == 2 * len(pairs)
    assert set(map(repr, store.keys())) == set(map(repr, [k for p in pairs for k in p]))


def test_bool_keys_are_their_int(store):
    store[True] = "t"
    assert store[1] == "t", "as in a dict, True and 1 are one key"


def test_key_encoding_is_recorded(store):
    assert store._native.get_meta("key_encoding") == "pysciqlop-cache/1"


def test_unsupported_keys(store):
    with pytest.raises(TypeError, match="unsupported key"):
        store[lambda: 1] = 1
    with pytest.raises(TypeError, match="unsupported key"):
        store.get(object.__new__(type("Local", (), {})))
    with pytest.raises(ValueError, match="longer than the maximum"):
        store["x" * 5000] = 1
