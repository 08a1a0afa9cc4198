"""pysciqlop_cache: a fast persistent key-value cache on SQLite with hybrid storage
(small values inline, large values in files), with expiry, tags, LRU eviction by size,
atomic counters, transactions and cross-process locks. The engine is Rust
(sciqlop-cache); this package is a drop-in replacement for the original C++
``pysciqlop-cache`` and accepts diskcache's signatures.

>>> from pysciqlop_cache import Cache
>>> cache = Cache("/tmp/my-cache")                        # doctest: +SKIP
>>> cache["sensor/temperature"] = {"values": [21.3, 21.5]}  # doctest: +SKIP

Store types: :class:`Cache` (expiry, tags, LRU eviction by ``max_size``, hit/miss
stats), :class:`Index` (a bare persistent mapping), and their sharded forms
:class:`FanoutCache` and :class:`FanoutIndex`.

Differences from the original, on purpose:

- Nested ``transact()`` blocks are savepoints: an inner block that raised rolls back
  alone (its exception still propagates; if the outer block catches it, the outer
  block's other writes commit). In the original, the inner writes committed anyway.
- Expiry keeps microseconds (the original truncated to whole seconds), and
  ``expire_time`` values are fractional Unix seconds.
- ``FanoutCache(max_size=N)`` bounds the whole fanout (each shard gets N / shards), as
  in diskcache; the original bounded each shard by N.
- ``len()`` never counts expired entries (the original counted them until purged).
- ``expire()``, ``clear()`` return the number of entries removed (the original: None).
- Keys are at most 4096 bytes once encoded (``ValueError`` beyond).
"""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import os
import pickle
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, ItemsView, MutableMapping, ValuesView
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Union

from ._native import NativeStore as _NativeStore
from ._native import NotACounter, Timeout
from ._native import after_fork_in_parent as _after_fork_in_parent
from ._native import before_fork as _before_fork
from ._native import forget_transactions_after_fork as _forget_transactions_after_fork
from .serializers import (
    SERIALIZER_UPGRADES,
    MsgspecSerializer,
    PickleOOBSerializer,
    PickleSerializer,
    Serializer,
    get_serializer_by_name,
)

__all__ = [
    "Cache",
    "Index",
    "FanoutCache",
    "FanoutIndex",
    "Lock",
    "CheckResult",
    "Serializer",
    "PickleSerializer",
    "PickleOOBSerializer",
    "MsgspecSerializer",
    "Timeout",
    "NotACounter",
]

Expire = Optional[Union[int, float, timedelta]]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_MISSING: Any = object()
_META_SERIALIZER = "serializer"
_META_MAX_SIZE = "max_size"
_META_KEYS = "key_encoding"
_KEY_ENCODING = "pysciqlop-cache/1"
# Values of at least this many bytes (serialized) go to their own file, smaller ones
# inline in SQLite: 32 KiB as diskcache's disk_min_file_size (the engine's default is
# 8 KiB; a file costs a create, a rename and an unlink: a 16 KiB set was 5x slower in a
# file). Set per store with disk_min_file_size=.
_FILE_THRESHOLD = 32 * 1024
# Large bytes values are pickled (and unpickled) by the engine for pickle stores.
_PICKLE_BYTES_MIN = 64 * 1024

# diskcache settings with no meaning here: accepted and ignored, so diskcache
# configurations work unchanged.
_IGNORED_SETTINGS = frozenset(
    {
        "statistics",
        "tag_index",
        "eviction_policy",
        "cull_limit",
        "sqlite_auto_vacuum",
        "sqlite_cache_size",
        "sqlite_journal_mode",
        "sqlite_mmap_size",
        "sqlite_synchronous",
        "disk_pickle_protocol",
    }
)


# ---------------------------------------------------------------------------------
# Keys
#
# A str key is stored as it is. Every other key is stored as a string that starts with
# NUL, then a type code, then the key's text:
#   "\0i" + decimal           int (and bool: True is the key 1, as in a dict)
#   "\0f" + repr(float)       float
#   "\0b" + latin-1 of bytes  bytes (byte order kept)
#   "\0p" + base64(pickle)    anything else that pickles (tuples, None, ...)
#   "\0s" + key               a str key that itself starts with NUL
# The engine applies the last rule to str keys, so an ordinary str key never collides
# with an encoded one. The marker is recorded in the store's metadata (key_encoding).
# ---------------------------------------------------------------------------------


