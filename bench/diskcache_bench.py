#!/usr/bin/env python3
"""diskcache driver of sqbench: the same workloads as bench/src/workloads.rs, written
to the same CSV schema (impl,workload,param,op,n,mean_us,p50_us,p99_us,mb_per_s).

sqbench runs it from a venv with `diskcache==5.6.3` and passes the plan (sizes and
operation counts) on the command line, so both sides always measure the same thing.
Implementations: `diskcache` (diskcache.Cache, default settings) and, for the
concurrency workload, `diskcache-fanout` (diskcache.FanoutCache, 8 shards; its 10 ms
default timeout is raised to 60 s so that a busy shard waits instead of silently
dropping the write).
"""

import argparse
import multiprocessing as mp
import os
import random
import shutil
import sys
import threading
import time

import diskcache

VALUE_LEN = 100
FILL_CHUNK = 10_000
HEADER = "impl,workload,param,op,n,mean_us,p50_us,p99_us,mb_per_s"
now_ns = time.perf_counter_ns


def value_of(i):
    return b"\x5a" * (VALUE_LEN - 8) + (i & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def summarize(ns):
    ns = sorted(ns)
    n = len(ns)
    mean = sum(ns) / n / 1000.0
    pct = lambda p: ns[min(int(n * p), n - 1)] / 1000.0  # noqa: E731
    return mean, pct(0.5), pct(0.99)


class Out:
    def __init__(self, path):
        self.f = open(path, "w")
        self.f.write(HEADER + "\n")
        self.f.flush()

    def row(self, imp, workload, param, op, ns, bytes_per_op=0, n=None, mb=None):
        mean, p50, p99 = summarize(ns)
        if mb is None and bytes_per_op:
            mb = bytes_per_op / mean
        line = (
            f"{imp},{workload},{param},{op},{len(ns) if n is None else n},"
            f"{mean:.3f},{p50:.3f},{p99:.3f},{'' if mb is None else f'{mb:.3f}'}"
        )
        print("  " + line, file=sys.stderr, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def time_each(n, f):
    ns = [0] * n
    for i in range(n):
        t = now_ns()
        f(i)
        ns[i] = now_ns() - t
    return ns


def fill(cache, start, end):
    while start < end:
        stop = min(start + FILL_CHUNK, end)
        with cache.transact():
            for i in range(start, stop):
                cache.set(f"key/{i:08}", value_of(i))
        start = stop


# diskcache culls entries beyond size_limit (1 GB by default): at 1e7 entries it would
# drop some, and it would not be the same workload as the others' (unbounded).
NO_LIMIT = 1 << 50


def remove_store(d):
    """As the Rust side's remove_store: remove, flush the file system, pause."""
    shutil.rmtree(d, ignore_errors=True)
    os.sync()
    time.sleep(0.5)


def open_cache(d):
    return diskcache.Cache(d, size_limit=NO_LIMIT)


def scaling(a, work, out):
    d = os.path.join(work, "scaling-diskcache")
    cache = open_cache(d)
    filled = 0
    ops = a.scaling_ops
    for n in a.scaling_sizes:
        t = time.perf_counter()
        fill(cache, filled, n)
        filled = n
        print(f"diskcache: filled to {n} entries in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        set_keys = [f"new/{i:08}" for i in range(ops)]
        values = [value_of(1 << 40 | i) for i in range(ops)]
        out.row("diskcache", "scaling", n, "set", time_each(ops, lambda i: cache.set(set_keys[i], values[i])))
        r = random.Random(n)
        hit_keys = [f"key/{r.randrange(n):08}" for _ in range(a.get_ops)]

        def hit(i):
            v = cache.get(hit_keys[i])
            assert v is not None and len(v) == VALUE_LEN, hit_keys[i]

        out.row("diskcache", "scaling", n, "get-hit", time_each(a.get_ops, hit))
        miss_keys = [f"miss/{i:08}" for i in range(a.get_ops)]

        def miss(i):
            assert cache.get(miss_keys[i]) is None

        out.row("diskcache", "scaling", n, "get-miss", time_each(a.get_ops, miss))

        def delete(i):
            assert cache.delete(set_keys[i])

        out.row("diskcache", "scaling", n, "delete", time_each(ops, delete))
    cache.close()
    remove_store(d)


def valuesize(a, work, out):
    d = os.path.join(work, "valuesize-diskcache")
    cache = open_cache(d)
    nkeys = 8
    for size, ops in a.value_sizes:
        base = bytes((i * 31 % 251) for i in range(min(size, 1 << 16)))
        value = bytearray((base * (size // len(base) + 1))[:size])
        keys = [f"v/{size}/{i}" for i in range(nkeys)]
        for k in keys:
            cache.set(k, bytes(value))
        stamp = min(8, size)

        # bytes(value) copies, as the Rust side's write does; both stamp each value.
        def put(i):
            value[:stamp] = i.to_bytes(8, "little")[:stamp]
            cache.set(keys[i % nkeys], bytes(value))

        out.row("diskcache", "valuesize", size, "set", time_each(ops, put), size)

        def get(i):
            v = cache.get(keys[i % nkeys])
            assert v is not None and len(v) == size

        out.row("diskcache", "valuesize", size, "get", time_each(ops, get), size)
        for k in keys:
            cache.delete(k)
    cache.close()
    remove_store(d)


def batch(a, work, out):
    d = os.path.join(work, "batch-diskcache")
    cache = open_cache(d)
    for b, rounds in a.batch_sizes:
        per_op = []
        for r in range(rounds):
            keys = [f"b/{b}/{r}/{i:06}" for i in range(b)]
            base = (b << 32) | (r << 16)
            t = now_ns()
            with cache.transact():
                for i, k in enumerate(keys):
                    cache.set(k, value_of(base + i))
            per_op.append((now_ns() - t) // b)
        out.row("diskcache", "batch", b, "batch-set", per_op, VALUE_LEN, n=rounds * b)
    cache.close()
    remove_store(d)


def open_impl(imp, d):
    if imp == "diskcache":
        return open_cache(d)
    return diskcache.FanoutCache(d, shards=8, timeout=60, size_limit=NO_LIMIT)


def worker_ops(cache, wid, ops):
    keys = [f"w{wid}/{i:06}" for i in range(ops)]
    values = [value_of(wid << 32 | i) for i in range(ops)]
    t = now_ns()
    set_ns = time_each(ops, lambda i: cache.set(keys[i], values[i]))
    set_wall = now_ns() - t
    r = random.Random(wid + 1)
    picks = [r.randrange(ops) for _ in range(ops)]

    def get(i):
        assert cache.get(keys[picks[i]]) is not None

    t = now_ns()
    get_ns = time_each(ops, get)
    return set_wall, set_ns, now_ns() - t, get_ns


def push_concurrency(out, imp, workload, w, results):
    set_wall = max(r[0] for r in results) or 1
    get_wall = max(r[2] for r in results) or 1
    set_ns = [x for r in results for x in r[1]]
    get_ns = [x for r in results for x in r[3]]
    out.row(imp, workload, w, "set", set_ns, mb=len(set_ns) * VALUE_LEN / (set_wall / 1000))
    out.row(imp, workload, w, "get", get_ns, mb=len(get_ns) * VALUE_LEN / (get_wall / 1000))


def proc_worker(imp, d, wid, ops, barrier, conn):
    cache = open_impl(imp, d)
    barrier.wait()
    conn.send(worker_ops(cache, wid, ops))
    conn.close()
    cache.close()


def concurrency(a, work, out):
    for imp in ("diskcache", "diskcache-fanout"):
        for w in a.workers:
            d = os.path.join(work, f"conc-threads-{imp}-{w}")
            cache = open_impl(imp, d)
            barrier = threading.Barrier(w)
            results = [None] * w

            def run(wid):
                barrier.wait()
                results[wid] = worker_ops(cache, wid, a.conc_ops)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(w)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(r is not None for r in results), "a thread failed"
            push_concurrency(out, imp, "concurrency-threads", w, results)
            cache.close()
            remove_store(d)
        ctx = mp.get_context("fork")
        for w in a.workers:
            d = os.path.join(work, f"conc-procs-{imp}-{w}")
            open_impl(imp, d).close()
            barrier = ctx.Barrier(w)
            pipes = [ctx.Pipe(duplex=False) for _ in range(w)]
            procs = [
                ctx.Process(target=proc_worker, args=(imp, d, i, a.conc_ops, barrier, pipes[i][1]))
                for i in range(w)
            ]
            for p in procs:
                p.start()
            results = [rx.recv() for rx, _ in pipes]
            for p in procs:
                p.join()
                assert p.exitcode == 0, f"worker exited with {p.exitcode}"
            push_concurrency(out, imp, "concurrency-procs", w, results)
            remove_store(d)


def pairs(s):
    return [tuple(int(x) for x in p.split(":")) for p in s.split(",") if p]


def ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", action="append", required=True,
                   choices=["scaling", "valuesize", "batch", "concurrency"])
    p.add_argument("--work-dir", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--scaling-sizes", type=ints, required=True)
    p.add_argument("--scaling-ops", type=int, required=True)
    p.add_argument("--get-ops", type=int, required=True)
    p.add_argument("--value-sizes", type=pairs, required=True)
    p.add_argument("--batch-sizes", type=pairs, required=True)
    p.add_argument("--workers", type=ints, required=True)
    p.add_argument("--conc-ops", type=int, required=True)
    a = p.parse_args()
    print(f"diskcache {diskcache.__version__}, Python {sys.version.split()[0]}", file=sys.stderr)
    out = Out(a.csv)
    os.makedirs(a.work_dir, exist_ok=True)
    for w in a.workload:
        {"scaling": scaling, "valuesize": valuesize, "batch": batch, "concurrency": concurrency}[w](
            a, a.work_dir, out
        )


if __name__ == "__main__":
    main()
