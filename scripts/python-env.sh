#!/usr/bin/env bash
# The Python test environment, made or brought up to date: a venv under target/ with
# the package installed from this checkout by `pip install ./python` (maturin comes from
# PyPI as the build backend) and the test dependencies from PyPI. Prints the venv's
# python. Used by scripts/test-python.sh and by the interop step of scripts/test-cpp.sh.
#
# PYTHON_TEST_PROFILE=release builds the extension optimised (default: dev, which shares
# the workspace's debug build artifacts and compiles faster).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/target/python-test-venv"
PROFILE="${PYTHON_TEST_PROFILE:-dev}"

"$PY" -c 'import venv, ensurepip' 2>/dev/null || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    else
        echo "python-env: python3 -m venv is missing (Debian: python3-venv)" >&2
        exit 1
    fi
}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    pytest hypothesis msgspec numpy "diskcache==5.6.3" >&2
# The package itself, built from this checkout. The profile goes to maturin through its
# PEP 517 arguments; the build shares the workspace's target directory.
MATURIN_PEP517_ARGS="--profile $PROFILE" \
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python >&2
echo "$VENV/bin/python"