def _encode_key(key: Any) -> Any:
    """The stored form of a key that is not exactly a ``str`` (bytes for the engine:
    an already-encoded key; or a plain str for str subclasses)."""
    t = type(key)
    if t is bytes:
        return ("\0b" + key.decode("latin-1")).encode()
    if t is int or t is bool:
        return f"\0i{int(key)}".encode()
    if t is float:
        return ("\0f" + repr(key)).encode()
    if isinstance(key, str):
        return str(key)
    if isinstance(key, (bytes, bytearray, memoryview)):
        return ("\0b" + bytes(key).decode("latin-1")).encode()
    try:
        data = pickle.dumps(key, protocol=4)
    except Exception as e:
        raise TypeError(
            f"unsupported key {key!r}: keys are str, bytes, int, float or picklable ({e})"
        ) from e
    return ("\0p" + base64.b64encode(data).decode("ascii")).encode()


def _decode_key(stored: str) -> Any:
    """The key a stored key stands for."""
    if stored[:1] != "\0":
        return stored
    code, text = stored[1:2], stored[2:]
    if code == "s":
        return text
    if code == "i":
        return int(text)
    if code == "f":
        return float(text)
    if code == "b":
        return text.encode("latin-1")
    if code == "p":
        return pickle.loads(base64.b64decode(text))
    return stored  # not written by this package: shown as it is


def _seconds(expire: Expire) -> Optional[float]:
    if expire is None:
        return None
    if isinstance(expire, timedelta):
        return expire.total_seconds()
    if isinstance(expire, (int, float)) and not isinstance(expire, bool):
        return float(expire)
    raise TypeError(f"expire must be seconds (int or float) or a timedelta, not {expire!r}")


def _tag(tag: Any) -> Optional[str]:
    if tag is None or type(tag) is str:
        return tag
    raise TypeError(f"tag must be a str, not {type(tag).__name__}")


