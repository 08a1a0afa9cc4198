#!/usr/bin/env bash
# The Python package's test suite: makes its own venv under target/ and installs the
# package from source with `pip install ./python` (scripts/python-env.sh), the original
# pysciqlop-cache 0.3.6 in a second venv (API parity tests), builds the sqcache CLI
# (interop tests), runs pytest.
#
#   scripts/test-python.sh [pytest args...]
#
# PYTHON_TEST_PROFILE=release builds the extension optimised (default: dev, which shares
# the workspace's debug build artifacts and compiles faster).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
ORIG_VENV="$ROOT/target/python-original-venv"
start=$(date +%s)

VENV_PY="$("$ROOT/scripts/python-env.sh")"
if [ ! -x "$ORIG_VENV/bin/python" ] || ! "$ORIG_VENV/bin/python" -c 'import pysciqlop_cache, msgspec' 2>/dev/null; then
    rm -rf "$ORIG_VENV"
    "$PY" -m venv "$ORIG_VENV"
    "$ORIG_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pysciqlop-cache==0.3.6" msgspec
fi
cargo build --quiet -p sqcache
export SQCACHE_BIN="$("$ROOT/scripts/target-dir.sh")/debug/sqcache"
export ORIGINAL_PYTHON="$ORIG_VENV/bin/python"
# Older releases of the original, whose directories the migration tests read too.
for v in 0.1.16 0.2.2; do
    venv="$ROOT/target/python-original-$v-venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pysciqlop_cache' 2>/dev/null; then
        rm -rf "$venv"
        "$PY" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pysciqlop-cache==$v"
    fi
    export "ORIGINAL_PYTHON_${v//./_}=$venv/bin/python"
done
# From the repository root, through the installed package (python/ itself is not on the
# path, so the tests import what pip installed).
"$(dirname "$VENV_PY")/pytest" -q -p no:cacheprovider python/tests "$@"
echo "test-python: $(( $(date +%s) - start )) s"
