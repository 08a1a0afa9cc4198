#!/usr/bin/env bash
# Builds the guest components (examples and adversarial test guests) for wasm32-wasip2.
# Installs the target first if needed (scripts/setup-wasm.sh). Incremental: cargo
# rebuilds only what changed. Prints the directory holding the .wasm files.
#
# Output: guest-examples/target/wasm32-wasip2/release/{memoize,sessions,ratelimit,adversarial}.wasm
# (with the Debian fallback toolchain: guest-examples/target/fallback/wasm32-wasip2/release/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup-wasm.sh" >&2

cd "$ROOT/guest-examples"
FALLBACK_ENV="$ROOT/target/wasm-fallback.env"
TARGET_DIR="$ROOT/guest-examples/target"
EXTRA=()
sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/wasm32-wasip2" ] && [ -f "$FALLBACK_ENV" ]; then
    # shellcheck disable=SC1090
    . "$FALLBACK_ENV"
    TARGET_DIR="$ROOT/guest-examples/target/fallback"
    read -r -a EXTRA <<<"${GUEST_CARGO_FLAGS:-}"
fi
# Guests must not inherit the host build's target dir.
unset CARGO_TARGET_DIR
cargo build --target wasm32-wasip2 --release --target-dir "$TARGET_DIR" ${EXTRA[@]+"${EXTRA[@]}"} >&2
echo "$TARGET_DIR/wasm32-wasip2/release"