@dataclass(frozen=True)
class CheckResult:
    """What :meth:`Cache.check` found (and, with ``fix=True``, repaired)."""

    ok: bool
    """Nothing is wrong (after fixing, when asked)."""
    orphaned_files: int
    """Value files without a row."""
    dangling_rows: int
    """Rows whose value file is missing or has the wrong size."""
    size_mismatches: int
    """Inline rows whose recorded size is wrong."""
    counters_consistent: bool
    """The maintained count/size totals matched the rows."""
    sqlite_integrity_ok: bool
    """SQLite's own integrity check passed."""
    fixed: bool = False
    """Repairs were made."""
    foreign_tables: tuple = ()
    """Tables another program (such as the original sciqlop-cache, whose database file
    has the same name) added to the database: reported, never removed."""
    damaged_files: int = 0
    """Of the ``dangling_rows``, those whose file is there but truncated or changed."""
    sqlite_errors: tuple = ()
    """What SQLite found in a damaged database (nothing is repaired in place then: copy
    what is readable with ``sqcache salvage DIR NEW_DIR``)."""
    removed_keys: tuple = ()
    """The keys ``fix=True`` removed (their value file was lost)."""

    def __post_init__(self) -> None:
        for name in ("foreign_tables", "sqlite_errors", "removed_keys"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def __bool__(self) -> bool:
        return self.ok


# Every open store, by id (a WeakValueDictionary: Index is unhashable, like a dict).
_open_stores: "weakref.WeakValueDictionary[int, _Store]" = weakref.WeakValueDictionary()


@atexit.register
def _close_open_stores() -> None:
    for store in list(_open_stores.values()):
        store.close()


def _after_fork_in_child() -> None:
    # The child's copies of the parent's connections must not be used: every live
    # store gets a fresh handle on the same directory. Transactions the forking thread
    # had open belong to the parent and are forgotten; a store that had one open (or a
    # call in progress in another thread, see _native.before_fork) cannot be used in
    # the child and says so.
    _forget_transactions_after_fork()
    for store in list(_open_stores.values()):
        store._native.reopen_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _file_threshold(settings: dict) -> int:
    v = settings.pop("disk_min_file_size", None)
    if v is None:
        return _FILE_THRESHOLD
    if type(v) is not int or v < 0:
        raise ValueError(f"disk_min_file_size must be a number of bytes, not {v!r}")
    return v


def _reject_settings(cls_name: str, disk: Any, settings: dict) -> None:
    if disk is not None:
        raise TypeError(f"{cls_name}: disk= is not supported, use serializer= instead")
    for name in settings:
        if name not in _IGNORED_SETTINGS:
            raise TypeError(f"{cls_name}.__init__() got an unexpected keyword argument {name!r}")


def _reopen(cls: type, kwargs: dict, namespace: Optional[str] = None) -> Any:
    store = cls(**kwargs)
    return store if namespace is None else store.namespace(namespace)


class Lock:
    """A cross-process lock stored in a cache (``cache.lock(key, expire)``).

    ``acquire`` spins on the atomic :meth:`Cache.add` of the lock key (with ``expire``,
    so a crashed holder's lock runs out), ``release`` deletes it. A context manager.
    """

    __slots__ = ("_cache", "_key", "_expire", "_tag")

    def __init__(self, cache: "_Store", key: Any, expire: Expire = None, tag: Optional[str] = None):
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Waits until the lock is taken (at most ``timeout`` seconds if given: then
        returns False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0001
        while not self._cache.add(self._key, b"", expire=self._expire, tag=self._tag):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.005)
        return True

    def release(self) -> bool:
        """Releases the lock; False if it was already gone (expired or removed: the
        lock was lost)."""
        return self._cache.delete(self._key)

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._key in self._cache

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.release()
        return False


class _Transaction:
    """Context manager of ``transact()``: commits when the block ends normally, rolls
    back when it raises. Nested blocks are savepoints."""

    __slots__ = ("_store", "_key", "_serial")

    def __init__(self, store: "_Store", key: Any = None):
        self._store = store
        self._key = key
        self._serial: Optional[int] = None

    def __enter__(self) -> "_Store":
        n = self._store._native
        self._serial = n.begin() if self._key is None else n.begin(self._key)
        return self._store

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        serial, self._serial = self._serial, None
        if serial is not None:
            self._store._native.end(serial, exc_type is None)
        return False


class _Store:
    """What every store type shares. Not instantiated directly."""

    _kind = ""

    def _open(
        self,
        kind: str,
        directory: Any,
        serializer: Optional[Serializer],
        timeout: Optional[float],
        max_size: Optional[int] = None,
        shards: Optional[int] = None,
        reopen_kwargs: Optional[dict] = None,
        file_threshold: int = _FILE_THRESHOLD,
    ) -> None:
        if serializer is not None and not (
            hasattr(serializer, "name") and hasattr(serializer, "dumps") and hasattr(serializer, "loads")
        ):
            raise TypeError("serializer must have name, dumps and loads")
        directory = os.fspath(directory)
        if not isinstance(directory, str):
            directory = os.fsdecode(directory)
        timeout = 600.0 if timeout is None else float(timeout)
        if not kind.startswith("fanout") and os.path.exists(os.path.join(directory, "sciqlop-fanout.toml")):
            raise ValueError(
                f"{directory} holds a fanout store, not a single store: open it with "
                f"Fanout{type(self).__name__}"
            )
        n = _NativeStore(kind, directory, 0, shards, timeout, file_threshold)
        self._native = n
        self._directory = directory
        self._timeout = timeout
        # Bound methods, looked up once: the hot paths call these directly.
        self._nget = n.get
        self._nset = n.set
        self._ncontains = n.contains
        self._ndelete = n.delete
        self._serializer = self._resolve_serializer(serializer)
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        # The engine pickles large bytes values itself (same bytes as pickle.dumps(v,
        # 5), framed without the GIL) and returns such values decoded, as (data,).
        ser = self._serializer
        self._pickle_bytes = type(ser) in (PickleSerializer, PickleOOBSerializer) and getattr(
            ser, "protocol", 5
        ) == 5
        n.pickle_bytes = self._pickle_bytes
        if n.get_meta(_META_KEYS) is None:
            n.set_meta(_META_KEYS, _KEY_ENCODING)
        if kind.endswith("cache"):
            self._resolve_max_size(max_size)
        self._reopen_kwargs = dict(reopen_kwargs or {}, directory=directory, timeout=timeout)
        self._reopen_kwargs["serializer"] = serializer
        _open_stores[id(self)] = self

    def _resolve_serializer(self, requested: Optional[Serializer]) -> Serializer:
        n = self._native
        recorded = n.get_meta(_META_SERIALIZER)
        if requested is None:
            if recorded is not None:
                return get_serializer_by_name(recorded)
            requested = PickleSerializer()
        elif recorded not in (None, requested.name) and (recorded, requested.name) not in SERIALIZER_UPGRADES:
            raise ValueError(
                f"{self._directory} was written with the serializer {recorded!r}, "
                f"not {requested.name!r}: open it with that serializer"
            )
        if recorded is None:
            n.set_meta(_META_SERIALIZER, requested.name)
        return requested

    def _resolve_max_size(self, requested: Optional[int]) -> None:
        n = self._native
        if requested is None:
            recorded = n.get_meta(_META_MAX_SIZE)
            requested = int(recorded) if recorded is not None else 0
        else:
            requested = int(requested)
            if requested < 0:
                raise ValueError(f"max_size must be >= 0, not {requested}")
            if n.get_meta(_META_MAX_SIZE) != str(requested):
                n.set_meta(_META_MAX_SIZE, str(requested))
        if requested != n.max_size():
            n.set_max_size(requested)

    # -- values ---------------------------------------------------------------------

    def _encode(self, key: Any, value: Any) -> Any:
        if type(value) is int and _I64_MIN <= value <= _I64_MAX:
            return value
        try:
            return self._dumps(value)
        except Exception as e:
            raise TypeError(
                f"cannot serialize the value of key {key!r} with {self._serializer.name}: {e}"
            ) from e

    def _decode(self, stored: Any) -> Any:
        t = type(stored)
        if t is bytes:
            return self._loads(stored)
        if t is int:
            return stored
        return stored[0]  # a large bytes value the engine unpickled

    # -- the common API ---------------------------------------------------------------

    @property
    def serializer(self) -> Serializer:
        """The serializer in use (recorded in the store when it was created)."""
        return self._serializer

    @property
    def directory(self) -> str:
        """The store's directory (as diskcache's ``directory``)."""
        return self._directory

    @property
    def timeout(self) -> float:
        """Longest wait, in seconds, for a lock another writer holds."""
        return self._timeout

    def path(self) -> str:
        """The store's directory."""
        return self._native.path()

    def get_raw(self, key: Any, default: Any = None) -> Any:
        """The stored bytes of ``key`` as they are, without the serializer (a counter
        as its ASCII decimal, e.g. ``b"42"``), or ``default``: what the Rust API's
        ``get`` and ``sqcache get`` return."""
        v = self._native.get_raw(key if type(key) is str else _encode_key(key))
        return default if v is None else v

    def set_raw(self, key: Any, data: bytes, expire: Expire = None, tag: Optional[str] = None) -> bool:
        """Stores ``data`` (bytes) as it is, without the serializer, for programs that
        read the store through the Rust API or ``sqcache``. Note that ``get`` reads a
        canonical ASCII decimal (``b"42"``) as the int 42, and other bytes through the
        serializer: read raw entries back with :meth:`get_raw`."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"set_raw stores bytes, not {type(data).__name__}")
            data = bytes(data)
        k = key if type(key) is str else _encode_key(key)
        if expire is None and tag is None:
            self._nset(k, data)
        else:
            self._nset(k, data, _seconds(expire), _tag(tag))
        return True

    def add(self, key: Any, value: Any, expire: Expire = None, read: bool = False,
            tag: Optional[str] = None, retry: bool = False) -> bool:
        """Stores ``value`` only if ``key`` is absent (or expired), atomically across
        threads and processes; returns whether it stored."""
        if read:
            raise NotImplementedError("read=True (file handles) is not supported")
        k = key if type(key) is str else _encode_key(key)
        return self._native.add(k, self._encode(key, value), _seconds(expire), _tag(tag))

    def delete(self, key: Any, retry: bool = False) -> bool:
        """Removes ``key``; returns whether it was there."""
        return self._ndelete(key if type(key) is str else _encode_key(key))

    def exists(self, key: Any) -> bool:
        """Whether ``key`` holds a live entry."""
        return self._ncontains(key if type(key) is str else _encode_key(key))

    def incr(self, key: Any, delta: int = 1, default: int = 0, retry: bool = False) -> Any:
        """Adds ``delta`` to the number under ``key`` (``default`` when absent) and
        returns the new value, atomically across threads and processes.

        Ints are stored as the engine's counters, which the Rust API, the ``sqcache``
        CLI and plugins increment too. A value that is not an int counter (a float, an
        int beyond 64 bits) is read, added to and written back in a transaction.
        """
        k = key if type(key) is str else _encode_key(key)
        if type(delta) is int and type(default) is int:
            try:
                return self._native.incr(k, delta, default)
            except (NotACounter, OverflowError):
                pass
        with _Transaction(self, k if self._native.shard_count() > 1 else None):
            value = self.get(key, default)
            new = value + delta
            self.set(key, new)
        return new

    def decr(self, key: Any, delta: int = 1, default: int = 0, retry: bool = False) -> Any:
        """Subtracts ``delta`` from the number under ``key`` (``default - delta`` when
        absent); see :meth:`incr`."""
        return self.incr(key, -delta, default, retry)

    def clear(self, retry: bool = False) -> int:
        """Removes every entry; returns how many."""
        return self._native.clear()

    def check(self, fix: bool = False, retry: bool = False) -> CheckResult:
        """Verifies the store: SQLite integrity, value files without rows, rows without
        (intact) files, recorded sizes, maintained totals. With ``fix=True`` repairs
        what it found. Returns a :class:`CheckResult`."""
        return CheckResult(**self._native.check(bool(fix)))

    def count(self) -> int:
        """Number of live entries (as ``len``)."""
        return self._native.len()

    def size(self) -> int:
        """Bytes of stored values."""
        return self._native.size()

    def volume(self) -> int:
        """Bytes on disk: the database, its WAL and the value files."""
        return self._native.volume()

    def namespace(self, name: str) -> "_Store":
        """A view of the namespace ``name`` of the same store, created if needed: an
        independent key space with its own entries, ``len``, ``size``, keys, tags and
        ``clear``, sharing the store's connections, serializer, ``max_size`` (and LRU
        eviction across namespaces), metadata and statistics. ``""`` is the default
        namespace, the one the store opens on. It is a store of the same type, closed on
        its own. A WebAssembly plugin's store ``s`` (``sciqlop-cache-host``) is the
        namespace ``s`` of the plugin's cache. Not available for fanouts yet."""
        if type(name) is not str:
            raise TypeError(f"a namespace name is a str, not {type(name).__name__}")
        n = self._native.namespace(name)
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._native = n
        view._nget = n.get
        view._nset = n.set
        view._ncontains = n.contains
        view._ndelete = n.delete
        view._namespace = name
        _open_stores[id(view)] = view
        return view

    def close(self) -> bool:
        """Closes the store; any later call raises ``RuntimeError``. Returns whether it
        was open. Stores still open are closed when the interpreter exits."""
        _open_stores.pop(id(self), None)
        return self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def keys(self) -> list:
        """Every key, in the byte order of the stored keys (encoded non-str keys
        first), as a list."""
        return [k if k[:1] != "\0" else _decode_key(k) for k in self._native.keys()]

    def iterkeys(self) -> Iterator[Any]:
        """Iterates over the keys a page at a time, in the order of :meth:`keys`."""
        page_size = 256
        page = self._native.keys_page(None, page_size)
        while True:
            for k in page:
                yield k if k[:1] != "\0" else _decode_key(k)
            if len(page) < page_size:
                return
            page = self._native.keys_page(page[-1], page_size)

    def transact(self, *args: Any, retry: bool = False) -> _Transaction:
        """A context manager running the block in one transaction: it commits when
        the block ends, and rolls back when it raises. Everything the thread does on
        the store inside joins it; other threads and processes see nothing until the
        commit (their writes wait for it). Nested blocks are savepoints."""
        return _Transaction(self)

    def __getitem__(self, key: Any) -> Any:
        v = self._nget(key if type(key) is str else _encode_key(key))
        if v is None:
            raise KeyError(key)
        t = type(v)
        if t is bytes:
            return self._loads(v)
        return v if t is int else v[0]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self._ndelete(key if type(key) is str else _encode_key(key)):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self._ncontains(key if type(key) is str else _encode_key(key))

    def __iter__(self) -> Iterator[Any]:
        return self.iterkeys()

    def __len__(self) -> int:
        return self._native.len()

    def __enter__(self) -> "_Store":
        return self

    def __exit__(self, *exc: Any) -> bool:
        # As the original: leaving a `with` block does not close the store.
        return False

    def __reduce__(self) -> Any:
        # Pickling a store (e.g. to send it to a multiprocessing worker) reopens the
        # same directory on the other side.
        return (_reopen, (type(self), self._reopen_kwargs, getattr(self, "_namespace", None)))

    def __repr__(self) -> str:
        if self.closed:
            return f"{type(self).__name__}({self._directory!r}, closed)"
        return f"{type(self).__name__}({self._directory!r}, count={len(self)})"


