#!/usr/bin/env bash
# Makes Python diskcache directories for sqcache's migration tests, with the real
# diskcache (5.6.3) installed in a private virtual environment.
#
#   scripts/diskcache-fixtures.sh standard OUT_DIR     Cache, FanoutCache and Index
#                                                       fixtures + OUT_DIR/manifest.json
#   scripts/diskcache-fixtures.sh bulk DIR N           a Cache with N entries
#   scripts/diskcache-fixtures.sh writer DIR SECONDS   keeps writing to DIR meanwhile
#
# The environment lives in $SQCACHE_PY_VENV (default: target/py-venv) and is created on
# first use; a lock makes concurrent first uses safe. Needs python3 with the venv module
# (Debian: python3-venv, installed here with apt-get when missing and run as root) and
# access to PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SQCACHE_PY_VENV:-$ROOT/target/py-venv}"
PY="$VENV/bin/python"
DISKCACHE_VERSION=5.6.3

ensure_venv() {
    if "$PY" -c "import diskcache, sys; sys.exit(diskcache.__version__ != '$DISKCACHE_VERSION')" 2>/dev/null; then
        return
    fi
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    flock 9
    # Another process may have finished the job while we waited.
    if "$PY" -c "import diskcache, sys; sys.exit(diskcache.__version__ != '$DISKCACHE_VERSION')" 2>/dev/null; then
        return
    fi
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "diskcache-fixtures: installing python3-venv" >&2
            apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
            rm -rf "$VENV"
            python3 -m venv "$VENV"
        else
            echo "diskcache-fixtures: 'python3 -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "diskcache==$DISKCACHE_VERSION" >&2
}

ensure_venv
exec "$PY" "$ROOT/scripts/diskcache-fixtures.py" "$@"
