#!/usr/bin/env bash
# Prints the workspace's cargo target directory (honours CARGO_TARGET_DIR and
# .cargo/config), for the scripts that run binaries cargo built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
