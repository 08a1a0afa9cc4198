"""One workload of the Python benchmark, for one implementation, in the current venv.

    python bench.py IMPL WORKLOAD DIR [--quick]

IMPL: ours | original | diskcache | diskcache-rs (the venv provides the package: ours
and the original share the import name pysciqlop_cache). Prints CSV rows
`impl,workload,op,entries,value_size,n,mean_us,p50_us,p99_us` on stdout. Driven by
scripts/bench-python.sh, which runs every implementation side by side.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from multiprocessing import get_context

IMPL, WORKLOAD, DIR = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = "--quick" in sys.argv
clock = time.perf_counter_ns


def open_cache(path: str):
    if IMPL in ("ours", "original"):
        from pysciqlop_cache import Cache

        return Cache(path)
    if IMPL == "diskcache":
        import diskcache

        # Unbounded, as the others (its 1 GB default would cull at 1e6 x 1 KiB).
        return diskcache.Cache(path, size_limit=2**62)
    if IMPL == "diskcache-rs":
        import diskcache_rs

        return diskcache_rs.Cache(path)
    raise SystemExit(f"unknown implementation {IMPL}")


def row(workload, op, entries, size, samples_ns):
    us = [s / 1000 for s in samples_ns]
    us.sort()
    p = lambda q: us[min(len(us) - 1, int(q * len(us)))]  # noqa: E731
    print(f"{IMPL},{workload},{op},{entries},{size},{len(us)},{statistics.fmean(us):.3f},{p(0.5):.3f},{p(0.99):.3f}",
          flush=True)


def fill(c, n, size, prefix="k"):
    """n entries of `size` random bytes, 1000 per transaction."""
    val = os.urandom(size)
    for start in range(0, n, 1000):
        with c.transact():
            for i in range(start, min(n, start + 1000)):
                c.set(f"{prefix}{i:08d}", val)


def timed(f, keys):
    out = []
    for k in keys:
        t0 = clock()
        f(k)
        out.append(clock() - t0)
    return out


def scaling():
    """100 B set (new keys) / get (hits) / get (misses) at 1e3 ... 1e6 entries."""
    sizes = [1000, 10_000] if QUICK else [1000, 10_000, 100_000, 1_000_000]
    samples = 300 if QUICK else 2000
    c = open_cache(DIR)
    have = 0
    val = os.urandom(100)
    rnd = random.Random(1)
    for n in sizes:
        if have < n:
            # grow to n entries
            for start in range(have, n, 1000):
                with c.transact():
                    for i in range(start, min(n, start + 1000)):
                        c.set(f"k{i:08d}", val)
            have = n
        time.sleep(0.2)  # let background upkeep settle
        hits = [f"k{rnd.randrange(n):08d}" for _ in range(samples)]
        misses = [f"miss{rnd.randrange(10**9):09d}" for _ in range(samples)]
        for k in hits[:100]:
            c.get(k)  # warm up
        row("scaling", "get", n, 100, timed(c.get, hits))
        row("scaling", "get-miss", n, 100, timed(c.get, misses))
        new = [f"new{n}-{i:06d}" for i in range(samples)]
        row("scaling", "set", n, 100, timed(lambda k: c.set(k, val), new))
        for k in new:
            c.delete(k)
    c.close()


def batched():
    """100 B sets, 1000 per transaction: per-op time."""
    c = open_cache(DIR)
    val = os.urandom(100)
    batches = 5 if QUICK else 20
    out = []
    for b in range(batches):
        keys = [f"b{b}-{i:05d}" for i in range(1000)]
        t0 = clock()
        with c.transact():
            for k in keys:
                c.set(k, val)
        out.append((clock() - t0) / 1000)
    row("batched", "batched-set", 1000, 100, out)
    if IMPL == "ours":
        out = []
        for b in range(batches):
            items = {f"m{b}-{i:05d}": val for i in range(1000)}
            t0 = clock()
            c.set_many(items)
            out.append((clock() - t0) / 1000)
        row("batched", "batched-set (set_many)", 1000, 100, out)
    c.close()


def valuesize():
    """16 KiB and 1 MiB set and get."""
    c = open_cache(DIR)
    for size, n in ((16 << 10, 100 if QUICK else 500), (1 << 20, 20 if QUICK else 100)):
        val = os.urandom(size)
        keys = [f"v{size}-{i:05d}" for i in range(n)]
        row("valuesize", "set", 0, size, timed(lambda k: c.set(k, val), keys))
        time.sleep(0.2)
        c.get(keys[0])
        row("valuesize", "get", 0, size, timed(c.get, keys))
    c.close()


def _worker(args):
    path, wid, n = args
    c = open_cache(path)
    val = os.urandom(100)
    rnd = random.Random(wid)
    sets, gets = [], []
    for i in range(n):
        k = f"p{wid}-{i:06d}"
        t0 = clock()
        c.set(k, val)
        sets.append(clock() - t0)
        k = f"p{rnd.randrange(4)}-{rnd.randrange(max(1, i)):06d}"
        t0 = clock()
        c.get(k)
        gets.append(clock() - t0)
    c.close()
    return sets, gets


def processes():
    """4 processes sharing one cache, each alternating a 100 B set and a get."""
    n = 300 if QUICK else 2000
    c = open_cache(DIR)
    c.close()
    with get_context("spawn").Pool(4) as pool:
        results = pool.map(_worker, [(DIR, w, n) for w in range(4)])
    row("processes", "set (4 procs)", 4, 100, [s for r in results for s in r[0]])
    row("processes", "get (4 procs)", 4, 100, [s for r in results for s in r[1]])


if __name__ == "__main__":
    {"scaling": scaling, "batched": batched, "valuesize": valuesize, "processes": processes}[WORKLOAD]()
