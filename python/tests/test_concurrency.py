"""Threads, processes, fork and crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pysciqlop_cache as sc
from conftest import open_store, run_py

WORKER = r"""
import sys, pysciqlop_cache as sc
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = getattr(sc, kind)(path)
for i in range(n):
    s.incr("counter")
    # A read-modify-write under the cross-process lock: lost updates show as a
    # total below 4 * n.
    with s.lock("guard", expire=30):
        s["plain"] = s.get("plain", 0) + 1
    if kind.startswith("Fanout"):
        with s.transact("tx-counter"):
            s["tx-counter"] = s.get("tx-counter", 0) + 1
    else:
        with s.transact():
            s["tx-counter"] = s.get("tx-counter", 0) + 1
print("done")
"""


@pytest.mark.parametrize("kind", ["Cache", "FanoutCache"])
def test_four_processes_incr_and_lock_without_lost_updates(tmp_path, kind):
    path = str(tmp_path / "s")
    open_store(kind, path).close()
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, kind, path, str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    s = getattr(sc, kind)(path)
    assert s["counter"] == 4 * n
    assert s["plain"] == 4 * n
    assert s["tx-counter"] == 4 * n
    assert s.check().ok


def test_threads_share_one_store(tmp_path):
    s = sc.Cache(str(tmp_path / "s"))
    errors = []

    def work(t):
        try:
            for i in range(300):
                s.incr("n")
                s[f"t{t}-{i}"] = i
                assert s[f"t{t}-{i}"] == i
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and s["n"] == 2400 and len(s) == 2401


def test_gil_is_released_while_the_engine_waits(tmp_path):
    """A thread whose write waits for another thread's open transaction does not hold
    the GIL: the owner can go on running Python, commit, and both finish. (With the
    GIL held in the engine, the owner could never run again: a deadlock.)"""
    s = sc.Cache(str(tmp_path / "s"))
    done = threading.Event()

    def writer():
        s["w"] = "written"  # waits for the main thread's transaction
        done.set()

    with s.transact():
        s["a"] = 1
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.2)
        ticks = 0
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            ticks += 1  # Python runs here while the writer sits in the engine
        assert ticks > 1000 and not done.is_set() and t.is_alive()
    t.join(10)
    assert done.is_set() and s["w"] == "written"


def test_two_reading_threads_progress_together(tmp_path):
    """While one thread reads a 64 MiB value (a long engine call), another thread's
    small reads keep completing: the GIL is free during the engine call. With the GIL
    held for the call, the other thread could not complete anything inside it (beyond
    the interpreter's 5 ms switch interval at its edges)."""
    s = sc.Cache(str(tmp_path / "s"))
    s.set_raw("big", b"x" * (64 << 20))
    s["small"] = 1
    windows, done_at = [], []
    stop = threading.Event()
    margin = 0.006  # above sys.getswitchinterval()

    def big_reader():
        for _ in range(4):
            t0 = time.perf_counter()
            s.get_raw("big")
            windows.append((t0, time.perf_counter()))
        stop.set()

    def small_reader():
        while not stop.is_set():
            s.get("small")
            done_at.append(time.perf_counter())

    threads = [threading.Thread(target=big_reader), threading.Thread(target=small_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    long_windows = [(a, b) for a, b in windows if b - a > 3 * margin]
    assert long_windows, f"the big reads were too quick to tell: {windows}"
    inside = sum(1 for t in done_at for a, b in long_windows if a + margin < t < b - margin)
    assert inside > 0, "no small read completed during a big read: the GIL was held"


def wait_child(pid, hung="a forked child deadlocked", within=60):
    """The exit code of forked child `pid`, failing with `hung` if it has not exited
    within `within` seconds (it is left running: the caller kills what it forked)."""
    deadline = time.monotonic() + within
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert time.monotonic() < deadline, hung
        time.sleep(0.01)


@pytest.mark.parametrize("kind", ["Cache", "FanoutIndex"])
def test_fork_child_uses_the_inherited_store(tmp_path, kind):
    s = open_store(kind, tmp_path / "s")
    s["parent"] = 1
    # Threads of the parent that used the store and are idle at fork time (calls still
    # running would be waited for by the fork handler; see also the test below).
    workers = [threading.Thread(target=lambda i=i: s.set(f"thread{i}", b"x" * 20000)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    time.sleep(0.2)
    pids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                s[f"child{i}"] = i
                assert s["parent"] == 1 and s["thread0"] == b"x" * 20000
                s.incr("forks")
                if kind == "Cache":
                    with s.transact():
                        s[f"tx{i}"] = i
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert wait_child(pid) == 0
    assert [s.get(f"child{i}") for i in range(3)] == [0, 1, 2]
    assert s["forks"] == 3
    assert s["parent"] == 1 and s.check().ok


def test_fork_while_another_thread_keeps_writing(tmp_path):
    """The engine's background thread is busiest when another thread keeps writing to a
    bounded cache (upkeep evicts, the WAL is checkpointed); the fork handler keeps it out
    of SQLite, so no child inherits one of SQLite's mutexes locked."""
    s = sc.Cache(str(tmp_path / "c"), 200_000)
    results = sc.Index(str(tmp_path / "results"))  # unbounded: nothing evicted
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            s.set(f"w{i % 500}", b"x" * 2000)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    pending = []  # forked and not yet reaped
    try:
        for i in range(20):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    s[f"child{i}"] = i  # the busy store works in the child
                    s.get("w1")
                    results[f"child{i}"] = i
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                os._exit(code)
            pending.append(pid)
        while pending:
            code = wait_child(pending[0])
            pending.pop(0)
            assert code == 0
    finally:
        stop.set()
        t.join()
        for pid in pending:  # none left behind if one hung
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    assert [results.get(f"child{i}") for i in range(20)] == list(range(20))


def test_fork_inside_a_transaction_is_a_clear_error_in_the_child(tmp_path):
    """SQLite's lock records are inherited by the child: a store whose transaction was
    open at fork time cannot be used there; it says so instead of waiting forever. Other
    stores of the process keep working in the child."""
    s = sc.Cache(str(tmp_path / "s"))
    other = sc.Index(str(tmp_path / "other"))
    with s.transact():
        s["in-parent-tx"] = 1
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                try:
                    s["child"] = "no"
                    code = 2
                except RuntimeError as e:
                    code = 0 if "forked" in str(e) else 3
                other["child"] = "ok"
            except BaseException:
                code = 4
            os._exit(code)
    assert wait_child(pid, hung="the child hung") == 0
    assert s["in-parent-tx"] == 1 and "child" not in s
    assert other["child"] == "ok"


def test_multiprocessing_pool_with_fork_and_spawn(tmp_path):
    code = r"""
import multiprocessing as mp, sys, pysciqlop_cache as sc
def work(args):
    store, i = args
    store[f"k{i}"] = i
    return store.incr("n")
if __name__ == "__main__":
    for method in ("fork", "spawn"):
        c = sc.Cache(sys.argv[1] + "/" + method)
        with mp.get_context(method).Pool(2) as p:
            p.map(work, [(c, i) for i in range(20)])
        assert c["n"] == 20 and sorted(c)[:3] == ["k0", "k1", "k10"], method
    print("ok")
"""
    script = tmp_path / "mp.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


KILLED_WRITER = r"""
import sys, pysciqlop_cache as sc
c = sc.Cache(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    with c.transact():
        c[f"small{i % 50}"] = b"s" * 100
        c[f"big{i % 20}"] = b"B" * (20000 + i % 7)
        c.incr("n")
    i += 1
"""


def test_sigkill_during_writes_leaves_a_sound_store(tmp_path):
    path = str(tmp_path / "s")
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, path], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.4)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        c = sc.Cache(path)
        r = c.check(fix=True)
        assert r.ok, r
        assert c.check().ok and c.check().orphaned_files == 0
        n = c["n"]
        assert n > 0
        # Each transaction was all or nothing: every big value is intact.
        for k in c:
            if k.startswith("big"):
                assert set(c[k]) == {ord("B")}
        c.close()
