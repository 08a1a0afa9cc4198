#!/usr/bin/env bash
# The Python package's test suite: makes its own venv under target/, installs the
# package from source with `pip install ./python` (maturin comes from PyPI as the build
# backend), the test dependencies from PyPI, the original pysciqlop-cache 0.3.6 in a
# second venv (API parity tests), builds the sqcache CLI (interop tests), runs pytest.
#
#   scripts/test-python.sh [pytest args...]
#
# PYTHON_TEST_PROFILE=release builds the extension optimised (default: dev, which shares
# the workspace's debug build artifacts and compiles faster).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/target/python-test-venv"
ORIG_VENV="$ROOT/target/python-original-venv"
PROFILE="${PYTHON_TEST_PROFILE:-dev}"
start=$(date +%s)

"$PY" -c 'import venv, ensurepip' 2>/dev/null || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "test-python: python3 -m venv is missing (Debian: python3-venv)" >&2
        exit 1
    fi
}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    pytest hypothesis msgspec numpy "diskcache==5.6.3"
# The package itself, built from this checkout. The profile goes to maturin through its
# PEP 517 arguments; the build shares the workspace's target directory.
MATURIN_PEP517_ARGS="--profile $PROFILE" \
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
if [ ! -x "$ORIG_VENV/bin/python" ] || ! "$ORIG_VENV/bin/python" -c 'import pysciqlop_cache, msgspec' 2>/dev/null; then
    rm -rf "$ORIG_VENV"
    "$PY" -m venv "$ORIG_VENV"
    "$ORIG_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pysciqlop-cache==0.3.6" msgspec
fi
cargo build --quiet -p sqcache
export SQCACHE_BIN="$ROOT/target/debug/sqcache"
export ORIGINAL_PYTHON="$ORIG_VENV/bin/python"
# From the repository root, through the installed package (python/ itself is not on the
# path, so the tests import what pip installed).
"$VENV/bin/pytest" -q -p no:cacheprovider python/tests "$@"
echo "test-python: $(( $(date +%s) - start )) s"
