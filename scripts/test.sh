#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the WebAssembly guests from source,
# then the whole workspace's unit, integration and doc tests, the C/C++ tests and the
# browser tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# A full run starts from a clean checkout in CI: incremental caches only cost disk there
# (with full debuginfo as well, a clean run left 7.8 GB; now 2.8 GB), so they are off
# unless the caller asks for them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-guests.sh" >/dev/null
cargo test --workspace --locked
# The C ABI and the C++20 wrapper: C and C++ tests (also under ASan + UBSan), the seed's
# C++ snippet built against the installed package, interop with the Rust CLI.
"$ROOT/scripts/test-cpp.sh"
# The Python package: its own venv, `pip install ./python`, pytest (python/tests).
"$ROOT/scripts/test-python.sh"
# The browser build: wasm-bindgen-test under node, then headless Chromium with OPFS.
"$ROOT/scripts/test-web.sh"
# One minute of the soak test (8 processes, SIGKILLs, mixed workload; about 65 s), with
# the binary the workspace tests built.
SOAK_BIN="$("$ROOT/scripts/target-dir.sh")/debug/soak" "$ROOT/scripts/soak.sh" 60s
# Fuzz targets of fuzz/ (cargo fuzz, libFuzzer): 20 s each from the seed corpus; the
# long run is scripts/fuzz.sh with its default of 10 minutes per target.
"$ROOT/scripts/fuzz.sh" 20
# What the run left on disk: CI's disk is small, so keep an eye on this figure.
du -sh "$("$ROOT/scripts/target-dir.sh")" \
    guest-examples/target fuzz/target 2>/dev/null || true
