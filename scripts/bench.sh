#!/usr/bin/env bash
# Full benchmark comparison: sciqlop-cache (Cache, Index, FanoutCache) vs raw rusqlite,
# cacache and diskcache 5.6.3, and the wasm plugin boundary (a guest's get/set through
# the host vs native, instantiation; the guests are built by scripts/build-guests.sh,
# and the plugin workload is skipped with a warning if they cannot be), into
# bench-results/ (CSV, PNG charts, table.md).
#
#   scripts/bench.sh                 # full run (about 10 minutes)
#   scripts/bench.sh --quick         # smoke run, small sizes
#   scripts/bench.sh --huge          # also 1e7 entries
#   PUBLISH=1 scripts/bench.sh       # then copy the results to docs/bench/ for the README
#
# Environment: OUT (default bench-results), MAX_LOAD (default 1.5: waits until the
# 1-minute load average is below it, checking every 30 s, at most WAIT_TRIES times,
# default 20, then runs anyway and the load is recorded in machine.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-results}
MAX_LOAD=${MAX_LOAD:-1.5}
WAIT_TRIES=${WAIT_TRIES:-20}

apt_install() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y "$@" || { apt-get update && apt-get install -y "$@"; }
    else
        echo "bench.sh: please install $* (apt-get install $*)" >&2
    fi
}

# diskcache runs in a venv (target/bench-venv), created by sqbench itself.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi
# Charts need one TTF font at run time (no font library is needed to build).
if [[ -z ${SQBENCH_FONT:-} ]] && ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
    apt_install fonts-dejavu-core
fi

cargo build --release -p sciqlop-cache-bench
BIN=${CARGO_TARGET_DIR:-target}/release/sqbench

for ((i = 1; i <= WAIT_TRIES; i++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then
        break
    fi
    echo "bench.sh: 1-minute load $load >= $MAX_LOAD, waiting 30 s ($i/$WAIT_TRIES)" >&2
    sleep 30
done
echo "bench.sh: starting at load $(cut -d' ' -f1 /proc/loadavg)" >&2

"$BIN" all --out "$OUT" "$@"

if [[ ${PUBLISH:-0} == 1 ]]; then
    mkdir -p docs/bench
    cp "$OUT"/results.csv "$OUT"/table.md "$OUT"/machine.txt "$OUT"/*.png docs/bench/
    echo "bench.sh: copied the results to docs/bench/" >&2
fi
echo "bench.sh: results in $OUT/ (table.md, results.csv, *.png)" >&2
