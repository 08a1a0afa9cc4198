#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the WebAssembly guests from source,
# then the whole workspace's unit, integration and doc tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build-guests.sh" >/dev/null
cargo test --workspace --locked
# The browser build: wasm-bindgen-test under node, then headless Chromium with OPFS.
"$ROOT/scripts/test-web.sh"
