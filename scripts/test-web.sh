#!/usr/bin/env bash
# The browser build of the cache (web/, wasm32-unknown-unknown on sqlite-wasm-rs):
#   1. the wasm-bindgen-test suites (web/tests/) under node, on the in-memory VFS;
#   2. the real-browser test: headless Chromium loads the example page
#      (web/examples/page/), writes entries into OPFS, reloads, reads them back.
# Installs what is missing (root + apt: clang-19, chromium, nodejs; cargo: the
# wasm-bindgen-cli matching Cargo.lock, kept in ~/.cargo/bin so later runs reuse it).
#
#   scripts/test-web.sh            # both suites
#   WEB_BENCH=1 scripts/test-web.sh  # also print set/get µs/op, node (wasm) vs native
#   WEB_SKIP_BROWSER=1 ...         # only the node suite
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=wasm32-unknown-unknown
say() { echo "test-web: $*"; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "test-web: please install: $*" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@"
}

# --- toolchain -------------------------------------------------------------------------
sysroot="$(rustc --print sysroot)"
[ -d "$sysroot/lib/rustlib/$TARGET" ] || rustup target add "$TARGET"

need=()
command -v clang-19 >/dev/null 2>&1 || need+=(clang-19)
command -v llvm-ar-19 >/dev/null 2>&1 || need+=(llvm-19)
command -v node >/dev/null 2>&1 || need+=(nodejs)
if [ -z "${WEB_SKIP_BROWSER:-}" ] && [ -z "${CHROMIUM:-}" ]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
# sqlite-wasm-rs compiles SQLite's C sources to wasm with clang.
export CC_wasm32_unknown_unknown=clang-19 AR_wasm32_unknown_unknown=llvm-ar-19

# wasm-bindgen-cli must be exactly the wasm-bindgen version the crate links.
WB_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
[ -n "$WB_VERSION" ] || {
    echo "test-web: no wasm-bindgen in Cargo.lock (is web/ a workspace member?)" >&2
    exit 1
}
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
    say "installing wasm-bindgen-cli $WB_VERSION (a few minutes, once)"
    # Not --locked: the CLI's own lock file pins a crate version the registry lacks.
    cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).target_directory)')"

# --- 1. wasm-bindgen-test under node ------------------------------------------------------
say "node suite (wasm-bindgen-test, memory VFS)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p sciqlop-cache-web --target "$TARGET" --locked

# --- the example page's JS/wasm bundle -------------------------------------------------
cargo build -p sciqlop-cache-web --target "$TARGET" --release --lib --locked
WASM="$TARGET_DIR/$TARGET/release/sciqlop_cache_web.wasm"
wasm-bindgen --target web --out-dir web/examples/page/pkg "$WASM"

# --- 2. headless Chromium: data survives a reload (OPFS) --------------------------------
if [ -z "${WEB_SKIP_BROWSER:-}" ]; then
    say "browser test (headless Chromium, OPFS, reload)"
    node web/js/opfs-reload-test.mjs web/examples/page "${CHROMIUM:-$(command -v chromium)}"
fi

# --- optional: µs/op, node (wasm) vs native ---------------------------------------------
if [ -n "${WEB_BENCH:-}" ]; then
    n="${WEB_BENCH_N:-20000}"
    wasm-bindgen --target nodejs --out-dir "$TARGET_DIR/web-bench-node" "$WASM"
    node web/js/bench.mjs "$TARGET_DIR/web-bench-node" "$n"
    # Natively: on disk (temp dir), and on tmpfs, closer to node's in-memory VFS.
    cargo run -q --release -p sciqlop-cache-web --example bench --locked -- "$n"
    if [ -d /dev/shm ]; then
        cargo run -q --release -p sciqlop-cache-web --example bench --locked -- "$n" /dev/shm
    fi
fi
say "ok"
