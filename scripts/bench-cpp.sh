#!/usr/bin/env bash
# What the C++ wrapper adds over the Rust API, for 100 B get and set: the same workload
# (1000 keys of 100 B; GETS gets then SETS overwrites, on a fresh store) run by
# capi/examples/bench_rust.rs and capi/bench/bench.cpp (-O2, static library),
# alternately, ROUNDS times each in the same run; prints the median ns/op of each side
# and the ratio.   Usage: scripts/bench-cpp.sh [ROUNDS [GETS [SETS]]]
set -euo pipefail
ROUNDS="${1:-7}"
GETS="${2:-200000}"
SETS="${3:-3000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sqc-bench-cpp.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
"$ROOT/scripts/build-cpp.sh" "$WORK/prefix" >/dev/null
cargo build -q --release --locked -p sciqlop-cache-capi --example bench_rust
TARGET="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release"
g++ -std=c++20 -O2 -DNDEBUG capi/bench/bench.cpp -I"$WORK/prefix/include" \
    "$WORK/prefix/lib/libsciqlop_cache.a" -lpthread -ldl -lm -o "$WORK/bench"
for r in $(seq "$ROUNDS"); do
    rm -rf "$WORK/r" "$WORK/c"
    "$TARGET/examples/bench_rust" "$WORK/r" "$GETS" "$SETS"
    "$WORK/bench" "$WORK/c" "$GETS" "$SETS"
done | tee "$WORK/raw" >/dev/null
python3 - "$WORK/raw" "$ROUNDS" "$GETS" "$SETS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, op, ns = line.split()
    runs.setdefault((side, op), []).append(float(ns))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"100 B values, 1000 keys; {sys.argv[2]} rounds of {sys.argv[3]} gets and {sys.argv[4]} sets; median ns/op")
print(f"{'op':<10}{'Rust API':>12}{'C++ wrapper':>14}{'ratio':>8}")
for op, cpp in (("get", "get"), ("get_into", "get_into"), ("set", "set")):
    rust = med[("rust", "get" if op == "get_into" else op)]
    c = med[("cpp", cpp)]
    print(f"{op:<10}{rust:>12.0f}{c:>14.0f}{c / rust:>8.3f}")
PY
