#!/usr/bin/env bash
# The Python benchmark: this package, the original pysciqlop-cache 0.3.6, diskcache
# 5.6.3 and diskcache-rs 0.4.10 side by side in one run, each in its own venv (ours and
# the original share the import name). Writes results.csv, table.md and PNG charts.
#
#   scripts/bench-python.sh [--quick]       # full: about 15 minutes; quick: a smoke run
#
# OUT=DIR chooses where the results go (default bench-results/python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
OUT="${OUT:-$ROOT/bench-results/python}"
VENVS="$ROOT/target/bench-python"
PY="${PYTHON:-python3}"
mkdir -p "$OUT" "$VENVS"

venv() { # name, pip args...
    local name="$1"
    shift
    if [ ! -x "$VENVS/$name/bin/python" ]; then
        "$PY" -m venv "$VENVS/$name"
        "$VENVS/$name/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    fi
    "$VENVS/$name/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
echo "bench-python: preparing venvs in $VENVS" >&2
# Ours, optimised (maturin builds release by default).
venv ours --force-reinstall --no-deps ./python
venv ours matplotlib
venv original "pysciqlop-cache==0.3.6"
venv diskcache "diskcache==5.6.3"
venv diskcache-rs "diskcache-rs==0.4.10"

IMPLS=(ours original diskcache diskcache-rs)
CSV="$OUT/results.csv"
echo "impl,workload,op,entries,value_size,n,mean_us,p50_us,p99_us" > "$CSV"
WORK="$VENVS/work"
{
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) logical cores"
    echo "- Python: $("$VENVS/ours/bin/python" -c 'import sys; print(sys.version.split()[0])'); mode: ${QUICK:-full}"
    echo "- 1-minute load at start: $(cut -d' ' -f1 /proc/loadavg)"
} > "$OUT/machine.md"
for workload in valuesize batched scaling processes; do
    for impl in "${IMPLS[@]}"; do
        rm -rf "$WORK"
        mkdir -p "$WORK"
        echo "bench-python: $workload / $impl" >&2
        "$VENVS/$impl/bin/python" bench/python/bench.py "$impl" "$workload" "$WORK/store" $QUICK >> "$CSV"
        rm -rf "$WORK"
        sync
        sleep 1
    done
done
echo "- 1-minute load at end: $(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/machine.md"
"$VENVS/ours/bin/python" bench/python/report.py "$CSV" "$OUT"
echo "bench-python: results in $OUT (table.md, results.csv, *.png)" >&2
