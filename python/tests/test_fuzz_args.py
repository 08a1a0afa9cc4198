"""Argument handling of the Python binding, fuzzed with Hypothesis (issue #18).

Every method of the native ``NativeStore`` and of the public store classes is called
with arbitrary Python objects as arguments (wrong types, huge and negative ints, NaN and
infinite floats, surrogate strings, nested containers, arbitrary objects) and arbitrary
keyword arguments. Whatever the arguments, a call returns or raises an ordinary
``Exception`` (``TypeError``, ``ValueError``, ``OverflowError``, ``KeyError``, the
package's own errors): never a Rust panic (pyo3's ``PanicException`` derives from
``BaseException``), never a ``SystemError``, never a crash of the interpreter; and the
store still works afterwards.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

import pysciqlop_cache as sc
from pysciqlop_cache import _native

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 2**200]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-300, 1e300, 5e-324]),
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "\ud800", "a" * 5000, "/", "..", "\x00i12", "\x00p!!"]),
    st.binary(max_size=20),
    st.just(object()),
    st.just(b"\xff\xfe"),
    st.just(bytearray(b"ba")),
    st.just(memoryview(b"mv")),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),
    ),
    max_leaves=6,
)

NATIVE_METHODS = [
    "get", "get_raw", "get_entry", "get_many", "set", "set_many", "add", "delete", "pop",
    "pop_entry", "contains", "touch", "incr", "len", "size", "volume", "expire", "evict",
    "evict_tag", "max_size", "set_max_size", "stats", "reset_stats", "check", "keys_page",
    "keys", "get_meta", "set_meta", "begin", "end", "namespace", "shard_count", "path",
]
KWARGS = ["expire", "tag", "pickle", "delta", "default", "fix", "after", "limit", "key", "commit"]

PUBLIC_METHODS = [
    "get", "set", "add", "delete", "pop", "touch", "incr", "decr", "evict_tag", "expire",
    "__getitem__", "__setitem__", "__delitem__", "__contains__", "get_many", "set_many",
    "set_max_size", "namespace", "transact", "check", "keys",
]


def ordinary(e: BaseException) -> bool:
    return isinstance(e, Exception) and not isinstance(e, SystemError)


begun: list[int] = []


def call(target, name, args, kwargs):
    f = getattr(target, name, None)
    if f is None:
        return
    try:
        r = f(*args, **kwargs)
        if name == "begin" and isinstance(r, int):
            begun.append(r)
        # Generators and context managers run their code lazily: run it.
        if hasattr(r, "__next__"):
            for _ in zip(range(3), r):
                pass
        elif hasattr(r, "__enter__"):
            with r:
                pass
    except BaseException as e:  # noqa: BLE001 - the point is what escapes
        assert ordinary(e), f"{name}(*{args!r}, **{kwargs!r}) raised {type(e).__mro__}: {e}"


calls = st.lists(
    st.tuples(
        st.integers(min_value=0),
        st.lists(anything, max_size=3),
        st.dictionaries(st.sampled_from(KWARGS), anything, max_size=2),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["cache", "index", "fanout-cache", "fanout-index"]), calls=calls)
def test_native_store_methods_take_any_arguments(tmp_path_factory, kind, calls):
    d = tmp_path_factory.mktemp("native")
    s = _native.NativeStore(kind, str(d / "s"), 0, 2 if kind.startswith("fanout") else None, 1.0)
    try:
        for i, args, kwargs in calls:
            call(s, NATIVE_METHODS[i % len(NATIVE_METHODS)], args, kwargs)
        while begun:
            try:
                s.end(begun.pop(), False)
            except Exception:  # noqa: BLE001 - already ended
                pass
        # Still a working store.
        s.set("after", b"v")
        assert s.get("after") == b"v"
    finally:
        s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["Cache", "Index", "FanoutCache", "FanoutIndex"]), calls=calls)
def test_public_store_methods_take_any_arguments(tmp_path_factory, kind, calls):
    d = tmp_path_factory.mktemp("public")
    cls = getattr(sc, kind)
    kw = {"shard_count": 2} if kind.startswith("Fanout") else {}
    s = cls(str(d / "s"), **kw)
    try:
        for i, args, kwargs in calls:
            call(s, PUBLIC_METHODS[i % len(PUBLIC_METHODS)], args, kwargs)
        s["after"] = b"v"
        assert s["after"] == b"v"
    finally:
        s.close()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=st.lists(anything, max_size=6), kwargs=st.dictionaries(
    st.sampled_from(["max_size", "shards", "timeout", "file_threshold", "shard_count", "serializer"]),
    anything, max_size=3))
def test_constructors_take_any_arguments(tmp_path_factory, args, kwargs):
    # Paths stay inside the temporary directory: the other arguments are arbitrary.
    d = str(tmp_path_factory.mktemp("ctor") / "s")
    kind = args[0] if args else "cache"
    for ctor, lead, rest in [
        (_native.NativeStore, [kind, d + "n"], args[1:4]),
        (sc.Cache, [d + "c"], args[:2]),
        (sc.FanoutIndex, [d + "f"], args[:2]),
        (_native.DiskcacheReader, [d + "c"], args[:1]),
    ]:
        try:
            r = ctor(*lead, *rest, **kwargs)
            close = getattr(r, "close", None)
            if close is not None:
                close()
        except BaseException as e:  # noqa: BLE001
            assert ordinary(e), f"{ctor.__name__}(*{args!r}, **{kwargs!r}): {type(e).__mro__}: {e}"
