#!/usr/bin/env bash
# What the C++ wrapper adds over the Rust API, for 100 B get and set: the same workload
# (1000 keys of 100 B; GETS gets then SETS overwrites, on a fresh store) run by
# capi/examples/bench_rust.rs and capi/bench/bench.cpp (-O2, static library),
# alternately, ROUNDS times each in the same run; prints the median ns/op of each side
# and the ratio. The machine's load moves times by tens of percent, so it also counts
# the instructions of one get on each side with callgrind (deterministic): that ratio is
# the wrapper's cost.   Usage: scripts/bench-cpp.sh [ROUNDS [GETS [SETS]]]
set -euo pipefail
ROUNDS="${1:-9}"
GETS="${2:-100000}"
SETS="${3:-3000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sqc-bench-cpp.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
"$ROOT/scripts/build-cpp.sh" "$WORK/prefix" >/dev/null
cargo build -q --release --locked -p sciqlop-cache-capi --example bench_rust
TARGET="$("$ROOT/scripts/target-dir.sh")/release"
g++ -std=c++20 -O2 -DNDEBUG capi/bench/bench.cpp -I"$WORK/prefix/include" \
    "$WORK/prefix/lib/libsciqlop_cache.a" -lpthread -ldl -lm -o "$WORK/bench"
for r in $(seq "$ROUNDS"); do
    rm -rf "$WORK/r" "$WORK/c"
    "$TARGET/examples/bench_rust" "$WORK/r" "$GETS" "$SETS"
    "$WORK/bench" "$WORK/c" "$GETS" "$SETS"
done | tee "$WORK/raw" >/dev/null
[ -z "${BENCH_RAW:-}" ] || cp "$WORK/raw" "$BENCH_RAW"
python3 - "$WORK/raw" "$ROUNDS" "$GETS" "$SETS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, op, wall, cpu = line.split()
    runs.setdefault((side, op), []).append((float(wall), float(cpu)))
def med(side, op, i):
    return statistics.median(r[i] for r in runs[(side, op)])
print(f"100 B values, 1000 keys; {sys.argv[2]} rounds of {sys.argv[3]} gets and {sys.argv[4]} sets, alternating;")
print("median ns/op of the thread's CPU time (wall time in parentheses)")
print(f"{'op':<10}{'Rust API':>20}{'C++ wrapper':>20}{'ratio':>8}{'(wall)':>9}")
for op in ("get", "get_into", "set"):
    r = "get" if op == "get_into" else op
    rc, cc, rw, cw = med("rust", r, 1), med("cpp", op, 1), med("rust", r, 0), med("cpp", op, 0)
    label = op if op != "get_into" else "get_into*"
    print(f"{label:<10}{rc:>11.0f} ({rw:>6.0f}){cc:>11.0f} ({cw:>6.0f}){cc / rc:>8.3f}{cw / rw:>9.3f}")
print("* get_into: the C++ read into a caller's buffer, against the Rust API's get")
PY

# Instructions per get (callgrind): (instructions of a run with N gets - of one with 0) / N.
N=20000
ir() { # ir OUT CMD... -> total instructions of the run
    valgrind --tool=callgrind --callgrind-out-file="$1" "${@:2}" >/dev/null 2>"$1.log"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$1.log"
}
r0=$(ir "$WORK/r0" "$TARGET/examples/bench_rust" "$WORK/i/r0" 0 0)
r1=$(ir "$WORK/r1" "$TARGET/examples/bench_rust" "$WORK/i/r1" "$N" 0)
c0=$(ir "$WORK/c0" "$WORK/bench" "$WORK/i/c0" 0 0 get)
c1=$(ir "$WORK/c1" "$WORK/bench" "$WORK/i/c1" "$N" 0 get)
c2=$(ir "$WORK/c2" "$WORK/bench" "$WORK/i/c2" "$N" 0 get_into)
python3 - "$r0" "$r1" "$c0" "$c1" "$c2" "$N" <<'PY'
import sys
r0, r1, c0, c1, c2, n = map(int, sys.argv[1:])
rust, cpp, into = (r1 - r0) / n, (c1 - c0) / n, (c2 - c0) / n
print(f"\ninstructions per 100 B get (callgrind, {n} gets): Rust API {rust:.0f}; "
      f"C++ get {cpp:.0f} (ratio {cpp / rust:.3f}); C++ get_into {into:.0f} (ratio {into / rust:.3f})")
PY
