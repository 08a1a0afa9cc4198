#!/usr/bin/env bash
# Builds and runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer, AddressSanitizer)
# for SECONDS_PER_TARGET each (default 600), one after the other, starting from the
# checked-in seed corpus fuzz/corpus/TARGET plus what earlier runs found (kept under
# the target directory, not in git), then prints executions and coverage per target.
# Exits non-zero when a target found a crash (its input is saved under
# TARGET_DIR/fuzz-artifacts/TARGET/ and the command to replay it is printed).
#
#   scripts/fuzz.sh            # the long run: 10 minutes per target
#   scripts/fuzz.sh 20         # the short run of scripts/test.sh
#   FUZZ_TARGETS="host_ops capi_args" scripts/fuzz.sh 60
#
# Installs cargo-fuzz when missing; on a stable toolchain libFuzzer's flags need
# RUSTC_BOOTSTRAP=1, which this sets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECONDS_PER_TARGET="${1:-600}"
case "$SECONDS_PER_TARGET" in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
    ;;
esac

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustc --version | grep -q nightly || export RUSTC_BOOTSTRAP=1

# --locked: fuzz/Cargo.lock is checked in and must be up to date (cargo fuzz has no
# --locked of its own).
TARGET_DIR="$(cargo metadata --locked --format-version 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
TARGETS="${FUZZ_TARGETS:-$(cargo fuzz list)}"
# -a: debug assertions and overflow checks (an overflow is a panic, not a wrap).
build_start=$(date +%s)
cargo fuzz build -a
echo "fuzz: built in $(($(date +%s) - build_start)) s" >&2

summary=()
failed=()
for t in $TARGETS; do
    work="$TARGET_DIR/fuzz-corpus/$t"
    artifacts="$TARGET_DIR/fuzz-artifacts/$t"
    mkdir -p "$work" "$artifacts" "corpus/$t"
    log="$TARGET_DIR/fuzz-$t.log"
    echo "fuzz: $t for $SECONDS_PER_TARGET s (log: $log)" >&2
    status=0
    start=$(date +%s)
    # New inputs go to the first corpus directory (the work one); the seeds are read.
    cargo fuzz run -a "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=30 \
        -rss_limit_mb=4096 -max_len=8192 -artifact_prefix="$artifacts/" \
        >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    final=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$final")
    result=ok
    if [ "$status" != 0 ]; then
        result="FAILED ($status)"
        failed+=("$t")
        grep -E 'panicked at|ERROR: |SUMMARY: |Test unit written to' "$log" | head -8 >&2 || true
        echo "fuzz: replay with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a $t <artifact>)" >&2
    fi
    # The time is how long it ran (less than asked when it crashed).
    summary+=("$(printf '%-16s %6ss %12s %8s %8s %7s %6s MB  %s' "$t" "$elapsed" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")")
done

printf '%-16s %7s %12s %8s %8s %7s %9s  %s\n' target time executions cov ft corpus peak_rss result
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
