"""Migrate a diskcache ``Cache``, ``FanoutCache`` or ``Index``, or a store of the
original sciqlop-cache (``pysciqlop-cache`` 0.1 to 0.3: ``Cache``, ``Index``,
``FanoutCache``, ``FanoutIndex``), into sciqlop-cache. The source's format is detected.

Usage::

    python -m pysciqlop_cache.migrate /old/diskcache /new/sciqlop-cache
    python -m pysciqlop_cache.migrate --type index /old/index /new/index
    python -m pysciqlop_cache.migrate --drop /old/diskcache /new/sciqlop-cache

or, as a library::

    from pysciqlop_cache.migrate import migrate
    result = migrate("/old/cache", "/new/cache", drop=True)
    # {"migrated": 1234, "skipped": 0, "errors": 0, "elapsed_secs": 1.5}

The source is read directly from its SQLite database by the same Rust reader as the
``sqcache migrate`` command (neither diskcache nor the original is needed), entries in
ascending access order, so the destination's LRU order follows the source's. Keys keep
their type (str, bytes, int, float, and pickled keys such as tuples), values come back
equal to what diskcache returned (ints, floats, str, bytes, pickled objects; they are
written with the destination's serializer), the absolute expiry and the tag are kept
(a tag that is not a str is stored as its text). A FanoutCache source becomes a
FanoutCache with the same shard count (keys are re-routed). Expired entries and
entries that cannot be read or unpickled are skipped and counted; the source is left
untouched unless ``drop=True``, which removes each entry once it is committed in the
destination (only if it did not change meanwhile), so an interrupted run can be
re-run.

From the original, the destination is of the source's kind (an ``Index`` stays an
``Index``, a fanout a fanout with the same shard count) unless ``store_type`` or
``shard_count`` say otherwise, values are decoded with the serializer the original
recorded, and its ``max_size`` is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from typing import Any, Optional

from . import Cache, FanoutCache, FanoutIndex, Index, _Store, get_serializer_by_name
from ._native import DiskcacheReader

__all__ = ["migrate", "main"]


def _obj(kind: str, data: Any) -> Any:
    if kind == "pickle":
        return pickle.loads(data)
    return data


def _tag_text(kind: Optional[str], tag: Any) -> Optional[str]:
    if kind is None:
        return None
    if kind == "str":
        return tag
    if kind == "bytes":
        return tag.decode("utf-8")
    if kind == "float":
        return repr(tag)
    if kind == "pickle":
        return str(pickle.loads(tag))
    return str(tag)


def migrate(
    src_path: Any,
    dst_path: Any,
    drop: bool = False,
    store_type: Optional[str] = None,
    *,
    shard_count: Optional[int] = None,
    serializer: Any = None,
    batch_size: int = 1000,
    verbose: bool = True,
) -> dict:
    """Copies (with ``drop=True``: moves) the diskcache directory ``src_path`` into the
    sciqlop-cache store ``dst_path`` (created if needed).

    ``store_type``: ``"cache"`` (the default for diskcache; a FanoutCache when the source
    is one or ``shard_count`` is given) or ``"index"`` (an Index or FanoutIndex; expiry
    and tags are not kept there); from the original, the source's kind by default. ``serializer``: of a new destination (default pickle).
    Problems with single entries are printed to stderr (``verbose``) and counted.

    Returns ``{"migrated", "skipped", "errors", "elapsed_secs"}``.
    """
    if store_type not in (None, "cache", "index"):
        raise ValueError(f"store_type must be 'cache' or 'index', not {store_type!r}")
    start = time.monotonic()
    src_path, dst_path = os.fspath(src_path), os.fspath(dst_path)
    if os.path.isdir(src_path) and os.path.isdir(dst_path) and os.path.samefile(src_path, dst_path):
        raise ValueError(f"destination {dst_path} is the source directory")
    reader = DiskcacheReader(src_path, drop)
    if store_type is None:
        store_type = "index" if reader.is_index else "cache"
    # The original's values are what its serializer wrote (pickles are decoded below).
    source_ser = reader.serializer
    decode = None
    if source_ser not in (None, "pickle"):
        decode = get_serializer_by_name(source_ser).loads
    # An original store that recorded no serializer (written from C++, or a fanout of an
    # early release): its values are copied as stored, byte for byte, as sqcache does.
    verbatim = reader.format != "diskcache" and source_ser is None
    shards = shard_count if shard_count is not None else (reader.shard_count if reader.is_fanout else None)
    dst: _Store
    if store_type == "index":
        dst = FanoutIndex(dst_path, shard_count=shards, serializer=serializer) if shards else Index(dst_path, serializer=serializer)
    else:
        dst = FanoutCache(dst_path, shard_count=shards, serializer=serializer) if shards else Cache(dst_path, serializer=serializer)
    keep_meta = store_type == "cache"
    sharded = shards is not None

    def warn(msg: str) -> None:
        if verbose:
            print(f"migrate: {msg}", file=sys.stderr)

    migrated = skipped = errors = 0
    ids = reader.list()
    for at in range(0, len(ids), max(1, batch_size)):
        now = time.time()
        reads = reader.read_batch(ids[at : at + batch_size], now)
        written = []
        tx = None if sharded else dst.transact()
        if tx is not None:
            tx.__enter__()
        try:
            for r in reads:
                what = r[0]
                if what != "entry":
                    if what == "failed":
                        errors += 1
                        warn(f"entry {r[2]} not migrated: {r[3]}")
                    elif what == "unsupported":
                        skipped += 1
                        warn(f"entry {r[2]} skipped: {r[3]}")
                    elif what == "expired":
                        skipped += 1
                    continue  # vanished: deleted from the source meanwhile
                _, eid, kk, k, vk, v, expire_at, tk, t = r
                try:
                    key = _obj(kk, k)
                    value = decode(v) if decode is not None and vk == "bytes" else _obj(vk, v)
                    tag = _tag_text(tk, t)
                except Exception as e:
                    skipped += 1
                    warn(f"entry {k!r} skipped: it cannot be unpickled ({e})")
                    continue
                try:
                    if keep_meta:
                        expire = None
                        if expire_at is not None:
                            expire = expire_at - time.time()
                            if expire <= 0:
                                skipped += 1
                                continue
                        if verbatim and vk == "bytes":
                            dst.set_raw(key, value, expire=expire, tag=tag)
                        else:
                            dst.set(key, value, expire=expire, tag=tag)
                    elif verbatim and vk == "bytes":
                        dst.set_raw(key, value)
                    else:
                        dst.set(key, value)
                except Exception as e:
                    errors += 1
                    warn(f"entry {key!r} not migrated: {e}")
                    continue
                migrated += 1
                written.append(eid)
        except BaseException:
            if tx is not None:
                tx.__exit__(*sys.exc_info())
            raise
        if tx is not None:
            tx.__exit__(None, None, None)
        if drop and written:
            reader.remove(written)
    # The original's size bound, once everything is in (not during: it would evict).
    if reader.max_size and store_type == "cache" and not dst.max_size:
        dst.max_size = reader.max_size
    dst.close()
    return {
        "migrated": migrated,
        "skipped": skipped,
        "errors": errors,
        "elapsed_secs": round(time.monotonic() - start, 3),
    }


def main(argv: Optional[list] = None) -> int:
    """The command line: ``python -m pysciqlop_cache.migrate [--type index] [--drop]
    SRC DST``. Prints the result as JSON; exit status 1 when entries failed."""
    p = argparse.ArgumentParser(
        prog="python -m pysciqlop_cache.migrate",
        description="Migrate a diskcache Cache, FanoutCache or Index into sciqlop-cache.",
    )
    p.add_argument("src", help="the diskcache directory")
    p.add_argument("dst", help="the sciqlop-cache directory (created if needed)")
    p.add_argument("--type", dest="store_type", choices=["cache", "index"], default="cache",
                   help="destination kind (default: cache; FanoutCache sources stay sharded)")
    p.add_argument("--drop", action="store_true",
                   help="delete each entry from the source once it is copied")
    p.add_argument("--shards", type=int, default=None, help="make the destination a fanout with N shards")
    a = p.parse_args(argv)
    try:
        result = migrate(a.src, a.dst, drop=a.drop, store_type=a.store_type, shard_count=a.shards)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