class _CacheMethods(_Store):
    """Methods of Cache and FanoutCache (expiry, tags, eviction, stats, memoize)."""

    def set(self, key: Any, value: Any, expire: Expire = None, read: bool = False,
            tag: Optional[str] = None, retry: bool = False) -> bool:
        """Stores ``value`` under ``key``, replacing any previous value, expiry and tag.

        ``expire``: lifetime in seconds (int/float) or a ``timedelta``; None never
        expires. ``tag``: a str for :meth:`evict_tag`. Returns True, like diskcache.
        """
        if read:
            raise NotImplementedError("read=True (file handles) is not supported")
        k = key if type(key) is str else _encode_key(key)
        t = type(value)
        if t is bytes and self._pickle_bytes and len(value) >= _PICKLE_BYTES_MIN:
            self._nset(k, value, _seconds(expire), _tag(tag), True)
            return True
        if t is int and _I64_MIN <= value <= _I64_MAX:
            v = value
        else:
            try:
                v = self._dumps(value)
            except Exception as e:
                raise TypeError(
                    f"cannot serialize the value of key {key!r} with {self._serializer.name}: {e}"
                ) from e
        if expire is None and tag is None:
            self._nset(k, v)
        else:
            self._nset(k, v, _seconds(expire), _tag(tag))
        return True

    def get(self, key: Any, default: Any = None, read: bool = False, expire_time: bool = False,
            tag: bool = False, retry: bool = False) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired.

        With ``expire_time=True`` and/or ``tag=True`` returns ``(value, expire_time)``,
        ``(value, tag)`` or ``(value, expire_time, tag)``, like diskcache;
        ``expire_time`` is Unix seconds (float, microsecond precision) or None. A miss
        gives ``(default, None[, None])``.
        """
        k = key if type(key) is str else _encode_key(key)
        if read or expire_time or tag:
            if read:
                raise NotImplementedError("read=True (file handles) is not supported")
            return self._with_meta(self._native.get_entry(k), default, expire_time, tag)
        v = self._nget(k)
        if v is None:
            return default
        t = type(v)
        if t is bytes:
            return self._loads(v)
        return v if t is int else v[0]

    def _with_meta(self, entry: Any, default: Any, expire_time: bool, tag: bool) -> tuple:
        if entry is None:
            value, exp, t = default, None, None
        else:
            stored, exp, t = entry
            value = self._decode(stored)
        if expire_time and tag:
            return value, exp, t
        if expire_time:
            return value, exp
        return value, t

    def pop(self, key: Any, default: Any = None, expire_time: bool = False, tag: bool = False,
            retry: bool = False) -> Any:
        """Removes ``key`` and returns its value (or ``default``); ``expire_time`` and
        ``tag`` as in :meth:`get`."""
        k = key if type(key) is str else _encode_key(key)
        if expire_time or tag:
            return self._with_meta(self._native.pop_entry(k), default, expire_time, tag)
        v = self._native.pop(k)
        if v is None:
            return default
        return self._decode(v)

    def touch(self, key: Any, expire: Expire = None, retry: bool = False) -> bool:
        """Gives a live entry a new lifetime (None: never expires); returns whether the
        key was live. An expired entry is not brought back."""
        return self._native.touch(key if type(key) is str else _encode_key(key), _seconds(expire))

    def set_many(self, items: Union[dict, Iterable[tuple]], expire: Expire = None,
                 tag: Optional[str] = None) -> None:
        """Stores several entries in one transaction (per shard for a fanout), all with
        the same ``expire`` and ``tag``. Faster than one ``set`` each."""
        pairs = items.items() if isinstance(items, dict) else items
        enc = [
            (k if type(k) is str else _encode_key(k), self._encode(k, v)) for k, v in pairs
        ]
        self._native.set_many(enc, _seconds(expire), _tag(tag))

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list:
        """The values of several keys, in order (``default`` for each miss)."""
        stored = self._native.get_many([k if type(k) is str else _encode_key(k) for k in keys])
        return [default if v is None else self._decode(v) for v in stored]

    def expire(self, retry: bool = False) -> int:
        """Removes every expired entry now (the background thread also does it);
        returns how many."""
        return self._native.expire()

    def evict(self, retry: bool = False) -> int:
        """Evicts least-recently-used entries down to 90 % of ``max_size`` if the
        values exceed it; returns how many. (Not diskcache's ``evict(tag)``: that is
        :meth:`evict_tag`.)"""
        return self._native.evict()

    def evict_tag(self, tag: str, retry: bool = False) -> int:
        """Removes every entry tagged ``tag``; returns how many."""
        if type(tag) is not str:
            raise TypeError(f"tag must be a str, not {type(tag).__name__}")
        return self._native.evict_tag(tag)

    @property
    def max_size(self) -> int:
        """Bound on the bytes of values (0: unbounded); recorded in the store, so a
        reopen without ``max_size`` keeps it. Assign to change (and record) it."""
        return self._native.max_size()

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._resolve_max_size(int(value))

    size_limit = max_size

    def stats(self, enable: bool = True, reset: bool = False) -> dict:
        """``{"hits", "misses"}`` of reads through this instance."""
        hits, misses = self._native.stats()
        if reset:
            self._native.reset_stats()
        return {"hits": hits, "misses": misses}

    def reset_stats(self) -> None:
        """Resets hits and misses to zero."""
        self._native.reset_stats()

    def lock(self, key: Any, expire: Expire = None, tag: Optional[str] = None) -> Lock:
        """A cross-process :class:`Lock` on ``key``; ``expire`` bounds how long a
        crashed holder keeps it."""
        return Lock(self, key, expire=expire, tag=tag)

    def _memoize_key(self, base: str, args: tuple, kwargs: dict, typed: bool) -> str:
        data: tuple = (args, tuple(sorted(kwargs.items())))
        if typed:
            data += (tuple(type(a) for a in args), tuple(type(v) for _, v in sorted(kwargs.items())))
        try:
            blob = pickle.dumps(data, protocol=4)
        except Exception as e:
            raise TypeError(f"memoize: the arguments of {base} cannot be hashed: {e}") from e
        return f"{base}:{hashlib.sha256(blob).hexdigest()}"

    def memoize(self, expire: Expire = None, tag: Optional[str] = None, typed: bool = False,
                version_aware: bool = False) -> Callable[[Callable], Callable]:
        """Decorator caching a function's results in this store.

        The key is the function's module and qualified name (plus a hash of its
        bytecode with ``version_aware=True``, so editing the function drops its old
        results) and a hash of the arguments (plus their types with ``typed=True``).
        ``None`` results are cached too. The wrapper has ``__cache_key__(*args,
        **kwargs)`` and ``__wrapped__``.

        Example::

            @cache.memoize(expire=300, tag="compute")
            def expensive(x, y):
                return x + y
        """
        if callable(expire) and tag is None and not typed:
            raise TypeError("memoize must be called: use @cache.memoize(), not @cache.memoize")

        def decorator(func: Callable) -> Callable:
            base = f"{func.__module__}.{func.__qualname__}"
            if version_aware:
                code = getattr(func, "__code__", None)
                blob = code.co_code + repr(code.co_consts).encode() if code else repr(func).encode()
                base += "@" + hashlib.sha256(blob).hexdigest()[:16]

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                key = self._memoize_key(base, args, kwargs, typed)
                result = self.get(key, _MISSING)
                if result is _MISSING:
                    result = func(*args, **kwargs)
                    self.set(key, result, expire=expire, tag=tag)
                return result

            wrapper.__cache_key__ = lambda *a, **kw: self._memoize_key(base, a, kw, typed)  # type: ignore[attr-defined]
            wrapper.__wrapped__ = func  # type: ignore[attr-defined]
            return wrapper

        return decorator


class _IndexMethods(_Store):
    """Methods of Index and FanoutIndex (a persistent mutable mapping)."""

    def set(self, key: Any, value: Any, retry: bool = False) -> bool:
        """Stores ``value`` under ``key``."""
        k = key if type(key) is str else _encode_key(key)
        t = type(value)
        if t is int and _I64_MIN <= value <= _I64_MAX:
            self._nset(k, value)
        elif t is bytes and self._pickle_bytes and len(value) >= _PICKLE_BYTES_MIN:
            self._nset(k, value, None, None, True)
        else:
            self._nset(k, self._encode(key, value))
        return True

    def get(self, key: Any, default: Any = None, retry: bool = False) -> Any:
        """The value of ``key``, or ``default``."""
        v = self._nget(key if type(key) is str else _encode_key(key))
        if v is None:
            return default
        t = type(v)
        if t is bytes:
            return self._loads(v)
        return v if t is int else v[0]

    def pop(self, key: Any, default: Any = _MISSING, retry: bool = False) -> Any:
        """Removes ``key`` and returns its value; ``KeyError`` when missing unless a
        ``default`` is given."""
        v = self._native.pop(key if type(key) is str else _encode_key(key))
        if v is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._decode(v)

    def set_many(self, items: Union[dict, Iterable[tuple]]) -> None:
        """Stores several entries in one transaction (per shard for a fanout)."""
        pairs = items.items() if isinstance(items, dict) else items
        enc = [(k if type(k) is str else _encode_key(k), self._encode(k, v)) for k, v in pairs]
        self._native.set_many(enc)

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list:
        """The values of several keys, in order (``default`` for each miss)."""
        stored = self._native.get_many([k if type(k) is str else _encode_key(k) for k in keys])
        return [default if v is None else self._decode(v) for v in stored]

    update = MutableMapping.update
    setdefault = MutableMapping.setdefault

    def items(self) -> ItemsView:
        """A view of the ``(key, value)`` pairs, in key order."""
        return ItemsView(self)  # type: ignore[arg-type]

    def values(self) -> ValuesView:
        """A view of the values, in key order."""
        return ValuesView(self)  # type: ignore[arg-type]

    def peekitem(self, last: bool = True) -> tuple:
        """The last (or first) ``(key, value)`` in key order (diskcache: insertion
        order); ``KeyError`` when empty."""
        keys = self._native.keys()
        while keys:
            stored = keys.pop() if last else keys.pop(0)
            v = self._nget(stored if stored[:1] != "\0" else stored.encode())
            if v is not None:
                return _decode_key(stored), self._decode(v)
        raise KeyError("dictionary is empty")

    def popitem(self, last: bool = True) -> tuple:
        """Removes and returns the last (or first) ``(key, value)`` in key order;
        ``KeyError`` when empty."""
        k, v = self.peekitem(last)
        del self[k]
        return k, v

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, MutableMapping) and not isinstance(other, _IndexMethods):
            return NotImplemented
        return len(self) == len(other) and all(
            k in other and other[k] == v for k, v in self.items()
        )

    __hash__ = None  # type: ignore[assignment]


class Cache(_CacheMethods):
    """A persistent cache in one directory: expiry, tags, LRU eviction by
    ``max_size``, counters, transactions, cross-process locks, memoize.

    ``Cache(directory=".cache/", max_size=<recorded or 0>, serializer=<recorded or
    PickleSerializer()>, *, timeout=600)``. diskcache's ``size_limit`` and
    ``cache_path`` aliases and its tuning settings are accepted (the settings are
    ignored); ``disk=`` and unknown settings are ``TypeError``. Thread-safe, and
    several processes may open the same directory.
    """

    def __init__(self, directory: Any = None, max_size: Optional[int] = None,
                 serializer: Optional[Serializer] = None, *, cache_path: Any = None,
                 size_limit: Optional[int] = None, timeout: Optional[float] = None,
                 disk: Any = None, **settings: Any) -> None:
        threshold = _file_threshold(settings)
        _reject_settings("Cache", disk, settings)
        path = directory if directory is not None else (cache_path if cache_path is not None else ".cache/")
        if size_limit is not None:
            max_size = size_limit
        self._open("cache", path, serializer, timeout, max_size=max_size, file_threshold=threshold,
                   reopen_kwargs={"disk_min_file_size": threshold})


class FanoutCache(_CacheMethods):
    """A cache sharded over ``shard_count`` stores (subdirectories) for concurrent
    writers. ``max_size`` bounds the whole fanout. The shard count is fixed when the
    directory is created. ``transact(key)`` runs on the shard of ``key``."""

    def __init__(self, directory: Any = None, shard_count: Optional[int] = None,
                 max_size: Optional[int] = None, serializer: Optional[Serializer] = None, *,
                 cache_path: Any = None, shards: Optional[int] = None,
                 size_limit: Optional[int] = None, timeout: Optional[float] = None,
                 disk: Any = None, **settings: Any) -> None:
        threshold = _file_threshold(settings)
        _reject_settings("FanoutCache", disk, settings)
        path = directory if directory is not None else (cache_path if cache_path is not None else ".cache/")
        count = shards if shards is not None else shard_count
        if size_limit is not None:
            max_size = size_limit
        self._open("fanout-cache", path, serializer, timeout, max_size=max_size, shards=count,
                   file_threshold=threshold, reopen_kwargs={"disk_min_file_size": threshold})

    def shard_count(self) -> int:
        """The number of shards."""
        return self._native.shard_count()

    def transact(self, key: Any, retry: bool = False) -> _Transaction:  # type: ignore[override]
        """A transaction on the shard of ``key`` (there are no cross-shard
        transactions); see :meth:`Cache.transact`."""
        return _Transaction(self, key if type(key) is str else _encode_key(key))


class Index(_IndexMethods):
    """A persistent mutable mapping in one directory (no expiry, eviction, tags or
    stats): ``Index(directory=".index/", *mappings, serializer=None, **items)``, the
    initial items as in ``dict(...)``."""

    def __init__(self, directory: Any = None, *mappings: Any, serializer: Optional[Serializer] = None,
                 path: Any = None, timeout: Optional[float] = None, **items: Any) -> None:
        p = directory if directory is not None else (path if path is not None else ".index/")
        self._open("index", p, serializer, timeout)
        for m in mappings:
            self.update(m)
        if items:
            self.update(items)


class FanoutIndex(_IndexMethods):
    """An :class:`Index` sharded over ``shard_count`` stores;
    ``transact(key)`` runs on the shard of ``key``."""

    def __init__(self, directory: Any = None, *mappings: Any, shard_count: Optional[int] = None,
                 serializer: Optional[Serializer] = None, path: Any = None,
                 shards: Optional[int] = None, timeout: Optional[float] = None, **items: Any) -> None:
        p = directory if directory is not None else (path if path is not None else ".index/")
        count = shards if shards is not None else shard_count
        self._open("fanout-index", p, serializer, timeout, shards=count)
        for m in mappings:
            self.update(m)
        if items:
            self.update(items)

    def shard_count(self) -> int:
        """The number of shards."""
        return self._native.shard_count()

    def transact(self, key: Any, retry: bool = False) -> _Transaction:  # type: ignore[override]
        """A transaction on the shard of ``key``."""
        return _Transaction(self, key if type(key) is str else _encode_key(key))


MutableMapping.register(Index)
MutableMapping.register(FanoutIndex)
