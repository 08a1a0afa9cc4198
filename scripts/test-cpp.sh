#!/usr/bin/env bash
# The C and C++ tests (part of scripts/test.sh): installs the package with
# build-cpp.sh (dev profile) into a temporary prefix, then
#   1. the C test, against the shared library, then static under ASan + UBSan;
#   2. the C++ wrapper tests (doctest), against the shared library, then static under
#      ASan + UBSan (gcc's);
#   3. the seed's C++ snippet, built with the pkg-config line and with CMake
#      (find_package, shared and static), each run in an empty directory;
#   4. interop: entries written from C++ read back by the Rust CLI (sqcache), and a
#      counter written from C++ incremented by a WebAssembly plugin through the host.
# Needs g++, pkg-config, cmake and doctest (scripts/setup.sh installs them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sqc-cpp-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PREFIX="$WORK/prefix"
T="$ROOT/capi/cpp-tests"
step() { printf '\n== test-cpp: %s\n' "$*"; }

step "build (dev profile) and install into $PREFIX"
# The dev profile: the library is the same code as the release one, and it shares the
# workspace's debug build (a release build from scratch took minutes of CI's time).
SQC_BUILD_PROFILE=dev "$ROOT/scripts/build-cpp.sh" "$PREFIX" >/dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
SHARED_LIBS="$(pkg-config --libs sciqlop-cache)"
# The static library by file name, with the system libraries it needs (Libs.private).
STATIC_LIBS="$(pkg-config --static --libs sciqlop-cache | sed 's/-lsciqlop_cache/-l:libsciqlop_cache.a/')"
CFLAGS_="$(pkg-config --cflags sciqlop-cache)"
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
WARN=(-Wall -Wextra -Wpedantic -Werror)
fresh() { local d; d="$(mktemp -d "$WORK/run.XXXXXX")"; echo "$d"; }

step "C test (shared library)"
gcc -std=c11 "${WARN[@]}" -O1 -g "$T/test_c.c" $CFLAGS_ $SHARED_LIBS -o "$WORK/test_c"
"$WORK/test_c" "$(fresh)"
step "C test (static library, ASan + UBSan)"
gcc -std=c11 "${WARN[@]}" -O1 -g "${SAN[@]}" "$T/test_c.c" $CFLAGS_ $STATIC_LIBS -o "$WORK/test_c_san"
"$WORK/test_c_san" "$(fresh)"

step "C++ wrapper tests (shared library)"
g++ -std=c++20 "${WARN[@]}" -O1 -g "$T/test_wrapper.cpp" $CFLAGS_ $SHARED_LIBS -o "$WORK/test_wrapper"
"$WORK/test_wrapper"
step "C++ wrapper tests (static library, ASan + UBSan)"
g++ -std=c++20 "${WARN[@]}" -O1 -g "${SAN[@]}" "$T/test_wrapper.cpp" $CFLAGS_ $STATIC_LIBS -o "$WORK/test_wrapper_san"
"$WORK/test_wrapper_san"

step "seed snippet: g++ -std=c++20 seed.cpp \$(pkg-config --cflags --libs sciqlop-cache)"
g++ -std=c++20 "$T/seed.cpp" $(pkg-config --cflags --libs sciqlop-cache) -o "$WORK/seed"
(cd "$(fresh)" && env -u LD_LIBRARY_PATH "$WORK/seed")

step "seed snippet: CMake find_package(sciqlop-cache), shared and static"
cmake -S "$T/cmake" -B "$WORK/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$WORK/cmake" -j 2 >/dev/null
(cd "$(fresh)" && "$WORK/cmake/seed_shared")
(cd "$(fresh)" && "$WORK/cmake/seed_static")

