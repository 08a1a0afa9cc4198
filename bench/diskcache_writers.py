#!/usr/bin/env python3
"""diskcache side of `sqbench writers`: N processes setting 100-byte values on one
diskcache.Cache (default settings), as bench/src/writers.rs does on ours.

Usage: diskcache_writers.py WORK_DIR WORKERS(comma-separated) OPS
Prints one line per worker count: `<workers> <set wall ns> <set latency ns>...`.
"""

import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diskcache_bench import open_impl, proc_worker, remove_store  # noqa: E402


def main():
    work, workers, ops = sys.argv[1], [int(w) for w in sys.argv[2].split(",")], int(sys.argv[3])
    ctx = mp.get_context("fork")
    for w in workers:
        d = os.path.join(work, f"writers-procs-{w}")
        open_impl("diskcache", d).close()
        barrier = ctx.Barrier(w)
        pipes = [ctx.Pipe(duplex=False) for _ in range(w)]
        procs = [
            ctx.Process(target=proc_worker, args=("diskcache", d, i, ops, barrier, pipes[i][1]))
            for i in range(w)
        ]
        for p in procs:
            p.start()
        results = [rx.recv() for rx, _ in pipes]
        for p in procs:
            p.join()
            assert p.exitcode == 0, f"worker exited with {p.exitcode}"
        wall = max(r[0] for r in results)
        lat = [x for r in results for x in r[1]]
        print(w, wall, " ".join(map(str, lat)), flush=True)
        remove_store(d)


if __name__ == "__main__":
    main()
