"""Serializers: pickle (default), pickle-oob, msgspec (numpy included); the serializer
recorded in the store; the int-as-counter rule."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import pysciqlop_cache as sc
from conftest import open_store


class Point:
    """A plain object (msgspec stores its __dict__)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)


VALUES = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, 1.5, float("-inf"), "", "text é",
          b"", b"\x00\x80bytes", [1, "a", None], {"k": [1.5, {"n": None}]}, 10**30]


@pytest.mark.parametrize("ser", [sc.PickleSerializer(), sc.PickleOOBSerializer(), sc.MsgspecSerializer()],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("kind", ["Cache", "FanoutIndex"])
def test_values_round_trip(tmp_path, ser, kind):
    s = open_store(kind, tmp_path / "s", serializer=ser)
    assert s.serializer is ser
    for i, v in enumerate(VALUES):
        if ser.name == "msgspec" and type(v) is int and not -(2**63) <= v < 2**64:
            with pytest.raises(TypeError, match="cannot serialize"):
                s[f"k{i}"] = v  # msgpack has no integers beyond 64 bits
            continue
        s[f"k{i}"] = v
        got = s[f"k{i}"]
        assert got == v and type(got) is type(v), (i, v, got)
    big = b"\x07" * (3 << 20)
    s["big"] = big
    assert s["big"] == big


def test_pickle_objects_and_big_values(tmp_path):
    s = sc.Cache(str(tmp_path / "s"))
    s["p"] = Point(1, [2])
    assert s["p"] == Point(1, [2])
    s["set"] = {1, 2}
    assert s["set"] == {1, 2}


@pytest.mark.parametrize("ser", [sc.PickleSerializer(), sc.PickleOOBSerializer(), sc.MsgspecSerializer()],
                         ids=lambda s: s.name)
def test_numpy_arrays(tmp_path, ser):
    s = sc.Cache(str(tmp_path / "s"), serializer=ser)
    arrays = {
        "f64": np.arange(200_000, dtype=np.float64),  # 1.6 MB: out of band, in a file
        "small": np.array([1, 2, 3], dtype=np.int16),
        "2d": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(24, dtype=np.int64).reshape(2, 3, 4)),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "dt": np.array(["2026-01-01", "2026-12-01"], dtype="datetime64[ns]"),
    }
    for k, a in arrays.items():
        s[k] = a
    for k, a in arrays.items():
        got = s[k]
        assert isinstance(got, np.ndarray) and got.dtype == a.dtype and got.shape == a.shape, k
        np.testing.assert_array_equal(got, a)
        got_c = np.ascontiguousarray(got)
        got_c[...] = got_c  # writable
    s["nested"] = {"t": arrays["small"], "v": [np.float32(1.5), np.int8(3)]}
    got = s["nested"]
    np.testing.assert_array_equal(got["t"], arrays["small"])
    assert got["v"] == [1.5, 3]


def test_msgspec_plain_objects(tmp_path):
    s = sc.Cache(str(tmp_path / "s"), serializer=sc.MsgspecSerializer())
    s["p"] = Point(1, 2.5)
    assert s["p"] == Point(1, 2.5)
    with pytest.raises(TypeError, match="cannot serialize"):
        s["bad"] = 1 + 2j  # no complex in msgpack, and no __dict__


def test_oob_layout_keeps_buffers_out_of_band():
    ser = sc.PickleOOBSerializer()
    a = np.arange(100_000, dtype=np.float64)
    data = ser.dumps(a)
    assert data.startswith(ser.MAGIC)
    assert a.tobytes() in data, "the array's bytes are stored as they are"
    np.testing.assert_array_equal(ser.loads(data), a)
    assert not ser.dumps(1.5).startswith(ser.MAGIC), "no big buffer: plain pickle"
    with pytest.raises(pickle.UnpicklingError):
        ser.loads(ser.MAGIC + b"\x05\x00")


def test_serializer_recorded_and_mismatch_refused(tmp_path):
    d = str(tmp_path / "s")
    s = sc.Cache(d, serializer=sc.MsgspecSerializer())
    s["k"] = {"a": 1}
    s.close()
    s = sc.Cache(d)
    assert s.serializer.name == "msgspec" and s["k"] == {"a": 1}
    s.close()
    with pytest.raises(ValueError, match="msgspec"):
        sc.Cache(d, serializer=sc.PickleSerializer())
    d2 = str(tmp_path / "p")
    sc.Cache(d2)["k"] = [1]
    s = sc.Cache(d2, serializer=sc.PickleOOBSerializer())  # an upgrade: it reads pickle
    assert s["k"] == [1]


def test_custom_serializer(tmp_path):
    import json

    class Json:
        name = "json"

        def dumps(self, v):
            return json.dumps(v).encode()

        def loads(self, b):
            return json.loads(b)

    d = str(tmp_path / "s")
    s = sc.Index(d, serializer=Json())
    s["k"] = {"a": [1, 2]}
    s["n"] = 5
    assert s["k"] == {"a": [1, 2]} and s["n"] == 5
    assert s.get_raw("k") == b'{"a": [1, 2]}'
    s.close()
    with pytest.raises(ValueError, match="unknown serializer 'json'"):
        sc.Index(d)
    assert sc.Index(d, serializer=Json())["k"] == {"a": [1, 2]}
    with pytest.raises(TypeError, match="serializer must have"):
        sc.Index(str(tmp_path / "x"), serializer=object())


def test_ints_are_counters_whatever_the_serializer(tmp_path):
    for ser in (sc.PickleSerializer(), sc.MsgspecSerializer(), sc.PickleOOBSerializer()):
        s = sc.Cache(str(tmp_path / ser.name), serializer=ser)
        s["n"] = -17
        assert s.get_raw("n") == b"-17"
        assert s.incr("n") == -16
        s["n2"] = 2**63  # beyond i64: serialized, still an int
        assert s["n2"] == 2**63 and s.get_raw("n2") != b"9223372036854775808"


def test_unserializable_values_are_type_errors(store):
    import threading

    with pytest.raises(TypeError, match="cannot serialize the value of key 'k'"):
        store["k"] = threading.Lock()
    assert "k" not in store


@pytest.mark.parametrize("size", [65535, 65536, 65537, 1 << 20])
def test_large_bytes_are_stored_exactly_as_pickle_would(tmp_path, size):
    import os

    for ser in (sc.PickleSerializer(), sc.PickleOOBSerializer()):
        s = sc.Index(str(tmp_path / f"{ser.name}-{size}"), serializer=ser)
        v = os.urandom(size)
        s["v"] = v
        s.set_many({"m": v})
        assert s.get_raw("v") == pickle.dumps(v, 5) == s.get_raw("m")
        assert s["v"] == v and type(s["v"]) is bytes
        assert s.get_many(["v", "m"]) == [v, v] and s.pop("v") == v
    c = sc.Cache(str(tmp_path / f"c-{size}"))
    c.set("v", v, expire=60, tag="t")
    assert c.get("v", tag=True) == (v, "t") and c.pop("v", tag=True) == (v, "t")
    m = sc.Cache(str(tmp_path / f"msgspec-{size}"), serializer=sc.MsgspecSerializer())
    m["v"] = v
    assert m["v"] == v and m.get_raw("v") != pickle.dumps(v, 5)


def test_pickle_with_another_protocol_is_left_to_pickle(tmp_path):
    s = sc.Cache(str(tmp_path / "p4"), serializer=sc.PickleSerializer(protocol=4))
    v = b"x" * 100_000
    s["v"] = v
    assert s.get_raw("v") == pickle.dumps(v, 4) and s["v"] == v
