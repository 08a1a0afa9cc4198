#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian machine (root, rustup stable).
# Idempotent and quick when everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# The C/C++ tests (scripts/test-cpp.sh): g++ (build-essential), pkg-config, CMake and
# Debian's doctest; gcc's sanitizer runtimes come with build-essential's gcc.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
[ -f /usr/include/doctest/doctest.h ] || need_apt+=(doctest-dev)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# diskcache fixtures for the migration tests are made in a venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The Redis engine's tests start their own servers (standalone and a 3-node cluster).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need_apt[@]}"
    else
        echo "setup: please install: ${need_apt[*]}" >&2
        exit 1
    fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
"$ROOT/scripts/setup-wasm.sh"
