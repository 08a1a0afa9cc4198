#!/usr/bin/env bash
# The main job: a native cache and a sandboxed plugin using its own scoped cache, on the
# embedded SQLite default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh" >/dev/null
GUESTS="$("$ROOT/scripts/build-guests.sh")"
cargo run --release --locked -q -p sciqlop-cache-host --example demo -- "$GUESTS"
