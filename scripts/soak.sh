#!/usr/bin/env bash
# Soak test (issue #18): 8 worker processes with a mixed workload (get, set, set_many,
# delete, incr, transactions, evict_tag, expiry, values of 20 B to 1 MiB) on one store
# bounded by max_size, a random worker SIGKILLed every 1-4 s and started again; then
# every acknowledged write is checked (present, or legitimately evicted or expired),
# the counters, check(), the bound, and the memory and descriptors of the two workers
# never killed. Prints the figures; exits 1 on any failure (the store is then kept).
# See tests/src/bin/soak.rs for what is proven and the tolerances.
#
#   scripts/soak.sh 60s          # the short run scripts/test.sh makes
#   nice -n 19 scripts/soak.sh 30m
#
# Environment: SOAK_WORKERS, SOAK_SURVIVORS, SOAK_MAX_SIZE, SOAK_KEYS, SOAK_SEED,
# SOAK_DIR (see tests/src/bin/soak.rs), SOAK_BIN (below).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ $# -ne 1 ]; then
    echo "usage: scripts/soak.sh DURATION   (for example 60s, 30m, 1h)" >&2
    exit 2
fi
# SOAK_BIN: a soak binary already built (scripts/test.sh passes the one
# `cargo test --workspace` made, so nothing is built again); else the debug build.
if [ -z "${SOAK_BIN:-}" ]; then
    cargo build --locked -q -p sciqlop-cache-tests --bin soak
    SOAK_BIN="$("$ROOT/scripts/target-dir.sh")/debug/soak"
fi
exec "$SOAK_BIN" "$1"
