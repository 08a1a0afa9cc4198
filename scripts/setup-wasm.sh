#!/usr/bin/env bash
# Installs what building the wasm32-wasip2 guests needs. Idempotent: does nothing when
# the target's standard library is already installed.
#
# Normal path: `rustup target add wasm32-wasip2` (a few seconds).
# Fallback when rustup cannot download (offline mirror): Debian's rustc 1.96 with its
# library source builds std from source (-Zbuild-std); wasm32-wasip2 also needs a
# wasi-libc with the wasip2 sysroot, which Debian 13 (trixie) ships and Debian 12 does
# not, so that one .deb is fetched from trixie without changing the system's sources.
# After the fallback, scripts/build-guests.sh picks up the environment written to
# target/wasm-fallback.env.
set -euo pipefail

TARGET=wasm32-wasip2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FALLBACK_ENV="$ROOT/target/wasm-fallback.env"

have_target() {
    local sysroot
    sysroot="$(rustc --print sysroot 2>/dev/null)" || return 1
    [ -d "$sysroot/lib/rustlib/$TARGET" ]
}

if have_target; then
    echo "setup-wasm: $TARGET already installed"
    exit 0
fi

if [ -f "$FALLBACK_ENV" ]; then
    echo "setup-wasm: using the Debian fallback toolchain ($FALLBACK_ENV)"
    exit 0
fi

if command -v rustup >/dev/null 2>&1 && rustup target add "$TARGET"; then
    if have_target; then
        echo "setup-wasm: installed $TARGET with rustup"
        exit 0
    fi
fi

echo "setup-wasm: rustup could not install $TARGET; using the Debian fallback" >&2
if [ "$(id -u)" != 0 ]; then
    echo "setup-wasm: the fallback needs root (apt-get); run as root or install $TARGET by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y rustc-web cargo-web rust-web-src lld-19 clang-19

# wasi-libc with the wasip2 sysroot, from Debian 13, without touching the system's sources.
LIBC_DIR="$ROOT/target/wasi-libc-trixie"
if [ ! -d "$LIBC_DIR/usr/lib/wasm32-wasip2" ]; then
    uri="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    uri="${uri:-http://deb.debian.org/debian}"
    d="$(mktemp -d)"
    mkdir -p "$d/lists/partial" "$d/cache"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$d/sources.list"
    o=(-o "Dir::Etc::sourcelist=$d/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
    apt-get "${o[@]}" update
    (cd "$d" && apt-get "${o[@]}" download wasi-libc)
    mkdir -p "$LIBC_DIR"
    dpkg -x "$d"/wasi-libc_*.deb "$LIBC_DIR"
    rm -rf "$d"
fi

mkdir -p "$(dirname "$FALLBACK_ENV")"
cat >"$FALLBACK_ENV" <<ENV
# Written by scripts/setup-wasm.sh: Debian's toolchain building std from source.
export PATH=/usr/lib/llvm-19/bin:/usr/bin:\$PATH
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-L $LIBC_DIR/usr/lib/wasm32-wasip2"
export GUEST_CARGO_FLAGS="-Zbuild-std=std,panic_abort"
ENV
echo "setup-wasm: fallback ready ($FALLBACK_ENV)"