step "interop: written from C++, read by the Rust CLI (sqcache)"
# (Run alone, this builds the debug CLI, and below the host and the guests, if
# scripts/test.sh has not already.)
cargo build -q --locked -p sqcache
SQCACHE="$("$ROOT/scripts/target-dir.sh")/debug/sqcache"
IDIR="$(fresh)/interop"
"$WORK/test_wrapper" --write-interop "$IDIR"
fails=0
expect() { # expect WHAT ACTUAL EXPECTED
    if [ "$2" == "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: got '$2', expected '$3'"; fails=$((fails + 1)); fi
}
expect "value" "$("$SQCACHE" get "$IDIR" interop/value)" "written by C++"
expect "counter" "$("$SQCACHE" get "$IDIR" interop/counter)" "42"
"$SQCACHE" incr "$IDIR" interop/counter 1 >/dev/null
"$SQCACHE" get "$IDIR" interop/binary -o "$WORK/binary"
expect "binary value" "$(od -An -tu1 "$WORK/binary" | xargs)" "0 1 2 255"
expect "tag" "$("$SQCACHE" evict-tag "$IDIR" cpp --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["removed"])')" "1"
# ... and the counter the CLI incremented, read back from C.
cat >"$WORK/read_counter.c" <<'C'
#include "sciqlop_cache.h"
#include <stdio.h>
int main(int argc, char **argv) { /* read_counter DIR KEY [NAMESPACE] */
    sqc_store s, ns; int64_t n = 0; bool found = false;
    if (argc < 3 || argc > 4 || sqc_open(SQC_KIND_CACHE, argv[1], SQC_NUL_TERMINATED, NULL, &s) != SQC_STATUS_OK ||
        sqc_namespace(s, argc == 4 ? argv[3] : "", SQC_NUL_TERMINATED, &ns) != SQC_STATUS_OK ||
        sqc_get_counter(ns, argv[2], SQC_NUL_TERMINATED, &n, &found) != SQC_STATUS_OK || !found) {
        fprintf(stderr, "read_counter: %s\n", sqc_last_error());
        return 1;
    }
    printf("%lld\n", (long long)n);
    return sqc_close(ns) == SQC_STATUS_OK && sqc_close(s) == SQC_STATUS_OK ? 0 : 1;
}
C
gcc -std=c11 "$WORK/read_counter.c" $CFLAGS_ $SHARED_LIBS -o "$WORK/read_counter"
expect "counter incremented by the CLI, read from C" "$("$WORK/read_counter" "$IDIR" interop/counter)" "43"

step "interop: a counter written from C++, incremented by a WebAssembly plugin through the host"
# counter-cmd counts names in its store "counters": the namespace "counters" of the Cache
# in ROOT/plugins/<plugin>/ (host/src/scope.rs). test.sh has built the guests and the host.
GUESTS="$("$ROOT/scripts/build-guests.sh")"
cargo build -q --locked -p sciqlop-cache-host
HOST="$(dirname "$SQCACHE")/sciqlop-cache-host"
PROOT="$(fresh)/plugin-root"
expect "C++ incr" "$("$WORK/test_wrapper" --incr "$PROOT/plugins/counter" cpp 41 counters)" "41"
expect "plugin incr" "$("$HOST" run --root "$PROOT" --plugin counter="$GUESTS/counter-cmd.wasm" -- cpp)" "cpp: 42"
expect "read back from C" "$("$WORK/read_counter" "$PROOT/plugins/counter" cpp counters)" "42"
# A plugin directory written by an earlier host (store/key keys) is converted on open.
OLD="$(fresh)/old-root"
expect "C++ incr, old layout" "$("$WORK/test_wrapper" --incr "$OLD/plugins/counter" counters/cpp 6)" "6"
expect "plugin incr, old layout" "$("$HOST" run --root "$OLD" --plugin counter="$GUESTS/counter-cmd.wasm" -- cpp)" "cpp: 7"
expect "read back from C, converted" "$("$WORK/read_counter" "$OLD/plugins/counter" cpp counters)" "7"

step "interop: the same entries read from the Python package"
VENV_PY="$("$ROOT/scripts/python-env.sh")"
py() { # py DIR EXPR: EXPR printed, with `c` the Cache at DIR opened from Python
    "$VENV_PY" -c "import sys, pysciqlop_cache as sc; c = sc.Cache(sys.argv[1]); print($2)" "$1"
}
expect "C++ value, from Python" "$(py "$IDIR" 'c.get_raw("interop/value").decode()')" "written by C++"
expect "C++ binary value, from Python" "$(py "$IDIR" 'list(c.get_raw("interop/binary"))')" "[0, 1, 2, 255]"
expect "C++ counter incremented by the CLI, from Python" "$(py "$IDIR" 'c["interop/counter"]')" "43"
expect "plugin's counter, from Python" "$(py "$PROOT/plugins/counter" 'c.namespace("counters")["cpp"]')" "42"
[ "$fails" -eq 0 ] || exit 1

echo
echo "test-cpp: all passed in $((SECONDS - start)) s"
